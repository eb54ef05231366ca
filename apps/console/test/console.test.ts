// The console's routes when the ledger is not there at all, and its own refusals: no ledger needed.
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FetchLike } from "@ledger/client";
import { REPO_ROOT } from "@ledger/harness";
import { describe, expect, it } from "vitest";
import { createConsole } from "../src/app.js";
import { createSealer, newSession, SESSION_COOKIE } from "../src/session.js";
import { SECRET } from "./support.js";

/** A ledger that answers every request with one problem (RFC 9457, as the apps write them). */
function answering(status: number, code: string, detail: string, headers: Record<string, string> = {}) {
  const calls: string[] = [];
  const fetch: FetchLike = (request) => {
    calls.push(request.url);
    return Promise.resolve(
      new Response(JSON.stringify({ type: "about:blank", title: code, status, detail, code }), {
        status,
        headers: { "content-type": "application/problem+json", ...headers },
      }),
    );
  };
  return {
    calls,
    app: createConsole({
      urls: { app1: "http://app1.test", app2: "http://app2.test" },
      secret: SECRET,
      fetch,
      ledgerTimeoutMs: 2_000,
    }),
  };
}

/** A session cookie as the console seals one after a sign-in with an app1 read key. */
function sessionCookie(): string {
  const session = newSession(
    {
      mode: "required",
      apiKey: "lgr_0123456789abcdef_x",
      app: "app1",
      keyId: "key_1",
      scopes: ["read"],
      name: null,
    },
    Date.now(),
  );
  return `${SESSION_COOKIE}=${createSealer(SECRET).seal(session)}`;
}

const unreachable = createConsole({
  urls: { app1: "http://app1.invalid", app2: "http://app2.invalid" },
  secret: SECRET,
  fetch: () => Promise.reject(new TypeError("fetch failed")),
});

const form = (body: Record<string, string>) => ({
  method: "POST",
  headers: { "content-type": "application/x-www-form-urlencoded", origin: "http://localhost" },
  body: new URLSearchParams(body).toString(),
});

describe("the console without a ledger", () => {
  it("says the ledger is not answering (502, LEDGER_UNAVAILABLE), not that the key is bad", async () => {
    const res = await unreachable.request(
      "/sign-in",
      form({ api_key: "lgr_0123456789abcdef_x", app: "app2" }),
    );
    expect(res.status).toBe(502);
    const html = await res.text();
    expect(html).toContain("LEDGER_UNAVAILABLE");
    expect(html).toContain("app2 did not answer");
    expect(res.headers.get("set-cookie")).toBeNull();
  });

  it("sends an unknown page to sign-in without a session, and answers an unknown asset 404", async () => {
    const res = await unreachable.request("/no/such/page");
    expect(res.status).toBe(303);
    const plain = await unreachable.request("/assets/none.css");
    expect(plain.status).toBe(404);
    expect(await plain.text()).toContain("NOT_FOUND");
  });

  it.each(["__proto__", "constructor", "toString", "hasOwnProperty"])(
    "answers /assets/%s 404: only the console's own files are assets",
    async (name) => {
      const res = await unreachable.request(`/assets/${name}`);
      expect(res.status).toBe(404);
      expect(await res.text()).toContain("NOT_FOUND");
    },
  );

  it("refuses a form over 16 KiB with 413", async () => {
    const res = await unreachable.request("/sign-in", form({ api_key: "x".repeat(20_000) }));
    expect(res.status).toBe(413);
    expect(await res.text()).toContain("PAYLOAD_TOO_LARGE");
  });

  it("refuses a key longer than any key with 400", async () => {
    const res = await unreachable.request("/sign-in", form({ api_key: "x".repeat(300), app: "app1" }));
    expect(res.status).toBe(400);
    expect(await res.text()).toContain("VALIDATION_FAILED");
  });

  it("serves its health and the sign-in page without a session", async () => {
    expect(await (await unreachable.request("/health")).json()).toEqual({ status: "ok" });
    const page = await unreachable.request("/sign-in");
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toMatch(
      /<label for="api-key">API key<\/label><input id="api-key" name="api_key" type="password"/,
    );
  });
});

