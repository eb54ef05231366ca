// Holds through HTTP, for every app: placing, capturing and releasing a hold, reading and listing holds,
// what a hold does to `held` and `available` and to every debit, the grants a hold takes and keeps from
// expiring, a hold's own expiry (by a read, the next write and the sweeper), replays and conflicts of
// their nonces across every route, and another app's holds. describeAppSurface runs it; the routes'
// hostile input is in hostile-holds.ts.
import { describe, expect, it, onTestFinished } from "vitest";
import { z } from "zod";
import type { OperationCatalogView } from "../domain/operations.js";
import { HOLD_EXPIRES_IN_S_DEFAULT, HOLD_EXPIRES_IN_S_MAX } from "../domain/holds.js";
import type { ErrorList } from "../engine/command.js";
import { CAPTURE_HOLD_ERRORS, PLACE_HOLD_ERRORS, RELEASE_HOLD_ERRORS } from "../features/holds/command.js";
import {
  captureResultSchema as captureResultContract,
  holdPageSchema as holdPageContract,
  holdReadSchema as holdReadContract,
  holdResultSchema as holdResultContract,
  holdSchema as holdContract,
} from "../features/holds/routes.js";
import { ledgerAppFactory } from "../http/app.js";
import { STATUS_BY_CODE, type HttpErrorCode } from "../http/problem.js";
import { freshNonce, freshOwner } from "./index.js";
import { manualClock, silentLogger } from "./deps.js";
import { expectProblem } from "./problems.js";
import {
  apply,
  entrySchema,
  getEntries,
  JSON_HEADERS,
  op,
  postJson,
  readOwner,
  type RequestApp,
} from "./requests.js";
import { ownerState, tableCounts } from "./snapshots.js";
import { postStatus } from "./suspension.js";
import { named } from "./tables.js";
import type { AppSurface } from "./app-surface.js";

export const holdBodySchema = holdContract.strict();
export type HoldBody = z.infer<typeof holdBodySchema>;
export const holdResultSchema = holdResultContract.extend({ hold: holdBodySchema }).strict();
export type HoldResultBody = z.infer<typeof holdResultSchema>;
export const captureResultSchema = captureResultContract
  .extend({ hold: holdBodySchema, entry: entrySchema })
  .strict();
export type CaptureResultBody = z.infer<typeof captureResultSchema>;
const holdReadSchema = holdReadContract.extend({ hold: holdBodySchema }).strict();
const holdPageSchema = holdPageContract.extend({ holds: z.array(holdBodySchema) }).strict();

export const START = "2026-03-01T10:00:00.000Z";
const at = (start: string, ms: number) => new Date(Date.parse(start) + ms).toISOString();
const HOUR_MS = 3_600_000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

export interface HoldRequest {
  owner_id: string;
  operation: string;
  nonce: string;
  amount?: number;
  expires_in_s?: number;
}

/** A hold request for an owner, with a fresh nonce unless one is given. */
export function holdOf(
  owner: string,
  operation: string,
  opts: { amount?: number; nonce?: string; expires_in_s?: number } = {},
): HoldRequest {
  return {
    owner_id: owner,
    operation,
    nonce: opts.nonce ?? freshNonce(),
    ...(opts.amount === undefined ? {} : { amount: opts.amount }),
    ...(opts.expires_in_s === undefined ? {} : { expires_in_s: opts.expires_in_s }),
  };
}

const post = (app: RequestApp, path: string, body: unknown) =>
  Promise.resolve(
    app.request(path, { method: "POST", headers: { ...JSON_HEADERS }, body: JSON.stringify(body) }),
  );

export const postHold = (app: RequestApp, body: unknown) => post(app, "/ledger/holds", body);
export const postCapture = (app: RequestApp, holdId: string, body: unknown) =>
  post(app, `/ledger/holds/${holdId}/capture`, body);
export const postRelease = (app: RequestApp, holdId: string, body: unknown) =>
  post(app, `/ledger/holds/${holdId}/release`, body);

async function checked<S extends z.ZodType>(
  res: Response,
  status: number,
  schema: S,
  replayed?: boolean,
): Promise<z.infer<S>> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/^application\/json\b/);
  if (replayed !== undefined) expect(res.headers.get("idempotent-replayed")).toBe(String(replayed));
  return schema.parse(JSON.parse(text));
}

export const expectHeld = (res: Response, status: 200 | 201 = 201) =>
  checked(res, status, holdResultSchema, status === 200);
export const expectCaptured = (res: Response, status: 200 | 201 = 201) =>
  checked(res, status, captureResultSchema, status === 200);
export const expectReleased = (res: Response, replayed = false) =>
  checked(res, 200, holdResultSchema, replayed);

/** Places a hold and expects it made (201). */
export async function hold(app: RequestApp, body: HoldRequest): Promise<HoldResultBody> {
  const result = await expectHeld(await postHold(app, body));
  expect(result.replayed).toBe(false);
  return result;
}

export async function capture(
  app: RequestApp,
  holdId: string,
  opts: { amount?: number; nonce?: string } = {},
): Promise<CaptureResultBody> {
  const result = await expectCaptured(await postCapture(app, holdId, { nonce: freshNonce(), ...opts }));
  expect(result.replayed).toBe(false);
  return result;
}

