// A client that knows what it does not know. Every POST ends in one of three outcomes: acknowledged
// (2xx: the ledger says the operation is applied), refused (4xx: the ledger says it is not), or unknown
// (a timeout, a reset or refused connection, a 5xx, an answer it cannot read): it may or may not have
// been applied. An unknown outcome is resolved by sending the same request again, to the same app with
// the same nonce, until the answer is definite.
import { setTimeout as sleep } from "node:timers/promises";
import { createLedgerClient, LedgerNetworkError } from "@ledger/client";
import { z } from "zod";
import type { AppName } from "./paths.js";

export const entrySchema = z.object({
  id: z.number().int().positive(),
  app: z.string(),
  operation: z.string(),
  owner_id: z.string(),
  amount: z.number().int(),
  balance_after: z.number().int(),
  sequence: z.number().int().positive(),
  nonce: z.string(),
  created_at: z.string(),
  /** A credit that expires, an EXPIRY entry (the expiry it recorded), a HOLD entry (the hold's). */
  expires_at: z.string().optional(),
  /** HOLD, HOLD_RELEASE, HOLD_EXPIRY and captures: the hold. */
  hold_id: z.string().optional(),
  /** A REVERSAL: the entry it reverses. */
  reverses: z.number().int().positive().optional(),
  /** An entry reversed in part or in full: what its reversals gave back so far. */
  reversed_amount: z.number().int().positive().optional(),
  /** TRANSFER_OUT and TRANSFER_IN: the other owner. */
  counterparty_owner_id: z.string().optional(),
  reason: z.string().optional(),
});
export type Entry = z.infer<typeof entrySchema>;

/** What every answer that changes an owner carries. */
const figures = { balance: z.number().int(), available: z.number().int() };

export const postResultSchema = z.object({
  owner_id: z.string(),
  ...figures,
  replayed: z.boolean(),
  entry: entrySchema,
});
export type PostResult = z.infer<typeof postResultSchema>;

export const holdSchema = z.object({
  id: z.string(),
  owner_id: z.string(),
  app: z.string(),
  operation: z.string(),
  amount: z.number().int().positive(),
  status: z.enum(["active", "captured", "released", "expired"]),
  expires_at: z.string(),
  created_at: z.string(),
  captured_amount: z.number().int().positive().optional(),
});
export type Hold = z.infer<typeof holdSchema>;

export const holdResultSchema = z.object({ hold: holdSchema, ...figures, replayed: z.boolean() });
export type HoldResult = z.infer<typeof holdResultSchema>;

export const captureResultSchema = holdResultSchema.extend({ entry: entrySchema });
export type CaptureResult = z.infer<typeof captureResultSchema>;

export const reversalResultSchema = z.object({
  ...figures,
  replayed: z.boolean(),
  entry: entrySchema,
  original: z.object({ id: z.number().int(), amount: z.number().int(), reversed_amount: z.number().int() }),
});
export type ReversalResult = z.infer<typeof reversalResultSchema>;

const transferSide = z.object({ owner_id: z.string(), ...figures, entry: entrySchema });
export const transferResultSchema = z.object({ from: transferSide, to: transferSide, replayed: z.boolean() });
export type TransferResult = z.infer<typeof transferResultSchema>;

export const statusResultSchema = z.object({
  owner_id: z.string(),
  status: z.enum(["active", "suspended"]),
  ...figures,
  replayed: z.boolean(),
  entry: entrySchema,
});
export type StatusResult = z.infer<typeof statusResultSchema>;

/** Each item answered as POST /ledger would have answered it alone: 201, 200 (a replay), or a problem. */
export const batchResultSchema = z.object({
  results: z.array(z.object({ status: z.number().int(), body: z.looseObject({}) })),
});
export type BatchResult = z.infer<typeof batchResultSchema>;

