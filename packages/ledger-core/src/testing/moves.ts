// Support shared by the reversal and transfer suites: their requests and strict response contracts, a
// clocked app, status changes, and a balance brought near the ledger's limit without nine million
// requests.
import { expect } from "vitest";
import type { z } from "zod";
import { reversalResultSchema } from "../features/reversals/routes.js";
import { transferResultSchema } from "../features/transfers/routes.js";
import { defineCatalog, fixed, sharedOperations, type OperationCatalogView } from "../domain/operations.js";
import { LedgerService } from "../service/ledger-service.js";
import { lockOwners } from "../store/load.js";
import { sqlClientOf } from "../store/sql-client.js";
import { writeAndCommit } from "../store/write.js";
import type { LedgerDb } from "../store/client.js";
import type { Effects } from "../engine/state.js";
import { eventsOf } from "../features/events/outbox.js";
import { eventWriter } from "../store/events.js";
import type { AppSurface } from "./app-surface.js";
import { freshNonce } from "./index.js";
import { manualClock, silentLogger } from "./deps.js";
import { entrySchema, JSON_HEADERS, type RequestApp } from "./requests.js";

export const START = "2026-03-01T10:00:00.000Z";
export const DAY_MS = 86_400_000;
export const at = (start: string, ms: number) => new Date(Date.parse(start) + ms).toISOString();

/** The app over the suite's database with a clock the test moves. */
export function clockedApp(s: AppSurface, start = START) {
  const clock = manualClock(start);
  const app = s.createApp({ db: s.db(), ping: s.ping, logger: silentLogger, clock: clock.now });
  return { clock, app };
}

export const reversalBodySchema = reversalResultSchema
  .extend({ entry: entrySchema, original: reversalResultSchema.shape.original.strict() })
  .strict();
export type ReversalBody = z.infer<typeof reversalBodySchema>;

const sideSchema = transferResultSchema.shape.from.extend({ entry: entrySchema }).strict();
export const transferBodySchema = transferResultSchema.extend({ from: sideSchema, to: sideSchema }).strict();
export type TransferBody = z.infer<typeof transferBodySchema>;

export function postReversal(app: RequestApp, entryId: number | string, body: unknown): Promise<Response> {
  return Promise.resolve(
    app.request(`/ledger/entries/${entryId}/reversal`, {
      method: "POST",
      headers: JSON_HEADERS,
      body: JSON.stringify(body),
    }),
  );
}

export function postTransfer(app: RequestApp, body: unknown): Promise<Response> {
  return Promise.resolve(
    app.request("/ledger/transfers", { method: "POST", headers: JSON_HEADERS, body: JSON.stringify(body) }),
  );
}

async function checked<T>(res: Response, status: 200 | 201, schema: z.ZodType<T>): Promise<T> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/^application\/json\b/);
  expect(res.headers.get("idempotent-replayed")).toBe(String(status === 200));
  const body = schema.parse(JSON.parse(text));
  expect((body as { replayed: boolean }).replayed).toBe(status === 200);
  return body;
}

/** Expects a reversal made (201) or replayed (200); returns the checked body. */
export const expectReversal = (res: Response, status: 200 | 201 = 201) =>
  checked(res, status, reversalBodySchema);

/** Expects a transfer made (201) or replayed (200); returns the checked body. */
export const expectTransfer = (res: Response, status: 200 | 201 = 201) =>
  checked(res, status, transferBodySchema);

/** Reverses an entry and expects it done: the checked body. */
export async function reverse(
  app: RequestApp,
  entryId: number,
  body: { amount?: number; reason?: string; nonce?: string } = {},
): Promise<ReversalBody> {
  return expectReversal(await postReversal(app, entryId, { nonce: freshNonce(), ...body }));
}

/** Transfers and expects it done: the checked body. */
export async function transfer(
  app: RequestApp,
  from: string,
  to: string,
  amount: number,
  nonce = freshNonce(),
): Promise<TransferBody> {
  return expectTransfer(await postTransfer(app, { from_owner_id: from, to_owner_id: to, amount, nonce }));
}

/** Suspends or reinstates an owner through its route (the suspension feature). */
export async function setOwnerStatus(app: RequestApp, owner: string, status: "suspended" | "active") {
  const path = status === "suspended" ? "suspension" : "reinstatement";
  const res = await app.request(`/ledger/${owner}/${path}`, {
    method: "POST",
    headers: JSON_HEADERS,
    body: JSON.stringify({ reason: `test ${path}`, nonce: freshNonce() }),
  });
  expect(res.status, await res.clone().text()).toBe(200);
}

/** A debit of the catalog larger than 1 (app1: CONTENT_CREATION, app2: TOKEN_USAGE), as a request's parts. */
export function largeDebit(catalog: OperationCatalogView): {
  operation: string;
  amount?: number;
  magnitude: number;
} {
  for (const name of catalog.names) {
    const def = catalog.get(name);
    if (def?.kind === "fixed" && def.amount < -1 && def.limit === undefined) {
      return { operation: name, magnitude: -def.amount };
    }
    if (
      def?.kind === "variable" &&
      def.direction === "debit" &&
      def.min <= 5 &&
      def.max >= 5 &&
      def.limit === undefined
    ) {
      return { operation: name, amount: 5, magnitude: 5 };
    }
  }
  throw new Error("the catalog has no debit larger than 1");
}

/** A service writing as the given app with a catalog of its own: entries no route of the app can make. */
export function serviceAs(s: AppSurface, app: string, clock?: () => Date): LedgerService {
  const catalog = defineCatalog({ ...sharedOperations, TEST_ZERO: fixed(0) });
  return new LedgerService({ db: s.db(), app, catalog, ...(clock ? { clock } : {}) });
}

/**
 * Gives a new owner a balance by one balanced entry written by the store itself (under the app
 * "test-setup"): what nine million requests would take through the API.
 */
export async function seedBalance(s: AppSurface, owner: string, balance: number, now: Date): Promise<void> {
  await seedBalanceIn(s.db(), owner, balance, now);
}

/** seedBalance on a database: the entry, its owner row and its event, as group commit writes them. */
export async function seedBalanceIn(db: LedgerDb, owner: string, balance: number, now: Date): Promise<void> {
  const effects: Effects = {
    entries: [
      {
        app: "test-setup",
        operation: "TEST_CREDIT",
        ownerId: owner,
        amount: balance,
        nonce: freshNonce(),
        limitPeriod: null,
        createdAt: now,
        expiresAt: null,
        balanceAfter: balance,
        heldAfter: 0,
        sequence: 1,
        holdId: null,
        reverses: null,
        counterpartyOwnerId: null,
        reason: null,
        actor: null,
      },
    ],
    owners: [{ ownerId: owner, balance, held: 0, lastSequence: 1, status: "active" }],
    unusedOwners: [],
    grants: [],
    allocations: [],
    holds: [],
    rows: new Map(),
  };
  effects.rows.set(eventWriter, eventsOf(effects, [null]));
  await sqlClientOf(db).transaction(async (tx) => {
    await lockOwners(tx, [owner]);
    await writeAndCommit(tx, effects, now);
  });
}

/** Whether the app has a route: holds and suspension are features of their own. */
export async function hasRoute(app: RequestApp, path: string): Promise<boolean> {
  const res = await app.request(path, { method: "POST", headers: JSON_HEADERS, body: "{}" });
  return res.status !== 404;
}