export async function release(
  app: RequestApp,
  holdId: string,
  nonce = freshNonce(),
): Promise<HoldResultBody> {
  const result = await expectReleased(await postRelease(app, holdId, { nonce }));
  expect(result.replayed).toBe(false);
  return result;
}

export async function getHold(app: RequestApp, holdId: string): Promise<HoldBody> {
  return (await checked(await Promise.resolve(app.request(`/ledger/holds/${holdId}`)), 200, holdReadSchema))
    .hold;
}

export async function listHolds(app: RequestApp, owner: string, query = "") {
  const page = await checked(
    await Promise.resolve(app.request(`/ledger/${owner}/holds${query}`)),
    200,
    holdPageSchema,
  );
  expect(page.owner_id).toBe(owner);
  return page;
}

/** Gives an owner CREDIT_ADD's ten credits `times` times. */
export async function fund(app: RequestApp, owner: string, times = 1, expires_at?: string): Promise<void> {
  for (let i = 0; i < times; i++) {
    await apply(app, op(owner, "CREDIT_ADD", expires_at === undefined ? {} : { expires_at }));
  }
}

/** The catalog's debit operations a hold may name, as [name, magnitude or undefined for variable]. */
function debits(catalog: OperationCatalogView) {
  const fixed: { name: string; amount: number }[] = [];
  const variable: { name: string; min: number; max: number }[] = [];
  for (const name of catalog.names) {
    const def = catalog.get(name);
    if (!def || def.limit !== undefined) continue;
    if (def.kind === "fixed" && def.amount < 0) fixed.push({ name, amount: -def.amount });
    if (def.kind === "variable" && def.direction === "debit")
      variable.push({ name, min: def.min, max: def.max });
  }
  return { fixed, variable };
}

/** Every operation of the catalog no hold may name, and why (the test's own reading of the rule). */
function unholdable(catalog: OperationCatalogView): { name: string; why: string }[] {
  return catalog.names.flatMap((name) => {
    const def = catalog.get(name);
    if (!def) return [];
    const credit = def.kind === "fixed" ? def.amount > 0 : def.direction === "credit";
    if (credit) return [{ name, why: "a credit" }];
    if (def.kind === "fixed" && def.amount === 0) return [{ name, why: "a zero amount" }];
    if (def.limit !== undefined) return [{ name, why: `a ${def.limit} limit` }];
    return [];
  });
}