export const problemSchema = z.looseObject({
  status: z.number().int(),
  code: z.string(),
  errors: z.array(z.looseObject({ path: z.string() })).optional(),
  /** An atomic batch's refusal: the item refused. */
  index: z.number().int().optional(),
});
const expiringSchema = z.array(z.object({ amount: z.number().int(), expires_at: z.string() }));
const balanceSchema = z.object({
  owner_id: z.string(),
  balance: z.number().int(),
  available: z.number().int(),
  held: z.number().int(),
  status: z.enum(["active", "suspended"]),
  expiring: expiringSchema,
});
/** GET /ledger/{owner}'s figures besides the balance. */
export interface OwnerFigures {
  available: number;
  held: number;
  status: "active" | "suspended";
}
/** GET /ledger/{owner}'s unexpired credits with an expiry, summed by instant, soonest first. */
export type Expiring = z.infer<typeof expiringSchema>;
/** The body of POST /ledger. */
export interface PostBody {
  owner_id: string;
  operation: string;
  nonce: string;
  amount?: number;
  /** RFC 3339: when the credits of this request expire (operations that allow it). */
  expires_at?: string;
}

/** POST /ledger/holds. */
export interface HoldRequest {
  owner_id: string;
  operation: string;
  nonce: string;
  amount?: number;
  expires_in_s?: number;
}

/** POST /ledger/holds/{id}/capture (amount: all of it when left out) and /release (no amount). */
export interface SettleRequest {
  nonce: string;
  amount?: number;
}

/** POST /ledger/entries/{id}/reversal (amount: what is left when left out). */
export interface ReversalRequest {
  nonce: string;
  amount?: number;
  reason?: string;
}

/** POST /ledger/transfers. */
export interface TransferRequest {
  from_owner_id: string;
  to_owner_id: string;
  amount: number;
  nonce: string;
}

/** POST /ledger/{owner}/suspension (reason required) and /reinstatement. */
export interface StatusRequest {
  nonce: string;
  reason?: string;
}

/** POST /ledger/batch: each item the body of POST /ledger. */
export interface BatchRequest {
  operations: PostBody[];
  atomic?: boolean;
}

export type UnknownReason =
  "timeout" | "connection-refused" | "connection-reset" | "http-503" | "http-5xx" | "unreadable-answer";

export type Attempt<R = PostResult> =
  | { kind: "acked"; status: number; result: R }
  | {
      kind: "refused";
      status: number;
      code: string;
      /** The fields a 400 names (`errors[].path`), to tell which part of the request it refused. */
      paths?: string[];
      /** An atomic batch's refusal: the item it refused. */
      index?: number;
    }
  | { kind: "unknown"; reason: UnknownReason; detail: string };

function errorCode(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as Error & { code?: unknown }).code;
    if (typeof code === "string") return code;
  }
  return undefined;
}

/** What went wrong on the wire, as an unknown outcome. */
export function classifyFailure(error: unknown): Attempt<never> & { kind: "unknown" } {
  if (error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError")) {
    return { kind: "unknown", reason: "timeout", detail: error.message };
  }
  const code = errorCode(error);
  const detail = `${code ?? "no code"}: ${error instanceof Error ? error.message : String(error)}`;
  if (code === "ECONNREFUSED") return { kind: "unknown", reason: "connection-refused", detail };
  return { kind: "unknown", reason: "connection-reset", detail };
}

/**
 * Where requests go: an app's root and, where the app requires one (LEDGER_AUTH=required), the API key
 * every request carries. An AppProcess is one.
 */
export interface Endpoint {
  readonly baseUrl: string;
  readonly apiKey?: string | undefined;
}

const authorizationOf = (to: Endpoint): Record<string, string> =>
  to.apiKey === undefined ? {} : { authorization: `Bearer ${to.apiKey}` };

/** One POST /ledger, with a client-side timeout covering the whole exchange (body included). */
export function postOnce(to: Endpoint, body: PostBody, timeoutMs: number): Promise<Attempt> {
  return sendOnce(to, "/ledger", body, postResultSchema, timeoutMs);
}

