// Support for the HTTP suite: requests through app.request() (no port), the response contracts as zod
// schemas (so every body a test reads is checked, not just cast), and the snapshots the error cases
// compare against to prove that a refused request wrote nothing.
import type { LedgerDb } from "../db/client.js";
import { problemSchema, type HttpErrorCode, type Problem } from "../http/problem.js";
import { ledgerBalances, ledgerEntries, ledgerPostings } from "../db/schema.js";
import { freshNonce } from "./index.js";
import pino from "pino";
import { expect } from "vitest";
import { z } from "zod";

/** What the helpers need of an app: the in-process request function. */
export interface RequestApp {
  request: (input: string, init?: RequestInit) => Response | Promise<Response>;
}

export const silentLogger = pino({ level: "silent" });

export const JSON_HEADERS: Readonly<Record<string, string>> = { "content-type": "application/json" };

export const entrySchema = z.strictObject({
  id: z.number().int().positive(),
  app: z.string(),
  operation: z.string(),
  owner_id: z.string(),
  amount: z.number().int(),
  balance_after: z.number().int().nonnegative(),
  sequence: z.number().int().positive(),
  nonce: z.string(),
  created_at: z.iso.datetime(),
});
export type EntryBody = z.infer<typeof entrySchema>;

export const postResultSchema = z.strictObject({
  owner_id: z.string(),
  balance: z.number().int().nonnegative(),
  replayed: z.boolean(),
  entry: entrySchema,
});
export type PostResultBody = z.infer<typeof postResultSchema>;

export const balanceSchema = z.strictObject({
  owner_id: z.string(),
  balance: z.number().int().nonnegative(),
});

export const entryPageSchema = z.strictObject({
  owner_id: z.string(),
  entries: z.array(entrySchema),
  next_cursor: z.string().nullable(),
});
export type EntryPageBody = z.infer<typeof entryPageSchema>;

/** POST /ledger with a JSON body. */
export function postJson(app: RequestApp, body: unknown, path = "/ledger"): Promise<Response> {
  return postRaw(app, JSON.stringify(body), JSON_HEADERS, path);
}

/** POST /ledger with the body and headers exactly as given. */
export async function postRaw(
  app: RequestApp,
  body: string,
  headers: Readonly<Record<string, string>> = JSON_HEADERS,
  path = "/ledger",
): Promise<Response> {
  return app.request(path, { method: "POST", headers: { ...headers }, body });
}

/** Posts an operation and expects it applied (201); returns the checked body. */
export async function apply(
  app: RequestApp,
  input: { owner_id: string; operation: string; nonce: string; amount?: number },
): Promise<PostResultBody> {
  return expectApplied(await postJson(app, input));
}

export async function expectApplied(res: Response): Promise<PostResultBody> {
  const text = await res.text();
  expect(res.status, text).toBe(201);
  expect(res.headers.get("content-type")).toMatch(/^application\/json\b/);
  expect(res.headers.get("idempotent-replayed")).toBe("false");
  const body = postResultSchema.parse(JSON.parse(text));
  expect(body.replayed).toBe(false);
  return body;
}

export async function expectReplayed(res: Response): Promise<PostResultBody> {
  const text = await res.text();
  expect(res.status, text).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^application\/json\b/);
  expect(res.headers.get("idempotent-replayed")).toBe("true");
  const body = postResultSchema.parse(JSON.parse(text));
  expect(body.replayed).toBe(true);
  return body;
}

/**
 * Expects an RFC 9457 problem with this status and code, and the shape every error shares: a type
 * derived from the code, a title, a detail, and the request id the response header carries.
 */
export async function expectProblem(res: Response, status: number, code: HttpErrorCode): Promise<Problem> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json\b/);
  const problem = problemSchema.parse(JSON.parse(text));
  expect(problem).toMatchObject({
    status,
    code,
    type: `urn:ledger:problem:${code.toLowerCase().replaceAll("_", "-")}`,
  });
  expect(problem.title).not.toBe("");
  expect(problem.detail).not.toBe("");
  expect(problem.request_id).toBeTruthy();
  expect(res.headers.get("x-request-id")).toBe(problem.request_id);
  return problem;
}

export async function getBalance(app: RequestApp, ownerId: string): Promise<number> {
  const res = await app.request(`/ledger/${encodeURIComponent(ownerId)}`);
  const text = await res.text();
  expect(res.status, text).toBe(200);
  const body = balanceSchema.parse(JSON.parse(text));
  expect(body.owner_id).toBe(ownerId);
  return body.balance;
}