describe("the console when the ledger refuses", () => {
  it("shows the ledger's 429 at sign-in as 429 RATE_LIMITED with its Retry-After, not as a bad key", async () => {
    const { app, calls } = answering(
      429,
      "RATE_LIMITED",
      "Too many failed authentications from this address.",
      {
        "retry-after": "30",
      },
    );
    const res = await app.request("/sign-in", form({ api_key: "lgr_0123456789abcdef_x", app: "app1" }));
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("30");
    const html = await res.text();
    expect(html).toContain("RATE_LIMITED");
    expect(html).toContain("app1 says: Too many failed authentications");
    expect(calls.every((u) => u.startsWith("http://app1.test/"))).toBe(true);
  });

  it("ends the session when the ledger stops accepting its key (401): cookie cleared, sign-in says why", async () => {
    const { app } = answering(401, "UNAUTHENTICATED", "The API key is not valid.");
    const res = await app.request("/owners/someone", { headers: { cookie: sessionCookie() } });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/sign-in?ended=key-refused");
    expect(res.headers.get("set-cookie")).toMatch(new RegExp(`^${SESSION_COOKIE}=;.*Max-Age=0`, "i"));
    const page = await app.request(res.headers.get("location") ?? "");
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain("UNAUTHENTICATED");
    expect(html).toContain("Your key is no longer accepted");
  });

  it("ends the session on a 401 to an action too, doing nothing else", async () => {
    const { app } = answering(401, "UNAUTHENTICATED", "The API key is not valid.");
    // A read key is refused by the console before any call: the session's key is an admin's.
    const admin = newSession(
      {
        mode: "required",
        apiKey: "lgr_0123456789abcdef_y",
        app: "app1",
        keyId: "key_2",
        scopes: ["read", "admin"],
        name: null,
      },
      Date.now(),
    );
    const adminCookie = `${SESSION_COOKIE}=${createSealer(SECRET).seal(admin)}`;
    const adminCsrf = createSealer(SECRET).csrfToken(admin);
    const res = await app.request("/owners/someone/suspension", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", cookie: adminCookie },
      body: new URLSearchParams({ csrf: adminCsrf, nonce: "n-1", reason: "r", confirm: "yes" }).toString(),
    });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/sign-in?ended=key-refused");
    expect(res.headers.get("set-cookie")).toMatch(/Max-Age=0/i);
  });

  it("shows no words of a link's choosing on the sign-in page", async () => {
    const html = await (await unreachable.request("/sign-in?ended=Call%20us%20now")).text();
    expect(html).not.toContain("Call us now");
    expect(html).not.toContain("no longer accepted");
  });
});

describe("starting without CONSOLE_SECRET in production", () => {
  // Both ways the console starts apply one rule (env.ts secretRule): a restart must not sign everyone out.
  it.each([
    ["the console alone", "apps/console"],
    ["pnpm start (apps/local)", "apps/local"],
  ])(
    "%s refuses to start, naming CONSOLE_SECRET",
    async (_name, dir) => {
      const dataDir = await mkdtemp(join(tmpdir(), "console-secret-"));
      try {
        const out = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
          const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
            cwd: join(REPO_ROOT, dir),
            env: { PATH: process.env.PATH ?? "", NODE_ENV: "production", LEDGER_DATA_DIR: dataDir },
            stdio: ["ignore", "pipe", "pipe"],
          });
          let stderr = "";
          child.stderr.on("data", (b: Buffer) => (stderr += b.toString("utf8")));
          child.stdout.on("data", (b: Buffer) => (stderr += b.toString("utf8")));
          const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
          child.once("error", reject);
          child.once("close", (code) => {
            clearTimeout(timer);
            resolve({ code, stderr });
          });
        });
        expect(out.code).not.toBe(0);
        expect(out.code).not.toBeNull();
        expect(out.stderr).toContain("CONSOLE_SECRET is required with NODE_ENV=production");
      } finally {
        await rm(dataDir, { recursive: true, force: true });
      }
    },
    40_000,
  );
});