/** One POST of any write route, its 2xx answer read with `schema`; the same timeout covers it all. */
export async function sendOnce<R>(
  to: Endpoint,
  path: string,
  body: unknown,
  schema: z.ZodType<R>,
  timeoutMs: number,
): Promise<Attempt<R>> {
  let status: number;
  let text: string;
  try {
    const res = await fetch(`${to.baseUrl}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...authorizationOf(to) },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    status = res.status;
    text = await res.text();
  } catch (error) {
    return classifyFailure(error);
  }
  if (status >= 500) {
    return { kind: "unknown", reason: status === 503 ? "http-503" : "http-5xx", detail: `${status} ${text}` };
  }
  if (status >= 400) {
    const problem = problemSchema.safeParse(safeJson(text));
    if (!problem.success) return { kind: "refused", status, code: `HTTP_${status}` };
    const paths = problem.data.errors?.map((e) => e.path);
    const index = problem.data.index;
    return {
      kind: "refused",
      status,
      code: problem.data.code,
      ...(paths ? { paths } : {}),
      ...(index === undefined ? {} : { index }),
    };
  }
  const result = schema.safeParse(safeJson(text));
  if ((status === 200 || status === 201) && result.success)
    return { kind: "acked", status, result: result.data };
  return { kind: "unknown", reason: "unreadable-answer", detail: `${status} ${text.slice(0, 200)}` };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export interface RetryOptions {
  /** Client-side timeout of each attempt. */
  timeoutMs: number;
  /** First pause between attempts; doubles up to retryDelayMaxMs. */
  retryDelayMs?: number;
  retryDelayMaxMs?: number;
  /** Give up (the outcome stays unknown) after this long. */
  giveUpAfterMs: number;
  /** Stops retrying (the outcome stays unknown) when aborted. */
  signal?: AbortSignal;
}

export interface Resolution<R = PostResult> {
  /** The definite answer; undefined when the outcome was still unknown when retrying stopped. */
  final: (Attempt<R> & { kind: "acked" | "refused" }) | undefined;
  attempts: number;
  /** Why each attempt before the definite one had an unknown outcome, in order. */
  unknowns: UnknownReason[];
  /** The last unknown attempt's detail, for a report. */
  lastUnknownDetail: string | undefined;
}

/** Sends the same POST /ledger until its answer is definite, or retrying is given up or aborted. */
export function postUntilDefinite(to: Endpoint, body: PostBody, opts: RetryOptions): Promise<Resolution> {
  return sendUntilDefinite(to, "/ledger", body, postResultSchema, opts);
}

/** Sends the same request (same path, same body) until its answer is definite, or retrying stops. */
export async function sendUntilDefinite<R>(
  to: Endpoint,
  path: string,
  body: unknown,
  schema: z.ZodType<R>,
  opts: RetryOptions,
): Promise<Resolution<R>> {
  const giveUpAt = Date.now() + opts.giveUpAfterMs;
  const unknowns: UnknownReason[] = [];
  let lastUnknownDetail: string | undefined;
  let delayMs = opts.retryDelayMs ?? 100;
  for (let attempts = 1; ; attempts++) {
    const attempt = await sendOnce(to, path, body, schema, opts.timeoutMs);
    if (attempt.kind !== "unknown") return { final: attempt, attempts, unknowns, lastUnknownDetail };
    unknowns.push(attempt.reason);
    lastUnknownDetail = attempt.detail;
    if (Date.now() + delayMs >= giveUpAt || opts.signal?.aborted) {
      return { final: undefined, attempts, unknowns, lastUnknownDetail };
    }
    try {
      await sleep(delayMs, undefined, { signal: opts.signal });
    } catch {
      return { final: undefined, attempts, unknowns, lastUnknownDetail };
    }
    delayMs = Math.min(delayMs * 2, opts.retryDelayMaxMs ?? 1_000);
  }
}

/**
 * The typed client (@ledger/client) for the read-backs. Reads are safe to repeat, and a restarting app
 * may refuse connections for seconds, so what bounds a read is time, as it always was here: each read
 * (each page of entries) is tried again, on the client's own retries and then on ours, until
 * `giveUpAfterMs` after it began. Writes keep the hand-written path above, which classifies every
 * unknown outcome.
 */
function readerFor(from: Endpoint, opts: RetryOptions) {
  return createLedgerClient({
    baseUrl: from.baseUrl,
    ...(from.apiKey === undefined ? {} : { apiKey: from.apiKey }),
    timeoutMs: opts.timeoutMs,
    retry: { attempts: 4, baseDelayMs: opts.retryDelayMs ?? 200, maxDelayMs: opts.retryDelayMaxMs ?? 1_000 },
  });
}

/** One read, sent again after the client's retries are spent, until `giveUpAfterMs` from now. */
async function read<T>(opts: RetryOptions, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const limit = AbortSignal.timeout(opts.giveUpAfterMs);
  const signal = opts.signal ? AbortSignal.any([opts.signal, limit]) : limit;
  for (;;) {
    try {
      return await fn(signal);
    } catch (error) {
      if (!(error instanceof LedgerNetworkError) || signal.aborted) throw error;
    }
  }
}

/** GET /ledger/{owner}: the balance that counts now, what of it expires when, what is held. */
export async function getBalanceView(
  from: Endpoint,
  ownerId: string,
  opts: RetryOptions,
): Promise<{ balance: number; expiring: Expiring; figures: OwnerFigures }> {
  const reader = readerFor(from, opts);
  const body = balanceSchema.parse(await read(opts, (signal) => reader.balance(ownerId, { signal })));
  return {
    balance: body.balance,
    expiring: body.expiring,
    figures: { available: body.available, held: body.held, status: body.status },
  };
}

/** GET /ledger/holds/{id}, through the app that made the hold (no other app sees it). */
export async function getHold(from: Endpoint, holdId: string, opts: RetryOptions): Promise<Hold> {
  const reader = readerFor(from, opts);
  return holdSchema.parse(await read(opts, (signal) => reader.holds.get(holdId, { signal })));
}

export async function getBalance(from: Endpoint, ownerId: string, opts: RetryOptions): Promise<number> {
  return (await getBalanceView(from, ownerId, opts)).balance;
}

/** Every entry of one owner, newest first, page by page (each page a read of its own). */
export async function getAllEntries(from: Endpoint, ownerId: string, opts: RetryOptions): Promise<Entry[]> {
  const reader = readerFor(from, opts);
  const entries: Entry[] = [];
  let cursor: string | undefined;
  do {
    const query = { limit: 200, ...(cursor === undefined ? {} : { cursor }) };
    const page = await read(opts, (signal) => reader.entries(ownerId, query, { signal }));
    entries.push(...page.entries.map((e) => entrySchema.parse(e)));
    cursor = page.next_cursor ?? undefined;
  } while (cursor !== undefined);
  return entries;
}

/** Runs the tasks with at most `concurrency` in flight; results in task order. */
export async function inPool<T>(tasks: (() => Promise<T>)[], concurrency: number): Promise<T[]> {
  const results: T[] = new Array<T>(tasks.length);
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < tasks.length; i = next++) {
      const task = tasks[i];
      if (task) results[i] = await task();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return results;
}

export interface LedgerRead {
  entries: Entry[];
  balances: Map<string, number>;
  expiring: Map<string, Expiring>;
  /** Each owner's available, held and status, as GET /ledger/{owner} answered them with its balance. */
  figures: Map<string, OwnerFigures>;
  /** The holds asked for, by id, as GET /ledger/holds/{id} answered them. */
  holds: Map<string, Hold>;
  /**
   * The client's clock (epoch ms) before the first read and after the last answer. A balance counts
   * a grant's remainder until its expires_at, so which grants counted depends on when the ledger read
   * it: some instant inside this window (the apps run on this machine's clock).
   */
  readWindow: { fromMs: number; toMs: number };
}

/**
 * Reads back every owner's history and balance over HTTP, `lanes` owners at a time, alternating
 * between the two apps (an owner's balance is one, whichever app reads it).
 */
export async function readLedger(
  apps: Readonly<Record<AppName, Endpoint>>,
  owners: readonly string[],
  retry: RetryOptions,
  lanes: number,
  holdsToRead: readonly { app: AppName; id: string }[] = [],
): Promise<LedgerRead> {
  const entries: Entry[] = [];
  const balances = new Map<string, number>();
  const expiring = new Map<string, Expiring>();
  const figures = new Map<string, OwnerFigures>();
  const holds = new Map<string, Hold>();
  const fromMs = Date.now();
  await inPool(
    [
      ...owners.map((owner, i) => async () => {
        const app = apps[i % 2 === 0 ? "app1" : "app2"];
        entries.push(...(await getAllEntries(app, owner, retry)));
        const view = await getBalanceView(app, owner, retry);
        balances.set(owner, view.balance);
        expiring.set(owner, view.expiring);
        figures.set(owner, view.figures);
      }),
      ...holdsToRead.map((h) => async () => {
        holds.set(h.id, await getHold(apps[h.app], h.id, retry));
      }),
    ],
    lanes,
  );
  return { entries, balances, expiring, figures, holds, readWindow: { fromMs, toMs: Date.now() } };
}
