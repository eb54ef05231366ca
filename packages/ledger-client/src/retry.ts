// Sending one request until it has an answer worth returning. A write carries its nonce in its body and
// every attempt sends the same body, so repeating a write is safe: the ledger applies a nonce once and
// answers a repeat with the original answer (200, `replayed: true`).
//
// Retried: 503 (DATABASE_UNAVAILABLE: the outcome is unknown), a fetch that throws (refused, reset) and
// an attempt over `timeoutMs`, with exponential backoff and full jitter; 429 after its Retry-After. Never
// another status: a 4xx is a definite refusal and any other 5xx is not known to be safe to repeat.

export interface RetryOptions {
  /** Most times one request is sent, the first included (1: no retry). */
  attempts: number;
  /** The backoff's scale: the n-th retry waits a random time in [0, min(maxDelayMs, baseDelayMs * 2^(n-1))]. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** A 429 whose Retry-After asks for longer than this is returned at once, not waited for. */
  retryAfterMaxMs: number;
}

export const RETRY_DEFAULTS: RetryOptions = {
  attempts: 4,
  baseDelayMs: 100,
  maxDelayMs: 2_000,
  retryAfterMaxMs: 30_000,
};

export const ATTEMPTS_MAX = 100;

/** The fetch the client calls: a Request in, a Response out (globalThis.fetch, or app.request in tests). */
export type FetchLike = (request: Request) => Promise<Response>;

/** How the client waits between attempts; rejects with the signal's reason when it aborts. */
export type Delay = (ms: number, signal: AbortSignal) => Promise<void>;

export const timerDelay: Delay = (ms, signal) =>
  new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason as Error);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });

/** The wait before retry number `retry` (1 for the first retry): full jitter over a doubling ceiling. */
export function backoffDelayMs(
  retry: number,
  opts: RetryOptions,
  random: () => number = Math.random,
): number {
  const ceilingMs = Math.min(opts.maxDelayMs, opts.baseDelayMs * 2 ** Math.min(retry - 1, 30));
  return Math.floor(random() * ceilingMs);
}

/** A Retry-After header in milliseconds from now: delay-seconds or an HTTP-date (RFC 9110 10.2.3). */
export function retryAfterMs(header: string | null, nowMs: number = Date.now()): number | undefined {
  if (header === null) return undefined;
  const value = header.trim();
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  // An HTTP-date starts with its day's name (IMF-fixdate, and the obsolete RFC 850 and asctime forms);
  // Date.parse alone would read "-1" or "1.5" as instants.
  const at = /^[A-Za-z]+,? /.test(value) ? Date.parse(value) : Number.NaN;
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

/** Thrown when every attempt failed without an answer; the client turns it into a LedgerNetworkError. */
export class AttemptsSpent extends Error {
  constructor(
    readonly attempts: number,
    readonly last: unknown,
  ) {
    super("every attempt failed without an answer", { cause: last });
  }
}

/** What one call's attempts came to, read by the client when it builds its answer or error. */
export interface AttemptLog {
  attempts: number;
  /** The last answer's status (undefined while none came). */
  status?: number;
}

export interface RetryingFetchOptions {
  fetch: FetchLike;
  retry: RetryOptions;
  /** Each attempt's bound, from sending the request to the last byte of the answer. */
  timeoutMs: number;
  delay: Delay;
  log: AttemptLog;
}

/**
 * A fetch that sends `request` until it has an answer worth returning. The answer's body is read within
 * the attempt (so the timeout covers it, and a connection reset halfway through is retried) and handed on
 * buffered. The request's own signal (the caller's) aborts everything, at once, with its reason.
 */
export function retryingFetch(opts: RetryingFetchOptions): FetchLike {
  return async (request) => {
    const callerSignal = request.signal;
    // Read once: every attempt sends exactly these bytes (a write's nonce among them).
    const body = request.body === null ? undefined : await request.arrayBuffer();
    for (let attempt = 1; ; attempt++) {
      opts.log.attempts = attempt;
      const build = (signal: AbortSignal) =>
        new Request(request.url, {
          method: request.method,
          headers: request.headers,
          body,
          redirect: request.redirect,
          signal,
        });
      let response: Response;
      try {
        response = await attemptOnce(opts.fetch, build, opts.timeoutMs, callerSignal);
      } catch (error) {
        if (callerSignal.aborted) throw callerSignal.reason;
        if (attempt >= opts.retry.attempts) throw new AttemptsSpent(attempt, error);
        await opts.delay(backoffDelayMs(attempt, opts.retry), callerSignal);
        continue;
      }
      opts.log.status = response.status;
      if (attempt >= opts.retry.attempts) return response;
      if (response.status === 503) {
        await opts.delay(backoffDelayMs(attempt, opts.retry), callerSignal);
        continue;
      }
      if (response.status === 429) {
        const askedMs = retryAfterMs(response.headers.get("retry-after"));
        if (askedMs !== undefined && askedMs > opts.retry.retryAfterMaxMs) return response;
        await opts.delay(askedMs ?? backoffDelayMs(attempt, opts.retry), callerSignal);
        continue;
      }
      return response;
    }
  };
}

/** One exchange, bounded by timeoutMs and the caller's signal, whether or not `fetch` heeds signals. */
async function attemptOnce(
  fetch: FetchLike,
  build: (signal: AbortSignal) => Request,
  timeoutMs: number,
  callerSignal: AbortSignal,
): Promise<Response> {
  const controller = new AbortController();
  const onCallerAbort = () => controller.abort(callerSignal.reason);
  if (callerSignal.aborted) onCallerAbort();
  callerSignal.addEventListener("abort", onCallerAbort, { once: true });
  const timer = setTimeout(
    () => controller.abort(new DOMException(`no answer within ${timeoutMs} ms`, "TimeoutError")),
    timeoutMs,
  );
  const aborted = new Promise<never>((_, reject) => {
    const fail = () => reject(controller.signal.reason as Error);
    if (controller.signal.aborted) fail();
    else controller.signal.addEventListener("abort", fail, { once: true });
  });
  const exchange = (async () => {
    const res = await fetch(build(controller.signal));
    const bytes = await res.arrayBuffer();
    // 204, 205 and 304 may not carry a body, not even an empty one.
    const noBody = res.status === 204 || res.status === 205 || res.status === 304;
    return new Response(noBody ? null : bytes, {
      status: res.status,
      statusText: res.statusText,
      headers: res.headers,
    });
  })();
  // Once the race is lost to the abort, the exchange's own failure has nobody left to hear it.
  exchange.catch(() => {});
  try {
    return await Promise.race([aborted, exchange]);
  } finally {
    clearTimeout(timer);
    callerSignal.removeEventListener("abort", onCallerAbort);
  }
}
