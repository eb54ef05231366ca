// Requests through app.request() (no port opened) and the response contracts as zod schemas, so every
// body a test reads is checked, not just cast.
import { expect } from "vitest";
import { z } from "zod";
import {
  balanceAtSchema as balanceAtContract,
  balanceSchema as balanceContract,
  entryPageSchema as entryPageContract,
  entrySchema as entryContract,
  entrySummarySchema,
  postResultSchema as postResultContract,
} from "../http/router.js";
import { freshNonce } from "./index.js";

/** What the helpers need of an app: the in-process request function. */
export interface RequestApp {
  request: (input: string, init?: RequestInit) => Response | Promise<Response>;
}

export const JSON_HEADERS: Readonly<Record<string, string>> = { "content-type": "application/json" };

// The response contracts are the router's own schemas (the ones the OpenAPI document is made from),
// made strict here: a test fails on any field the contract does not name.
export const entrySchema = entryContract.strict();
export type EntryBody = z.infer<typeof entrySchema>;

export const postResultSchema = postResultContract.extend({ entry: entrySchema }).strict();
export type PostResultBody = z.infer<typeof postResultSchema>;

export const balanceSchema = balanceContract.strict();
export const balanceAtSchema = balanceAtContract.strict();

export const entryPageSchema = entryPageContract.extend({ entries: z.array(entrySchema) }).strict();
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

/** GET /ledger/{owner_id}: the whole checked body. */
export async function readOwner(app: RequestApp, ownerId: string): Promise<z.infer<typeof balanceSchema>> {
  const res = await app.request(`/ledger/${encodeURIComponent(ownerId)}`);
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return balanceSchema.parse(JSON.parse(text));
}

/** GET /ledger/{owner_id}?at=: the balance at an instant. */
export async function balanceAt(app: RequestApp, ownerId: string, at: string): Promise<number> {
  const res = await app.request(`/ledger/${encodeURIComponent(ownerId)}?at=${encodeURIComponent(at)}`);
  const text = await res.text();
  expect(res.status, text).toBe(200);
  const body = balanceAtSchema.parse(JSON.parse(text));
  expect(body.owner_id).toBe(ownerId);
  expect(body.at).toBe(new Date(at).toISOString());
  return body.balance;
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

/** GET /ledger/{owner}/summary (query: `?from=...&to=...`), expected to answer 200. */
export async function getSummary(app: RequestApp, ownerId: string, query = "") {
  const res = await app.request(`/ledger/${encodeURIComponent(ownerId)}/summary${query}`);
  const text = await res.text();
  expect(res.status, text).toBe(200);
  const body = entrySummarySchema.parse(JSON.parse(text));
  expect(body.owner_id).toBe(ownerId);
  return body;
}

export interface PostInput {
  owner_id: string;
  operation: string;
  nonce: string;
  amount?: number;
  expires_at?: string;
}

/** A request body for an operation, with a fresh nonce unless one is given. */
export function op(
  owner: string,
  operation: string,
  opts: { amount?: number; nonce?: string; expires_at?: string } = {},
): PostInput {
  return {
    owner_id: owner,
    operation,
    nonce: opts.nonce ?? freshNonce(),
    ...(opts.amount === undefined ? {} : { amount: opts.amount }),
    ...(opts.expires_at === undefined ? {} : { expires_at: opts.expires_at }),
  };
}