export async function getEntries(app: RequestApp, ownerId: string, query = ""): Promise<EntryPageBody> {
  const res = await app.request(`/ledger/${encodeURIComponent(ownerId)}/entries${query}`);
  const text = await res.text();
  expect(res.status, text).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^application\/json\b/);
  const body = entryPageSchema.parse(JSON.parse(text));
  expect(body.owner_id).toBe(ownerId);
  return body;
}

export interface OwnerState {
  balance: number;
  entryCount: number;
}

/** An owner's balance and number of entries, as the API reports them. */
export async function ownerState(app: RequestApp, ownerId: string): Promise<OwnerState> {
  // 200 is the largest page; no test gives one owner that many entries.
  const page = await getEntries(app, ownerId, "?limit=200");
  expect(page.next_cursor).toBeNull();
  return { balance: await getBalance(app, ownerId), entryCount: page.entries.length };
}

export interface TableCounts {
  entries: number;
  postings: number;
  balances: number;
}

/**
 * Row counts of every ledger table, read from the database itself: a refused request must not leave a
 * row anywhere, under any owner (not even an empty balance row for an owner id it made up).
 */
export async function tableCounts(db: LedgerDb): Promise<TableCounts> {
  return {
    entries: await db.$count(ledgerEntries),
    postings: await db.$count(ledgerPostings),
    balances: await db.$count(ledgerBalances),
  };
}

/** A clock the test moves by hand, for the daily limit. */
export function manualClock(start: string) {
  let now = new Date(start);
  return {
    now: (): Date => new Date(now),
    set: (iso: string): void => {
      now = new Date(iso);
    },
  };
}

/** The cursor format the ledger issues, forged, for tests of cursors it did not issue. */
export function forgeCursor(payload: string): string {
  return Buffer.from(payload).toString("base64url");
}

export interface PostInput {
  owner_id: string;
  operation: string;
  nonce: string;
  amount?: number;
}

/** A request body for an operation, with a fresh nonce unless one is given. */
export function op(
  owner: string,
  operation: string,
  opts: { amount?: number; nonce?: string } = {},
): PostInput {
  return {
    owner_id: owner,
    operation,
    nonce: opts.nonce ?? freshNonce(),
    ...(opts.amount === undefined ? {} : { amount: opts.amount }),
  };
}

/** A POST the ledger must refuse, and how. */
export interface BadPost {
  name: string;
  /** The raw body, built around a valid request that would move the owner's balance if accepted. */
  body: (valid: PostInput) => string;
  /** null: no content-type header at all. Default application/json. */
  contentType?: string | null;
  /** Send without a content-length header, as a chunked upload would. */
  streamed?: boolean;
  status: number;
  code: HttpErrorCode;
}

export const patched =
  (patch: Record<string, unknown>) =>
  (valid: PostInput): string =>
    JSON.stringify({ ...valid, ...patch });

const without =
  (key: keyof PostInput) =>
  (valid: PostInput): string =>
    JSON.stringify(Object.fromEntries(Object.entries(valid).filter(([k]) => k !== key)));

const asIs = (valid: PostInput): string => JSON.stringify(valid);

export const invalid = (name: string, body: BadPost["body"]): BadPost => ({
  name,
  body,
  status: 400,
  code: "VALIDATION_FAILED",
});

/** Sends a bad POST as bytes: a string body would get an implicit text/plain content type. */
export function sendBadPost(app: RequestApp, bad: BadPost, valid: PostInput): Promise<Response> {
  const bytes = new TextEncoder().encode(bad.body(valid));
  const headers = new Headers();
  if (bad.contentType !== null) headers.set("content-type", bad.contentType ?? "application/json");
  if (!bad.streamed) headers.set("content-length", String(bytes.byteLength));
  return Promise.resolve(app.request("/ledger", { method: "POST", headers, body: bytes }));
}

/**
 * Bad POSTs that every app refuses the same way, whatever its catalog: the transport, the shape, and the
 * owner_id, nonce and operation fields. Amounts and operations that depend on the catalog are the app's.
 */