export function describeHolds(s: AppSurface): void {
  const { fixed, variable } = debits(s.catalog);
  const SPEND = "CREDIT_SPEND";
  const varOp = variable[0];
  const clocked = (start = START) => {
    const clock = manualClock(start);
    const app = s.createApp({ db: s.db(), ping: s.ping, logger: silentLogger, clock: clock.now });
    return { clock, app };
  };
  /** Another app over the same database and catalog: its holds are none of this app's business. */
  const foreign = (clock?: () => Date) =>
    ledgerAppFactory({ name: s.foreignApp, catalog: s.catalog, title: "other", version: "0" })({
      db: s.db(),
      ping: s.ping,
      logger: silentLogger,
      ...(clock ? { clock } : {}),
    });
  const state = async (app: RequestApp, owner: string) => ({
    owner: await ownerState(app, owner),
    tables: await tableCounts(s.db()),
  });

  describe("POST /ledger/holds", () => {
    it("holds a fixed debit's amount: 201 with the hold, the balance and what is available; reads count it as held", async () => {
      const { app } = clocked();
      const owner = freshOwner();
      await fund(app, owner);
      const res = await postHold(app, holdOf(owner, SPEND));
      const body = await expectHeld(res);
      expect(body).toEqual({
        hold: {
          id: expect.stringMatching(UUID) as string,
          owner_id: owner,
          app: s.name,
          operation: SPEND,
          amount: 1,
          status: "active",
          expires_at: at(START, HOLD_EXPIRES_IN_S_DEFAULT * 1000),
          created_at: START,
        },
        balance: 10,
        available: 9,
        replayed: false,
      });
      expect(await readOwner(app, owner)).toMatchObject({ balance: 10, held: 1, available: 9 });
      expect(await getHold(app, body.hold.id)).toEqual(body.hold);
      const [entry] = (await getEntries(app, owner)).entries;
      expect(entry).toMatchObject({
        operation: "HOLD",
        amount: 0,
        balance_after: 10,
        hold_id: body.hold.id,
        expires_at: body.hold.expires_at,
        app: s.name,
      });
    });

    it("takes expires_in_s from 1 to 604800 seconds", async () => {
      const { app } = clocked();
      const owner = freshOwner();
      await fund(app, owner);
      for (const seconds of [1, HOLD_EXPIRES_IN_S_MAX]) {
        const { hold: made } = await hold(app, holdOf(owner, SPEND, { expires_in_s: seconds }));
        expect(made.expires_at).toBe(at(START, seconds * 1000));
      }
    });

    it.each(fixed.map((f) => [f.name, f] as const))(
      "holds %s for its own amount, sent or not",
      async (_, f) => {
        const { app } = clocked();
        const owner = freshOwner();
        await fund(app, owner, Math.ceil((2 * f.amount) / 10));
        const first = await hold(app, holdOf(owner, f.name));
        const second = await hold(app, holdOf(owner, f.name, { amount: f.amount }));
        expect([first.hold.amount, second.hold.amount]).toEqual([f.amount, f.amount]);
        expect(second.available).toBe(second.balance - 2 * f.amount);
      },
    );

    if (varOp) {
      it(`holds a variable debit (${varOp.name}) for the amount asked, within its bounds`, async () => {
        const { app } = clocked();
        const owner = freshOwner();
        await fund(app, owner);
        const amount = Math.min(varOp.max, Math.max(varOp.min, 4));
        const made = await hold(app, holdOf(owner, varOp.name, { amount }));
        expect(made).toMatchObject({
          hold: { amount, operation: varOp.name },
          balance: 10,
          available: 10 - amount,
        });
      });
    }

    describe.each(named(unholdable(s.catalog).map((u) => ({ ...u, name: `${u.name} (${u.why})` }))))(
      "refuses an operation that cannot be held: %s",
      (_, row) => {
        it("answers 400 VALIDATION_FAILED naming operation, and writes nothing", async () => {
          const owner = freshOwner();
          await fund(s.app(), owner);
          const before = await state(s.app(), owner);
          const problem = await expectProblem(
            await postHold(s.app(), holdOf(owner, row.name.split(" ")[0] ?? "")),
            400,
            "VALIDATION_FAILED",
          );
          expect(problem.errors?.map((e) => e.path)).toEqual(["operation"]);
          expect(await state(s.app(), owner)).toEqual(before);
        });
      },
    );

    const refusals: {
      name: string;
      body: (owner: string) => unknown;
      status: number;
      code: HttpErrorCode;
    }[] = [
      {
        name: "an unknown operation",
        body: (o) => holdOf(o, "FREE_MONEY"),
        status: 400,
        code: "UNKNOWN_OPERATION",
      },
      {
        name: "another app's operation",
        body: (o) => holdOf(o, s.foreignOperations[0] ?? "NOPE"),
        status: 400,
        code: "UNKNOWN_OPERATION",
      },
      {
        name: "a fixed debit with another amount",
        body: (o) => holdOf(o, SPEND, { amount: 2 }),
        status: 400,
        code: "AMOUNT_MISMATCH",
      },
      {
        name: "a fixed debit with amount 0",
        body: (o) => holdOf(o, SPEND, { amount: 0 }),
        status: 400,
        code: "AMOUNT_MISMATCH",
      },
      {
        name: "expires_in_s 0",
        body: (o) => holdOf(o, SPEND, { expires_in_s: 0 }),
        status: 400,
        code: "VALIDATION_FAILED",
      },
      {
        name: `expires_in_s ${HOLD_EXPIRES_IN_S_MAX + 1}`,
        body: (o) => holdOf(o, SPEND, { expires_in_s: HOLD_EXPIRES_IN_S_MAX + 1 }),
        status: 400,
        code: "VALIDATION_FAILED",
      },
      {
        name: "an unknown key",
        body: (o) => ({ ...holdOf(o, SPEND), hold_id: "x" }),
        status: 400,
        code: "VALIDATION_FAILED",
      },
      {
        name: "no nonce",
        body: (o) => ({ owner_id: o, operation: SPEND }),
        status: 400,
        code: "VALIDATION_FAILED",
      },
      {
        name: "an owner with nothing",
        body: () => holdOf(freshOwner(), SPEND),
        status: 422,
        code: "INSUFFICIENT_BALANCE",
      },
      ...(varOp
        ? [
            {
              name: `${varOp.name} without an amount`,
              body: (o: string) => holdOf(o, varOp.name),
              status: 400,
              code: "AMOUNT_REQUIRED" as const,
            },
            {
              name: `${varOp.name} above its bounds`,
              body: (o: string) => holdOf(o, varOp.name, { amount: varOp.max + 1 }),
              status: 400,
              code: "AMOUNT_OUT_OF_RANGE" as const,
            },
            {
              name: `${varOp.name} with amount 0`,
              body: (o: string) => holdOf(o, varOp.name, { amount: 0 }),
              status: 400,
              code: "AMOUNT_OUT_OF_RANGE" as const,
            },
            {
              name: `${varOp.name} for more than available`,
              body: (o: string) => holdOf(o, varOp.name, { amount: Math.max(varOp.min, 11) }),
              status: 422,
              code: "INSUFFICIENT_BALANCE" as const,
            },
          ]
        : []),
    ];
    describe.each(named(refusals))("refuses %s", (_, row) => {
      it(`answers ${row.status} ${row.code} and writes nothing`, async () => {
        const owner = freshOwner();
        await fund(s.app(), owner);
        const before = await state(s.app(), owner);
        await expectProblem(await postHold(s.app(), row.body(owner)), row.status, row.code);
        expect(await state(s.app(), owner)).toEqual(before);
      });
    });

    it("refuses a hold for more than is available (other holds hold the rest) with 422 INSUFFICIENT_BALANCE", async () => {
      const owner = freshOwner();
      await fund(s.app(), owner);
      for (let i = 0; i < 10; i++) await hold(s.app(), holdOf(owner, SPEND));
      expect(await readOwner(s.app(), owner)).toMatchObject({ balance: 10, held: 10, available: 0 });
      const before = await state(s.app(), owner);
      const problem = await expectProblem(
        await postHold(s.app(), holdOf(owner, SPEND)),
        422,
        "INSUFFICIENT_BALANCE",
      );
      expect(problem.details).toMatchObject({ balance: 0, required: 1 });
      expect(await state(s.app(), owner)).toEqual(before);
    });

    it("makes every debit check available credits, not the balance: a spend the balance covers is refused", async () => {
      const owner = freshOwner();
      await fund(s.app(), owner);
      await hold(s.app(), holdOf(owner, SPEND));
      for (let i = 0; i < 9; i++) await apply(s.app(), op(owner, SPEND));
      expect(await readOwner(s.app(), owner)).toMatchObject({ balance: 1, held: 1, available: 0 });
      const before = await state(s.app(), owner);
      await expectProblem(await postJson(s.app(), op(owner, SPEND)), 422, "INSUFFICIENT_BALANCE");
      expect(await state(s.app(), owner)).toEqual(before);
    });
  });

  describe("POST /ledger/holds/{hold_id}/capture", () => {
    it("captures a fixed debit's hold: 201 with the captured hold, its entry, and the balance", async () => {
      const { app } = clocked();
      const owner = freshOwner();
      await fund(app, owner);
      const { hold: made } = await hold(app, holdOf(owner, SPEND));
      const nonce = freshNonce();
      const captured = await expectCaptured(await postCapture(app, made.id, { nonce }));
      expect(captured).toEqual({
        hold: { ...made, status: "captured", captured_amount: 1 },
        entry: expect.objectContaining({
          app: s.name,
          operation: SPEND,
          owner_id: owner,
          amount: -1,
          balance_after: 9,
          sequence: 3,
          nonce,
          hold_id: made.id,
        }) as unknown,
        balance: 9,
        available: 9,
        replayed: false,
      });
      expect(await getHold(app, made.id)).toEqual(captured.hold);
      expect(await readOwner(app, owner)).toMatchObject({ balance: 9, held: 0, available: 9 });
      expect((await getEntries(app, owner)).entries[0]).toEqual(captured.entry);
    });

    it("takes a fixed debit's own amount when sent, and refuses another with AMOUNT_MISMATCH or CAPTURE_EXCEEDS_HOLD", async () => {
      const owner = freshOwner();
      await fund(s.app(), owner);
      const { hold: made } = await hold(s.app(), holdOf(owner, SPEND));
      const before = await state(s.app(), owner);
      await expectProblem(
        await postCapture(s.app(), made.id, { nonce: freshNonce(), amount: 0 }),
        400,
        "AMOUNT_MISMATCH",
      );
      const over = await expectProblem(
        await postCapture(s.app(), made.id, { nonce: freshNonce(), amount: 2 }),
        422,
        "CAPTURE_EXCEEDS_HOLD",
      );
      expect(over.details).toMatchObject({ hold_id: made.id, held: 1, requested: 2 });
      expect(await state(s.app(), owner)).toEqual(before);
      expect((await capture(s.app(), made.id, { amount: 1 })).hold.captured_amount).toBe(1);
    });

    if (varOp) {
      it(`captures part of a variable debit's hold (${varOp.name}) and releases the rest; all of it by default`, async () => {
        const owner = freshOwner();
        await fund(s.app(), owner);
        const { hold: first } = await hold(s.app(), holdOf(owner, varOp.name, { amount: 5 }));
        const { hold: second } = await hold(s.app(), holdOf(owner, varOp.name, { amount: 3 }));
        const before = await state(s.app(), owner);
        await expectProblem(
          await postCapture(s.app(), first.id, { nonce: freshNonce(), amount: 0 }),
          400,
          "AMOUNT_OUT_OF_RANGE",
        );
        await expectProblem(
          await postCapture(s.app(), first.id, { nonce: freshNonce(), amount: 6 }),
          422,
          "CAPTURE_EXCEEDS_HOLD",
        );
        expect(await state(s.app(), owner)).toEqual(before);
        const part = await capture(s.app(), first.id, { amount: 2 });
        expect(part).toMatchObject({
          hold: { status: "captured", amount: 5, captured_amount: 2 },
          entry: { operation: varOp.name, amount: -2, balance_after: 8 },
          balance: 8,
          available: 5,
        });
        const all = await capture(s.app(), second.id);
        expect(all).toMatchObject({
          hold: { captured_amount: 3 },
          entry: { amount: -3 },
          balance: 5,
          available: 5,
        });
        expect(await readOwner(s.app(), owner)).toMatchObject({ balance: 5, held: 0, available: 5 });
      });
    }

    it("answers 409 HOLD_NOT_ACTIVE with the hold's status for a hold captured, released or expired, writing nothing", async () => {
      const { app, clock } = clocked();
      const owner = freshOwner();
      await fund(app, owner);
      const { hold: captured } = await hold(app, holdOf(owner, SPEND));
      await capture(app, captured.id);
      const { hold: released } = await hold(app, holdOf(owner, SPEND));
      await release(app, released.id);
      const { hold: expiring } = await hold(app, holdOf(owner, SPEND, { expires_in_s: 60 }));
      clock.set(at(START, 60_000));
      const before = await state(app, owner);
      for (const [made, status] of [
        [captured, "captured"],
        [released, "released"],
        [expiring, "expired"],
      ] as const) {
        for (const res of [
          await postCapture(app, made.id, { nonce: freshNonce() }),
          await postRelease(app, made.id, { nonce: freshNonce() }),
        ]) {
          const problem = await expectProblem(res, 409, "HOLD_NOT_ACTIVE");
          expect(problem.hold_status).toBe(status);
          expect(problem.details).toMatchObject({ hold_id: made.id, hold_status: status });
        }
      }
      expect(await state(app, owner)).toEqual(before);
    });

    it("answers 404 HOLD_NOT_FOUND for a hold id no hold has, and 400 for one the ledger never issues", async () => {
      const id = "6f1c1e52-3b7a-4c1e-9d2a-1f0e5b7c9a88";
      for (const res of [
        await postCapture(s.app(), id, { nonce: freshNonce() }),
        await postRelease(s.app(), id, { nonce: freshNonce() }),
        await s.app().request(`/ledger/holds/${id}`),
      ]) {
        const problem = await expectProblem(res, 404, "HOLD_NOT_FOUND");
        expect(problem.details).toEqual({ hold_id: id });
      }
      for (const bad of ["not-a-hold", id.toUpperCase(), "6f1c1e52-3b7a-1c1e-9d2a-1f0e5b7c9a88"]) {
        await expectProblem(await s.app().request(`/ledger/holds/${bad}`), 400, "VALIDATION_FAILED");
        await expectProblem(
          await postCapture(s.app(), bad, { nonce: freshNonce() }),
          400,
          "VALIDATION_FAILED",
        );
      }
    });
  });

  describe("POST /ledger/holds/{hold_id}/release", () => {
    it("releases a hold: 200 with the released hold; its credits are available again", async () => {
      const { app } = clocked();
      const owner = freshOwner();
      await fund(app, owner);
      const { hold: made } = await hold(app, holdOf(owner, SPEND));
      const released = await release(app, made.id);
      expect(released).toEqual({
        hold: { ...made, status: "released" },
        balance: 10,
        available: 10,
        replayed: false,
      });
      expect(await getHold(app, made.id)).toEqual(released.hold);
      expect(await readOwner(app, owner)).toMatchObject({ balance: 10, held: 0, available: 10 });
      const [entry] = (await getEntries(app, owner)).entries;
      expect(entry).toMatchObject({
        operation: "HOLD_RELEASE",
        amount: 0,
        balance_after: 10,
        hold_id: made.id,
      });
    });
  });

  describe("a suspended owner", () => {
    it("is refused holds and captures with 422 OWNER_SUSPENDED; a release still applies", async () => {
      const owner = freshOwner();
      await fund(s.app(), owner);
      const { hold: toCapture } = await hold(s.app(), holdOf(owner, SPEND));
      const { hold: toRelease } = await hold(s.app(), holdOf(owner, SPEND));
      const suspended = await postStatus(s.app(), owner, "suspension", {
        reason: "fraud review",
        nonce: freshNonce(),
      });
      expect(suspended.status).toBe(200);
      const before = await state(s.app(), owner);
      await expectProblem(await postHold(s.app(), holdOf(owner, SPEND)), 422, "OWNER_SUSPENDED");
      await expectProblem(
        await postCapture(s.app(), toCapture.id, { nonce: freshNonce() }),
        422,
        "OWNER_SUSPENDED",
      );
      expect(await state(s.app(), owner)).toEqual(before);
      expect(await release(s.app(), toRelease.id)).toMatchObject({
        hold: { status: "released" },
        balance: 10,
        available: 9,
      });
      expect(await getHold(s.app(), toCapture.id)).toMatchObject({ status: "active" });
    });
  });

  describe("replays and conflicts across the hold routes", () => {
    it("answers a hold's, a capture's and a release's nonce again with the original answer, 200 and replayed: true, writing nothing", async () => {
      const { app, clock } = clocked();
      const owner = freshOwner();
      await fund(app, owner);
      const request = holdOf(owner, SPEND);
      const made = await hold(app, request);
      // Defaults written out are the same request.
      const again = await expectHeld(
        await postHold(app, { ...request, amount: 1, expires_in_s: HOLD_EXPIRES_IN_S_DEFAULT }),
        200,
      );
      expect(again).toEqual({ ...made, replayed: true });
      clock.set(at(START, 1_000));
      const captureNonce = freshNonce();
      const captured = await capture(app, made.hold.id, { nonce: captureNonce });
      const other = await hold(app, holdOf(owner, SPEND));
      const releaseNonce = freshNonce();
      const released = await release(app, other.hold.id, releaseNonce);
      const before = await state(app, owner);
      clock.set(at(START, 2_000));
      // Later, and after the hold ended: still the original answers.
      expect(await expectHeld(await postHold(app, request), 200)).toEqual({ ...made, replayed: true });
      expect(
        await expectCaptured(await postCapture(app, made.hold.id, { nonce: captureNonce }), 200),
      ).toEqual({
        ...captured,
        replayed: true,
      });
      expect(
        await expectCaptured(await postCapture(app, made.hold.id, { nonce: captureNonce, amount: 1 }), 200),
      ).toEqual({ ...captured, replayed: true });
      expect(
        await expectReleased(await postRelease(app, other.hold.id, { nonce: releaseNonce }), true),
      ).toEqual({
        ...released,
        replayed: true,
      });
      expect(await state(app, owner)).toEqual(before);
    });

    it("answers 409 NONCE_CONFLICT to a nonce reused for another request, on any route, writing nothing", async () => {
      const owner = freshOwner();
      const stranger = freshOwner();
      await fund(s.app(), owner);
      await fund(s.app(), stranger);
      const request = holdOf(owner, SPEND);
      const made = await hold(s.app(), request);
      const spare = await hold(s.app(), holdOf(owner, SPEND));
      const captureNonce = freshNonce();
      const captured = await capture(s.app(), spare.hold.id, { nonce: captureNonce });
      const third = await hold(s.app(), holdOf(owner, SPEND));
      const releaseNonce = freshNonce();
      await release(s.app(), third.hold.id, releaseNonce);
      const posted = await apply(s.app(), op(owner, SPEND));
      const live = await hold(s.app(), holdOf(owner, SPEND));
      const before = { owner: await state(s.app(), owner), stranger: await ownerState(s.app(), stranger) };
      const attempts: [string, () => Promise<Response>][] = [
        ["a hold for another owner", () => postHold(s.app(), { ...request, owner_id: stranger })],
        ["a hold with another expires_in_s", () => postHold(s.app(), { ...request, expires_in_s: 60 })],
        ...(fixed.some((f) => f.name !== SPEND)
          ? [
              [
                "a hold of another operation",
                () => postHold(s.app(), { ...request, operation: fixed.find((f) => f.name !== SPEND)?.name }),
              ] as [string, () => Promise<Response>],
            ]
          : []),
        [
          "a hold's nonce on POST /ledger",
          () => postJson(s.app(), op(owner, SPEND, { nonce: request.nonce })),
        ],
        [
          "a post's nonce on POST /ledger/holds",
          () => postHold(s.app(), holdOf(owner, SPEND, { nonce: posted.entry.nonce })),
        ],
        [
          "a hold's nonce for its own capture",
          () => postCapture(s.app(), made.hold.id, { nonce: request.nonce }),
        ],
        [
          "a hold's nonce for its own release",
          () => postRelease(s.app(), made.hold.id, { nonce: request.nonce }),
        ],
        [
          "a capture's nonce for another hold's capture",
          () => postCapture(s.app(), live.hold.id, { nonce: captureNonce }),
        ],
        [
          "a capture's nonce for a release",
          () => postRelease(s.app(), live.hold.id, { nonce: captureNonce }),
        ],
        [
          "a capture's nonce for a release of its own hold",
          () => postRelease(s.app(), spare.hold.id, { nonce: captureNonce }),
        ],
        [
          "a capture's nonce on POST /ledger",
          () => postJson(s.app(), op(owner, SPEND, { nonce: captureNonce })),
        ],
        [
          "a release's nonce for a capture",
          () => postCapture(s.app(), live.hold.id, { nonce: releaseNonce }),
        ],
        [
          "a release's nonce for another hold's release",
          () => postRelease(s.app(), live.hold.id, { nonce: releaseNonce }),
        ],
        [
          "a release's nonce for a hold",
          () => postHold(s.app(), holdOf(owner, SPEND, { nonce: releaseNonce })),
        ],
      ];
      for (const [name, attempt] of attempts) {
        const res = await attempt();
        expect(res.status, name).toBe(409);
        await expectProblem(res, 409, "NONCE_CONFLICT");
      }
      expect({ owner: await state(s.app(), owner), stranger: await ownerState(s.app(), stranger) }).toEqual(
        before,
      );
      expect(captured.hold.status).toBe("captured");
      expect(await getHold(s.app(), made.hold.id)).toMatchObject({ status: "active" });
    });
  });

  describe("holds and credits that expire", () => {
    /** Ten credits without expiry, ten expiring in an hour (E1), ten in two hours (E2). */
    const setup = async () => {
      const { app, clock } = clocked();
      const owner = freshOwner();
      await fund(app, owner);
      await fund(app, owner, 1, at(START, 2 * HOUR_MS));
      await fund(app, owner, 1, at(START, HOUR_MS));
      return { app, clock, owner };
    };

    it("takes the soonest-expiring credits; what it holds does not expire while held, and expires at once on release", async () => {
      const { app, clock, owner } = await setup();
      const { hold: made } = await hold(app, holdOf(owner, SPEND, { expires_in_s: 3 * 3600 }));
      clock.set(at(START, HOUR_MS));
      // E1 is past its expiry: its 9 unheld credits stop counting, the one held still counts (and is held).
      expect(await readOwner(app, owner)).toMatchObject({ balance: 21, held: 1, available: 20 });
      const nonce = freshNonce();
      const released = await release(app, made.id, nonce);
      expect(released).toMatchObject({ balance: 20, available: 20 });
      expect(await readOwner(app, owner)).toMatchObject({ balance: 20, held: 0, available: 20 });
      const entries = (await getEntries(app, owner)).entries.map((e) => [
        e.operation,
        e.amount,
        e.balance_after,
      ]);
      expect(entries.slice(0, 4)).toEqual([
        ["EXPIRY", -1, 20],
        ["HOLD_RELEASE", 0, 21],
        ["EXPIRY", -9, 21],
        ["HOLD", 0, 30],
      ]);
      // The replay gives the original answer: the balance after the expiry the release wrote after it.
      expect(await expectReleased(await postRelease(app, made.id, { nonce }), true)).toEqual({
        ...released,
        replayed: true,
      });
    });

    it("lets a capture spend held credits past their expiry: they never expired", async () => {
      const { app, clock, owner } = await setup();
      const { hold: made } = await hold(app, holdOf(owner, SPEND, { expires_in_s: 3 * 3600 }));
      clock.set(at(START, HOUR_MS));
      const captured = await capture(app, made.id);
      expect(captured).toMatchObject({
        entry: { amount: -1, balance_after: 20 },
        balance: 20,
        available: 20,
      });
      const entries = (await getEntries(app, owner)).entries.map((e) => [e.operation, e.amount]);
      expect(entries.slice(0, 3)).toEqual([
        [SPEND, -1],
        ["EXPIRY", -9],
        ["HOLD", 0],
      ]);
      expect(await readOwner(app, owner)).toMatchObject({ balance: 20, expiring: [{ amount: 10 }] });
    });

    if (varOp && varOp.min <= 2) {
      it(`expires at once what a partial capture (${varOp.name}) leaves of credits past their expiry, and replays that answer`, async () => {
        const { app, clock, owner } = await setup();
        const { hold: made } = await hold(
          app,
          holdOf(owner, varOp.name, { amount: 5, expires_in_s: 3 * 3600 }),
        );
        clock.set(at(START, HOUR_MS));
        expect(await readOwner(app, owner)).toMatchObject({ balance: 25, held: 5, available: 20 });
        const nonce = freshNonce();
        const captured = await capture(app, made.id, { amount: 2, nonce });
        expect(captured).toMatchObject({
          entry: { amount: -2, balance_after: 23 },
          balance: 20,
          available: 20,
        });
        const entries = (await getEntries(app, owner)).entries.map((e) => [e.operation, e.amount]);
        expect(entries.slice(0, 4)).toEqual([
          ["EXPIRY", -3],
          [varOp.name, -2],
          ["EXPIRY", -5],
          ["HOLD", 0],
        ]);
        expect(await expectCaptured(await postCapture(app, made.id, { nonce, amount: 2 }), 200)).toEqual({
          ...captured,
          replayed: true,
        });
      });
    }

    it("takes the soonest expiry first: a hold of the later grant would let the earlier one expire in full", async () => {
      const { app, clock, owner } = await setup();
      for (let i = 0; i < 10; i++) await hold(app, holdOf(owner, SPEND, { expires_in_s: 3 * 3600 }));
      const eleventh = await hold(app, holdOf(owner, SPEND, { expires_in_s: 3 * 3600 }));
      clock.set(at(START, HOUR_MS));
      // E1 is held in full (10), one of E2 is held: nothing expired, all 30 still count.
      expect(await readOwner(app, owner)).toMatchObject({ balance: 30, held: 11, available: 19 });
      clock.set(at(START, 2 * HOUR_MS));
      expect(await readOwner(app, owner)).toMatchObject({ balance: 21, held: 11, available: 10 });
      await release(app, eleventh.hold.id);
      expect(await readOwner(app, owner)).toMatchObject({ balance: 20, held: 10, available: 10 });
    });
  });

  describe("a hold's own expiry", () => {
    it("stops counting at its expires_at: status expired, nothing held, its credits available to a debit at once", async () => {
      const { app, clock } = clocked();
      const owner = freshOwner();
      await fund(app, owner);
      const made: HoldBody[] = [];
      for (let i = 0; i < 10; i++)
        made.push((await hold(app, holdOf(owner, SPEND, { expires_in_s: 60 }))).hold);
      await expectProblem(await postJson(app, op(owner, SPEND)), 422, "INSUFFICIENT_BALANCE");
      clock.set(at(START, 59_999));
      expect(await readOwner(app, owner)).toMatchObject({ held: 10, available: 0 });
      clock.set(at(START, 60_000));
      const first = made[0];
      if (!first) throw new Error("ten holds were made");
      expect(await getHold(app, first.id)).toEqual({ ...first, status: "expired" });
      expect(await readOwner(app, owner)).toMatchObject({ balance: 10, held: 0, available: 10 });
      const spent = await apply(app, op(owner, SPEND));
      expect(spent).toMatchObject({ balance: 9, available: 9, entry: { sequence: 22 } });
      // The spend recorded the expiries first, one HOLD_EXPIRY per hold.
      const entries = (await getEntries(app, owner)).entries;
      const expiries = entries.slice(1, 11);
      expect(expiries.map((e) => [e.operation, e.amount])).toEqual(made.map(() => ["HOLD_EXPIRY", 0]));
      expect(expiries.map((e) => e.hold_id).sort()).toEqual(made.map((h) => h.id).sort());
      expect(await getHold(app, first.id)).toEqual({ ...first, status: "expired" });
    });

    it("is recorded by the sweeper (LEDGER_EXPIRY_SWEEP_S) with no write for the owner", async () => {
      const owner = freshOwner();
      const clock = manualClock(START);
      const stops: (() => Promise<void>)[] = [];
      const swept = s.createApp({
        db: s.db(),
        ping: s.ping,
        logger: silentLogger,
        clock: clock.now,
        expirySweepS: 1,
        onStop: (stop) => stops.push(stop),
      });
      onTestFinished(async () => {
        await Promise.all(stops.map((stop) => stop()));
      });
      await fund(swept, owner);
      const { hold: made } = await hold(swept, holdOf(owner, SPEND, { expires_in_s: 30 }));
      clock.set(at(START, 30_000));
      let entries = (await getEntries(swept, owner)).entries;
      for (let tries = 0; tries < 50 && entries.length < 3; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        entries = (await getEntries(swept, owner)).entries;
      }
      expect(entries.map((e) => [e.operation, e.amount, e.hold_id ?? null])).toEqual([
        ["HOLD_EXPIRY", 0, made.id],
        ["HOLD", 0, made.id],
        ["CREDIT_ADD", 10, null],
      ]);
      expect(entries[0]).toMatchObject({ app: s.name, balance_after: 10, created_at: at(START, 30_000) });
      expect(await getHold(swept, made.id)).toEqual({ ...made, status: "expired" });
    });
  });

  describe("GET /ledger/holds/{hold_id} and GET /ledger/{owner_id}/holds", () => {
    it("lists the app's holds of an owner newest first, by status as of now, a page at a time", async () => {
      const { app, clock } = clocked();
      const owner = freshOwner();
      await fund(app, owner);
      const captured = (await hold(app, holdOf(owner, SPEND))).hold;
      const released = (await hold(app, holdOf(owner, SPEND))).hold;
      const expired = (await hold(app, holdOf(owner, SPEND, { expires_in_s: 60 }))).hold;
      const active = (await hold(app, holdOf(owner, SPEND))).hold;
      const capturedNow = (await capture(app, captured.id)).hold;
      const releasedNow = (await release(app, released.id)).hold;
      // Another app's hold of the same owner is not listed.
      await fund(foreign(clock.now), owner);
      await hold(foreign(clock.now), holdOf(owner, SPEND));
      clock.set(at(START, 60_000));
      const all = await listHolds(app, owner);
      expect(all).toEqual({
        owner_id: owner,
        holds: [active, { ...expired, status: "expired" }, releasedNow, capturedNow],
        next_cursor: null,
      });
      const ids = async (query: string) => (await listHolds(app, owner, query)).holds.map((h) => h.id);
      expect(await ids("?status=active")).toEqual([active.id]);
      expect(await ids("?status=expired")).toEqual([expired.id]);
      expect(await ids("?status=captured")).toEqual([captured.id]);
      expect(await ids("?status=released")).toEqual([released.id]);
      const first = await listHolds(app, owner, "?limit=3");
      expect(first.holds.map((h) => h.id)).toEqual([active.id, expired.id, released.id]);
      expect(first.next_cursor).not.toBeNull();
      const next = await listHolds(app, owner, `?limit=3&cursor=${first.next_cursor ?? ""}`);
      expect(next).toMatchObject({ holds: [capturedNow], next_cursor: null });
      // The filter and the cursor together: captured holds older than the first page's last.
      expect(await ids(`?status=captured&cursor=${first.next_cursor ?? ""}`)).toEqual([captured.id]);
      expect(await ids(`?status=active&cursor=${first.next_cursor ?? ""}`)).toEqual([]);
      expect(await listHolds(app, freshOwner())).toEqual({
        owner_id: expect.any(String) as string,
        holds: [],
        next_cursor: null,
      });
    });

    it("answers 404 HOLD_NOT_FOUND for another app's hold on every route, and writes nothing", async () => {
      const other = foreign();
      const owner = freshOwner();
      await fund(other, owner);
      const { hold: theirs } = await hold(other, holdOf(owner, SPEND));
      await fund(s.app(), owner);
      const before = await state(s.app(), owner);
      for (const res of [
        await s.app().request(`/ledger/holds/${theirs.id}`),
        await postCapture(s.app(), theirs.id, { nonce: freshNonce() }),
        await postRelease(s.app(), theirs.id, { nonce: freshNonce() }),
      ]) {
        await expectProblem(res, 404, "HOLD_NOT_FOUND");
      }
      expect(await state(s.app(), owner)).toEqual(before);
      expect(await listHolds(s.app(), owner)).toMatchObject({ holds: [] });
      expect(await getHold(other, theirs.id)).toEqual(theirs);
      expect(await readOwner(s.app(), owner)).toMatchObject({ balance: 20, held: 1, available: 19 });
    });
  });

  describe("the hold routes in the OpenAPI document", () => {
    const documented: [string, string, ErrorList][] = [
      ["/ledger/holds", "post", PLACE_HOLD_ERRORS],
      ["/ledger/holds/{hold_id}/capture", "post", CAPTURE_HOLD_ERRORS],
      ["/ledger/holds/{hold_id}/release", "post", RELEASE_HOLD_ERRORS],
    ];
    it.each(documented)("documents every error of %s (%s) with its status", async (path, method, errors) => {
      const doc = z
        .object({
          paths: z.record(
            z.string(),
            z.record(z.string(), z.object({ responses: z.record(z.string(), z.unknown()) })),
          ),
        })
        .parse(await (await s.app().request("/openapi.json")).json());
      const responses = doc.paths[path]?.[method]?.responses ?? {};
      for (const code of errors) expect(Object.keys(responses), code).toContain(String(STATUS_BY_CODE[code]));
    });

    it("documents the read routes and names only the app's holdable operations", async () => {
      const doc = z
        .object({
          paths: z.record(z.string(), z.unknown()),
          components: z.object({
            schemas: z.object({
              PlaceHold: z.object({
                properties: z.object({ operation: z.object({ enum: z.array(z.string()) }) }),
              }),
            }),
          }),
        })
        .parse(await (await s.app().request("/openapi.json")).json());
      expect(Object.keys(doc.paths)).toEqual(
        expect.arrayContaining(["/ledger/holds/{hold_id}", "/ledger/{owner_id}/holds"]),
      );
      expect([...doc.components.schemas.PlaceHold.properties.operation.enum].sort()).toEqual(
        [...fixed.map((f) => f.name), ...variable.map((v) => v.name)].sort(),
      );
    });
  });
}
