// A typed client for one ledger app: a method per route, typed from the app's generated OpenAPI paths,
// sent through openapi-fetch and the retrying fetch of retry.ts, every error answer turned into a typed
// error (errors.ts).
import createClient, { type Client } from "openapi-fetch";
import { asProblem, LedgerApiError, LedgerNetworkError, LedgerResponseError } from "./errors.js";
import {
  ATTEMPTS_MAX,
  AttemptsSpent,
  retryAfterMs,
  retryingFetch,
  RETRY_DEFAULTS,
  timerDelay,
  type AttemptLog,
  type Delay,
  type FetchLike,
  type RetryOptions,
} from "./retry.js";
import type {
  App1Paths,
  App2Paths,
  Balance,
  BalanceAt,
  BatchInput,
  BatchResult,
  CaptureInput,
  CaptureResult,
  CurrentKey,
  EntriesQuery,
  Entry,
  EntryPage,
  EntrySummary,
  EventPage,
  EventsQuery,
  Hold,
  HoldPage,
  HoldResult,
  HoldsQuery,
  LedgerPaths,
  PlaceHoldInput,
  PostInput,
  PostResult,
  ReinstateInput,
  ReinstateResult,
  ReleaseInput,
  ReleaseResult,
  ReversalInput,
  RequestBodyOf,
  ReversalResult,
  StreamQuery,
  SummaryQuery,
  SuspendInput,
  SuspendResult,
  TransferInput,
  TransferResult,
} from "./types.js";