export const commonBadPosts: readonly BadPost[] = [
  // The transport: body syntax, media type, size.
  {
    name: "malformed JSON",
    body: (v) => JSON.stringify(v).slice(0, -1),
    status: 400,
    code: "MALFORMED_JSON",
  },
  { name: "an empty body", body: () => "", status: 400, code: "MALFORMED_JSON" },
  {
    name: "a text/plain body",
    body: asIs,
    contentType: "text/plain",
    status: 415,
    code: "UNSUPPORTED_MEDIA_TYPE",
  },
  { name: "no content type", body: asIs, contentType: null, status: 415, code: "UNSUPPORTED_MEDIA_TYPE" },
  {
    name: "a form-encoded body",
    body: (v) =>
      new URLSearchParams({ owner_id: v.owner_id, operation: v.operation, nonce: v.nonce }).toString(),
    contentType: "application/x-www-form-urlencoded",
    status: 415,
    code: "UNSUPPORTED_MEDIA_TYPE",
  },
  {
    name: "a body over 16 KiB (valid JSON padded with spaces)",
    body: (v) => JSON.stringify(v) + " ".repeat(16 * 1024),
    status: 413,
    code: "PAYLOAD_TOO_LARGE",
  },
  {
    name: "a body over 16 KiB sent without a content-length",
    body: (v) => JSON.stringify(v) + " ".repeat(16 * 1024),
    streamed: true,
    status: 413,
    code: "PAYLOAD_TOO_LARGE",
  },
  // The shape.
  invalid("a JSON array", (v) => JSON.stringify([v])),
  invalid("JSON null", () => "null"),
  invalid("a JSON string", (v) => JSON.stringify(JSON.stringify(v))),
  invalid("owner_id as a number", patched({ owner_id: 42 })),
  invalid("operation as a number", patched({ operation: 1 })),
  invalid("operation as an array", (v) => JSON.stringify({ ...v, operation: [v.operation] })),
  invalid("nonce as a number", patched({ nonce: 12345 })),
  // The amount's type: a non-negative integer of at most 10^9, whatever the operation.
  invalid("amount -1", patched({ amount: -1 })),
  invalid("amount 1.5", patched({ amount: 1.5 })),
  invalid("amount 2^53", patched({ amount: 2 ** 53 })),
  invalid("amount 1e400 (Infinity once parsed)", (v) => JSON.stringify(v).replace(/}$/, ',"amount":1e400}')),
  invalid("amount null", patched({ amount: null })),
  invalid("amount true", patched({ amount: true })),
  // owner_id: 1..128 of letters, digits, _ . : @ -, not starting with . : @ -.
  invalid("owner_id missing", without("owner_id")),
  invalid("owner_id empty", patched({ owner_id: "" })),
  invalid("owner_id of 129 characters", patched({ owner_id: "a".repeat(129) })),
  invalid("owner_id with a NUL", patched({ owner_id: "a\u0000b" })),
  invalid("owner_id with a newline", patched({ owner_id: "a\nb" })),
  invalid("owner_id with a DEL", patched({ owner_id: "a\u007fb" })),
  invalid("owner_id with a slash", patched({ owner_id: "a/b" })),
  invalid('owner_id ".."', patched({ owner_id: ".." })),
  invalid('owner_id "../admin"', patched({ owner_id: "../admin" })),
  invalid('owner_id "a/../b"', patched({ owner_id: "a/../b" })),
  invalid("owner_id starting with -", patched({ owner_id: "-a" })),
  invalid("owner_id with a space", patched({ owner_id: "a b" })),
  invalid("owner_id with SQL in it", patched({ owner_id: "x' OR '1'='1" })),
  invalid("owner_id with non-ASCII letters", patched({ owner_id: "jürgen" })),
  // nonce: 1..128 printable ASCII, no spaces.
  invalid("nonce missing", without("nonce")),
  invalid("nonce empty", patched({ nonce: "" })),
  invalid("nonce of 129 characters", patched({ nonce: "n".repeat(129) })),
  invalid("nonce with a space", patched({ nonce: "n 1" })),
  invalid("nonce with a control character", patched({ nonce: "n\u00011" })),
  invalid("nonce with non-ASCII characters", patched({ nonce: "nönce" })),
  // operation.
  invalid("operation missing", without("operation")),
  invalid("operation empty", patched({ operation: "" })),
  invalid("operation of 65 characters", patched({ operation: "A".repeat(65) })),
  {
    name: "an unknown operation",
    body: patched({ operation: "FREE_MONEY" }),
    status: 400,
    code: "UNKNOWN_OPERATION",
  },
  {
    name: "an operation in lower case",
    body: (v) => JSON.stringify({ ...v, operation: v.operation.toLowerCase() }),
    status: 400,
    code: "UNKNOWN_OPERATION",
  },
  {
    name: "an operation named after an Object.prototype member",
    body: patched({ operation: "constructor" }),
    status: 400,
    code: "UNKNOWN_OPERATION",
  },
  // Unknown keys: the body is a strict object.
  invalid("an unknown key", patched({ extra: true })),
  invalid("a balance key (trying to set the balance)", patched({ balance: 1_000_000 })),
  invalid("an app key (trying to write as another app)", patched({ app: "another-app" })),
  invalid("a __proto__ key", (v) => JSON.stringify(v).replace(/}$/, ',"__proto__":{"amount":1}}')),
];

export interface BadPath {
  name: string;
  path: string;
  status: number;
  code: HttpErrorCode;
}

