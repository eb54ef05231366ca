// The client's tests talk to real apps in-process: a fetch that hands each Request to app.request(), so
// the whole app (validation, service, database) answers and no port is opened. A scripted fetch in front
// of it makes chosen attempts fail the way networks and databases do.
import type { FetchLike } from "../src/index.js";

/** What an app offers the client's fetch: Hono's in-process request. */
export interface InProcessApp {
  request: (input: Request) => Response | Promise<Response>;
}

/** A fetch answered by the app itself. */
export function inProcessFetch(app: InProcessApp): FetchLike {
  return async (request) => app.request(request);
}

/**
 * What one attempt meets before (or after) the app:
 *   pass         the app answers
 *   503          a DATABASE_UNAVAILABLE problem, the app never reached
 *   refuse       fetch throws before the app is reached (ECONNREFUSED)
 *   lose-answer  the app applies the request, then the connection resets before its answer is read
 *   hang         no answer at all, until the attempt's signal aborts
 *   Response     this answer, the app never reached
 */
export type Step = "pass" | "503" | "refuse" | "lose-answer" | "hang" | (() => Response);

export interface SentRequest {
  method: string;
  url: string;
  headers: Headers;
  body: string;
}

/** A fetch that meets `steps` in order, one per attempt, then `pass` for every attempt after them. */
export function scriptedFetch(
  app: InProcessApp,
  steps: readonly Step[],
): { fetch: FetchLike; sent: SentRequest[] } {
  const sent: SentRequest[] = [];
  const fetch: FetchLike = async (request) => {
    const step = steps[sent.length] ?? "pass";
    sent.push({
      method: request.method,
      url: request.url,
      headers: new Headers(request.headers),
      body: await request.clone().text(),
    });
    if (typeof step === "function") return step();
    switch (step) {
      case "pass":
        return app.request(request);
      case "503":
        return problemResponse(503, "DATABASE_UNAVAILABLE", "The database is not answering");
      case "refuse":
        throw new TypeError("fetch failed", {
          cause: withCode(new Error("connect ECONNREFUSED"), "ECONNREFUSED"),
        });
      case "lose-answer": {
        const res = await app.request(request);
        await res.arrayBuffer();
        throw new TypeError("fetch failed", { cause: withCode(new Error("socket hang up"), "ECONNRESET") });
      }
      case "hang":
        return new Promise<Response>((_, reject) => {
          request.signal.addEventListener("abort", () => reject(request.signal.reason as Error), {
            once: true,
          });
        });
    }
  };
  return { fetch, sent };
}

function withCode(error: Error, code: string): Error {
  return Object.assign(error, { code });
}

export function problemResponse(
  status: number,
  code: string,
  detail: string,
  headers: Record<string, string> = {},
): Response {
  const body = {
    type: `urn:ledger:problem:${code.toLowerCase().replaceAll("_", "-")}`,
    title: "Problem",
    status,
    detail,
    code,
  };
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/problem+json", ...headers },
  });
}

/** A delay that waits for nothing and remembers what it was asked to wait. */
export function recordingDelay(): { delay: (ms: number) => Promise<void>; waitsMs: number[] } {
  const waitsMs: number[] = [];
  return {
    waitsMs,
    delay: (ms) => {
      waitsMs.push(ms);
      return Promise.resolve();
    },
  };
}

/** The nonce in a sent write's JSON body. */
export function nonceOf(request: SentRequest): unknown {
  return (JSON.parse(request.body) as { nonce?: unknown }).nonce;
}