export interface LedgerClientOptions {
  /** The app's root, e.g. `http://localhost:8000` (app1) or `http://localhost:8001` (app2). */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <apiKey>` on every request. */
  apiKey?: string;
  /** Default: globalThis.fetch. Tests pass one that calls `app.request()`. */
  fetch?: FetchLike;
  /** How often and how patiently a request is sent again; each field defaults to RETRY_DEFAULTS's. */
  retry?: Partial<RetryOptions>;
  /** Each attempt's bound, from sending to the answer's last byte. Default 10 s (the ledger's statement_timeout is 10 s too). */
  timeoutMs?: number;
  /** How the client waits between attempts. Default: a timer. */
  delay?: Delay;
}

export interface CallOptions {
  /** Aborts the call, retries and waits included; the call then rejects with the signal's reason. */
  signal?: AbortSignal;
}

export const TIMEOUT_MS_DEFAULT = 10_000;
/** Longest `timeoutMs` and retry delay accepted: an hour. */
export const DELAY_MS_MAX = 3_600_000;

/**
 * One app's routes, as functions that need no `this` (`const { post } = ledger` works). Writes take their body with an optional `nonce`: left out, the client makes one up
 * (crypto.randomUUID) once per call, and every attempt of that call sends it. Every method rejects with a
 * LedgerApiError (the ledger's refusal, typed `code`), a LedgerNetworkError (no answer after the
 * retries), a LedgerResponseError (an answer that is not the ledger's), or the signal's reason.
 */
export interface LedgerClient<P extends LedgerPaths> {
  /** POST /ledger: apply one of the app's operations to an owner. */
  post: (input: PostInput<P>, options?: CallOptions) => Promise<PostResult<P>>;
  /** POST /ledger/batch: up to 1,000 operations in one transaction (each item gets its own nonce). */
  batch: (input: BatchInput<P>, options?: CallOptions) => Promise<BatchResult<P>>;
  /** GET /ledger/{owner_id}: the balance now, what is held and available, what expires when. */
  balance: (ownerId: string, options?: CallOptions) => Promise<Balance<P>>;
  /** GET /ledger/{owner_id}?at=: the balance right after the owner's last entry at or before `at`. */
  balanceAt: (ownerId: string, at: Date | string, options?: CallOptions) => Promise<BalanceAt<P>>;
  /** GET /ledger/{owner_id}/entries: one page, newest first; pass `next_cursor` back as `cursor`. */
  entries: (ownerId: string, query?: EntriesQuery<P>, options?: CallOptions) => Promise<EntryPage<P>>;
  /** Every entry matching `query`, newest first, page after page as they are iterated. */
  allEntries: (
    ownerId: string,
    query?: Omit<EntriesQuery<P>, "cursor">,
    options?: CallOptions,
  ) => AsyncGenerator<Entry<P>, void, undefined>;
  /**
   * GET /ledger/{owner_id}/summary: the running balances at `from` and `to` (default: the 30 days before
   * now) and the entries between, summed by app and operation; the groups add up to `change` exactly.
   */
  summary: (ownerId: string, query?: SummaryQuery<P>, options?: CallOptions) => Promise<EntrySummary<P>>;
  /** GET /api-keys/current: the key this client sends (id, app, scopes, rate), or `auth: "off"`. */
  currentKey: (options?: CallOptions) => Promise<CurrentKey<P>>;
  readonly holds: {
    /** POST /ledger/holds: reserve credits for one of the app's debit operations. */
    place: (input: PlaceHoldInput<P>, options?: CallOptions) => Promise<HoldResult<P>>;
    /** POST /ledger/holds/{hold_id}/capture: spend what the hold holds (all of it, or `amount`). */
    capture: (holdId: string, input?: CaptureInput<P>, options?: CallOptions) => Promise<CaptureResult<P>>;
    /** POST /ledger/holds/{hold_id}/release: give the held credits back. */
    release: (holdId: string, input?: ReleaseInput<P>, options?: CallOptions) => Promise<ReleaseResult<P>>;
    /** GET /ledger/holds/{hold_id}: the hold (only the app that made it sees it). */
    get: (holdId: string, options?: CallOptions) => Promise<Hold<P>>;
    /** GET /ledger/{owner_id}/holds: one page of the owner's holds, newest first. */
    list: (ownerId: string, query?: HoldsQuery<P>, options?: CallOptions) => Promise<HoldPage<P>>;
  };
  /** POST /ledger/entries/{entry_id}/reversal: undo one of the app's entries, in full or `amount` of it. */
  reverse: (entryId: number, input?: ReversalInput<P>, options?: CallOptions) => Promise<ReversalResult<P>>;
  /** POST /ledger/transfers: move available credits from one owner to another. */
  transfer: (input: TransferInput<P>, options?: CallOptions) => Promise<TransferResult<P>>;
  /** POST /ledger/{owner_id}/suspension: refuse the owner's writes until reinstated. */
  suspend: (ownerId: string, input: SuspendInput<P>, options?: CallOptions) => Promise<SuspendResult<P>>;
  /** POST /ledger/{owner_id}/reinstatement. */
  reinstate: (
    ownerId: string,
    input?: ReinstateInput<P>,
    options?: CallOptions,
  ) => Promise<ReinstateResult<P>>;
  /** GET /ledger/events: one page of the event log in position order; pass `next_position` as `after`. */
  events: (query?: EventsQuery<P>, options?: CallOptions) => Promise<EventPage<P>>;
  /**
   * The URL of GET /ledger/{owner_id}/stream (Server-Sent Events), for an EventSource: the client does
   * not read streams itself. With an API key, use an EventSource that can send headers.
   */
  streamUrl: (ownerId: string, query?: StreamQuery<P>) => string;
}

export type App1Client = LedgerClient<App1Paths>;
export type App2Client = LedgerClient<App2Paths>;

/**
 * A client for one app, typed by its generated paths: `createLedgerClient<App1Paths>({ baseUrl })`
 * accepts only app1's operation names. Without a type argument it accepts any app's.
 */
export function createLedgerClient<P extends LedgerPaths = LedgerPaths>(
  options: LedgerClientOptions,
): LedgerClient<P> {
  // The routes' code is the same for every app; only the operation names their types allow differ
  // (test/client.test-d.ts holds the apps' paths to the same routes). So one implementation, typed over
  // every app's paths, is each app's client.
  return buildClient(options);
}

function buildClient(options: LedgerClientOptions): LedgerClient<LedgerPaths> {
  const retry = retryOptions(options.retry);
  const timeoutMs = options.timeoutMs ?? TIMEOUT_MS_DEFAULT;
  checkDelay("timeoutMs", timeoutMs, 1);
  const fetch: FetchLike = options.fetch ?? ((request) => globalThis.fetch(request));
  const delay = options.delay ?? timerDelay;
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  const api: Client<LedgerPaths> = createClient<LedgerPaths>({
    baseUrl,
    headers: options.apiKey === undefined ? {} : { authorization: `Bearer ${options.apiKey}` },
  });

  /** Runs one call: its attempts through the retrying fetch, its answer or its error made typed. */
  async function call<T>(
    route: string,
    nonces: readonly string[],
    run: (fetch: FetchLike) => Promise<{ data?: T; error?: unknown; response: Response }>,
  ): Promise<T> {
    const log: AttemptLog = { attempts: 0 };
    const facts = () => ({ route, attempts: log.attempts, nonces });
    let result: { data?: T; error?: unknown; response: Response };
    try {
      result = await run(retryingFetch({ fetch, retry, timeoutMs, delay, log }));
    } catch (error) {
      if (error instanceof AttemptsSpent) throw new LedgerNetworkError(facts(), error.last);
      if (error instanceof SyntaxError) {
        throw new LedgerResponseError(log.status ?? 0, `not JSON: ${error.message}`, facts());
      }
      throw error;
    }
    const { response } = result;
    if (response.ok) {
      if (result.data === undefined) throw new LedgerResponseError(response.status, "", facts());
      return result.data;
    }
    const problem = asProblem(result.error);
    if (!problem) throw new LedgerResponseError(response.status, result.error, facts());
    const retryAfter = retryAfterMs(response.headers.get("retry-after"));
    throw new LedgerApiError(problem, response.status, {
      ...facts(),
      retryAfterS: retryAfter === undefined ? undefined : Math.ceil(retryAfter / 1000),
    });
  }

  const signalOf = (o: CallOptions | undefined) => (o?.signal ? { signal: o.signal } : {});

  /** A write's body with its nonce: the caller's, or one made up now, once for all its attempts. */
  function withNonce<B extends { nonce?: string }>(input: B): B & { nonce: string } {
    return { ...input, nonce: input.nonce ?? globalThis.crypto.randomUUID() };
  }

  const client: LedgerClient<LedgerPaths> = {
    post(input, o) {
      const body = withNonce(input);
      return call("POST /ledger", [body.nonce], (fetch) =>
        api.POST("/ledger", { body, fetch, ...signalOf(o) }),
      );
    },
    batch(input, o) {
      // One app's items (P is one app's paths); typed over every app's paths, the array could mix them.
      const body = { ...input, operations: input.operations.map(withNonce) } as RequestBodyOf<
        LedgerPaths,
        "/ledger/batch"
      >;
      return call(
        "POST /ledger/batch",
        body.operations.map((op) => op.nonce),
        (fetch) => api.POST("/ledger/batch", { body, fetch, ...signalOf(o) }),
      );
    },
    async balance(ownerId, o) {
      const answer = await call("GET /ledger/{owner_id}", [], (fetch) =>
        api.GET("/ledger/{owner_id}", { params: { path: { owner_id: ownerId } }, fetch, ...signalOf(o) }),
      );
      // Without `at` the route answers the balance now (the BalanceAt shape only answers `at`).
      return answer as Balance<LedgerPaths>;
    },
    async balanceAt(ownerId, at, o) {
      const instant = at instanceof Date ? at.toISOString() : at;
      const answer = await call("GET /ledger/{owner_id}", [], (fetch) =>
        api.GET("/ledger/{owner_id}", {
          params: { path: { owner_id: ownerId }, query: { at: instant } },
          fetch,
          ...signalOf(o),
        }),
      );
      return answer as BalanceAt<LedgerPaths>;
    },
    entries(ownerId, query, o) {
      return call("GET /ledger/{owner_id}/entries", [], (fetch) =>
        api.GET("/ledger/{owner_id}/entries", {
          params: { path: { owner_id: ownerId }, ...(query ? { query } : {}) },
          fetch,
          ...signalOf(o),
        }),
      );
    },
    async *allEntries(ownerId, query, o) {
      let cursor: string | undefined;
      do {
        const page = await client.entries(ownerId, { ...query, ...(cursor ? { cursor } : {}) }, o);
        yield* page.entries;
        cursor = page.next_cursor ?? undefined;
      } while (cursor !== undefined);
    },
    summary(ownerId, query, o) {
      return call("GET /ledger/{owner_id}/summary", [], (fetch) =>
        api.GET("/ledger/{owner_id}/summary", {
          params: { path: { owner_id: ownerId }, ...(query ? { query } : {}) },
          fetch,
          ...signalOf(o),
        }),
      );
    },
    currentKey(o) {
      return call("GET /api-keys/current", [], (fetch) =>
        api.GET("/api-keys/current", { fetch, ...signalOf(o) }),
      );
    },
    holds: {
      place(input, o) {
        const body = withNonce(input);
        return call("POST /ledger/holds", [body.nonce], (fetch) =>
          api.POST("/ledger/holds", { body, fetch, ...signalOf(o) }),
        );
      },
      capture(holdId, input, o) {
        const body = withNonce(input ?? {});
        return call("POST /ledger/holds/{hold_id}/capture", [body.nonce], (fetch) =>
          api.POST("/ledger/holds/{hold_id}/capture", {
            params: { path: { hold_id: holdId } },
            body,
            fetch,
            ...signalOf(o),
          }),
        );
      },
      release(holdId, input, o) {
        const body = withNonce(input ?? {});
        return call("POST /ledger/holds/{hold_id}/release", [body.nonce], (fetch) =>
          api.POST("/ledger/holds/{hold_id}/release", {
            params: { path: { hold_id: holdId } },
            body,
            fetch,
            ...signalOf(o),
          }),
        );
      },
      async get(holdId, o) {
        const answer = await call("GET /ledger/holds/{hold_id}", [], (fetch) =>
          api.GET("/ledger/holds/{hold_id}", {
            params: { path: { hold_id: holdId } },
            fetch,
            ...signalOf(o),
          }),
        );
        return answer.hold;
      },
      list(ownerId, query, o) {
        return call("GET /ledger/{owner_id}/holds", [], (fetch) =>
          api.GET("/ledger/{owner_id}/holds", {
            params: { path: { owner_id: ownerId }, ...(query ? { query } : {}) },
            fetch,
            ...signalOf(o),
          }),
        );
      },
    },
    reverse(entryId, input, o) {
      const body = withNonce(input ?? {});
      return call("POST /ledger/entries/{entry_id}/reversal", [body.nonce], (fetch) =>
        api.POST("/ledger/entries/{entry_id}/reversal", {
          params: { path: { entry_id: entryId } },
          body,
          fetch,
          ...signalOf(o),
        }),
      );
    },
    transfer(input, o) {
      const body = withNonce(input);
      return call("POST /ledger/transfers", [body.nonce], (fetch) =>
        api.POST("/ledger/transfers", { body, fetch, ...signalOf(o) }),
      );
    },
    suspend(ownerId, input, o) {
      const body = withNonce(input);
      return call("POST /ledger/{owner_id}/suspension", [body.nonce], (fetch) =>
        api.POST("/ledger/{owner_id}/suspension", {
          params: { path: { owner_id: ownerId } },
          body,
          fetch,
          ...signalOf(o),
        }),
      );
    },
    reinstate(ownerId, input, o) {
      const body = withNonce(input ?? {});
      return call("POST /ledger/{owner_id}/reinstatement", [body.nonce], (fetch) =>
        api.POST("/ledger/{owner_id}/reinstatement", {
          params: { path: { owner_id: ownerId } },
          body,
          fetch,
          ...signalOf(o),
        }),
      );
    },
    events(query, o) {
      return call("GET /ledger/events", [], (fetch) =>
        api.GET("/ledger/events", { ...(query ? { params: { query } } : {}), fetch, ...signalOf(o) }),
      );
    },
    streamUrl(ownerId, query) {
      const search = query?.after === undefined ? "" : `?after=${query.after}`;
      return `${baseUrl}/ledger/${encodeURIComponent(ownerId)}/stream${search}`;
    },
  };
  return client;
}

function retryOptions(given: Partial<RetryOptions> | undefined): RetryOptions {
  const retry = { ...RETRY_DEFAULTS, ...given };
  if (!Number.isInteger(retry.attempts) || retry.attempts < 1 || retry.attempts > ATTEMPTS_MAX) {
    throw new RangeError(
      `retry.attempts must be a whole number from 1 to ${ATTEMPTS_MAX}; got ${retry.attempts}`,
    );
  }
  checkDelay("retry.baseDelayMs", retry.baseDelayMs, 0);
  checkDelay("retry.maxDelayMs", retry.maxDelayMs, 0);
  checkDelay("retry.retryAfterMaxMs", retry.retryAfterMaxMs, 0);
  return retry;
}

function checkDelay(name: string, ms: number, min: number): void {
  if (!Number.isFinite(ms) || ms < min || ms > DELAY_MS_MAX) {
    throw new RangeError(`${name} must be from ${min} to ${DELAY_MS_MAX} ms; got ${ms}`);
  }
}