/** Owner ids in the path the ledger must refuse, or that never reach a ledger route. */
export const badOwnerPaths: readonly BadPath[] = [
  {
    name: "an owner id of 129 characters",
    path: `/ledger/${"a".repeat(129)}`,
    status: 400,
    code: "VALIDATION_FAILED",
  },
  { name: "an encoded NUL", path: "/ledger/a%00b", status: 400, code: "VALIDATION_FAILED" },
  { name: "an encoded newline", path: "/ledger/a%0Ab", status: 400, code: "VALIDATION_FAILED" },
  { name: "an encoded slash", path: "/ledger/a%2Fb", status: 400, code: "VALIDATION_FAILED" },
  { name: "an encoded space", path: "/ledger/a%20b", status: 400, code: "VALIDATION_FAILED" },
  { name: "a leading -", path: "/ledger/-a", status: 400, code: "VALIDATION_FAILED" },
  { name: "SQL in the owner id", path: "/ledger/x'%20OR%20'1'%3D'1", status: 400, code: "VALIDATION_FAILED" },
  { name: "non-ASCII letters", path: "/ledger/j%C3%BCrgen", status: 400, code: "VALIDATION_FAILED" },
  {
    name: "an owner id of 129 characters (entries)",
    path: `/ledger/${"a".repeat(129)}/entries`,
    status: 400,
    code: "VALIDATION_FAILED",
  },
  {
    name: "an encoded slash (entries)",
    path: "/ledger/a%2Fb/entries",
    status: 400,
    code: "VALIDATION_FAILED",
  },
  // A path that resolves elsewhere names no owner at all; it must not reach the balance route.
  { name: '".." (resolves to /)', path: "/ledger/..", status: 404, code: "NOT_FOUND" },
  { name: '"%2e%2e" (resolves to /)', path: "/ledger/%2e%2e", status: 404, code: "NOT_FOUND" },
  { name: "a slash in the owner id", path: "/ledger/a/b", status: 404, code: "NOT_FOUND" },
  { name: "no owner id", path: "/ledger/", status: 404, code: "NOT_FOUND" },
];

/** Query strings of GET /ledger/{owner_id}/entries that answer 400, and with which code. */
export const badPageQueries: readonly { name: string; query: string; code: HttpErrorCode }[] = [
  { name: "a cursor that decodes to nothing", query: "?cursor=zzz", code: "INVALID_CURSOR" },
  { name: "a cursor with characters outside base64url", query: "?cursor=s%3A1%21", code: "INVALID_CURSOR" },
  { name: "an empty cursor", query: "?cursor=", code: "INVALID_CURSOR" },
  { name: "a forged cursor at sequence 0", query: `?cursor=${forgeCursor("s:0")}`, code: "INVALID_CURSOR" },
  { name: "a forged negative cursor", query: `?cursor=${forgeCursor("s:-1")}`, code: "INVALID_CURSOR" },
  {
    name: "a forged cursor of another format",
    query: `?cursor=${forgeCursor("id:1")}`,
    code: "INVALID_CURSOR",
  },
  {
    name: "a forged cursor past 2^53",
    query: `?cursor=${forgeCursor("s:99999999999999999")}`,
    code: "INVALID_CURSOR",
  },
  { name: "a cursor of 65 characters", query: `?cursor=${"A".repeat(65)}`, code: "VALIDATION_FAILED" },
  { name: "limit 0", query: "?limit=0", code: "VALIDATION_FAILED" },
  { name: "limit 201", query: "?limit=201", code: "VALIDATION_FAILED" },
  { name: "limit -1", query: "?limit=-1", code: "VALIDATION_FAILED" },
  { name: "limit 1.5", query: "?limit=1.5", code: "VALIDATION_FAILED" },
  { name: "limit abc", query: "?limit=abc", code: "VALIDATION_FAILED" },
  { name: "an empty limit", query: "?limit=", code: "VALIDATION_FAILED" },
];

/** Requests no app answers, each a 404 problem. */
export const unknownRoutes: readonly { name: string; method: string; path: string }[] = [
  { name: "an unknown route", method: "GET", path: "/nope" },
  { name: "an unknown docs asset", method: "GET", path: "/docs/index.html" },
  { name: "a path out of the docs folder", method: "GET", path: "/docs/..%2F..%2Fpackage.json" },
  { name: "DELETE on an owner", method: "DELETE", path: "/ledger/someone" },
  { name: "PUT on the ledger", method: "PUT", path: "/ledger" },
];

/** Table rows as [name, row] pairs for `describe.each(...)("... %s", ...)`: `$name` would cut long names short. */
export function named<T extends { name: string }>(rows: readonly T[]): (readonly [string, T])[] {
  return rows.map((row) => [row.name, row] as const);
}
