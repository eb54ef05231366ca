// POST /ledger/entries/{entry_id}/reversal through HTTP, for every app: full and partial reversals of
// credits and debits, with expiring credits and the clock moved past their expiry; every refusal, with
// nothing written; replays and conflicts; another app's entries; limits that stay used; concurrent
// reversals of one entry. describeAppSurface runs it.
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { BALANCE_MAX } from "../domain/limits.js";
import type { HttpErrorCode } from "../http/problem.js";
import { queryRows } from "../store/client.js";
import type { AppSurface } from "./app-surface.js";
import { freshNonce, freshOwner } from "./index.js";
import {
  at,
  clockedApp,
  DAY_MS,
  expectReversal,
  hasRoute,
  largeDebit,
  postReversal,
  reverse,
  seedBalance,
  serviceAs,
  setOwnerStatus,
  START,
  transfer,
} from "./moves.js";
import { expectProblem } from "./problems.js";
import { apply, getEntries, op, postJson, readOwner, type RequestApp } from "./requests.js";
import { ownerState, tableCounts } from "./snapshots.js";
import { named } from "./tables.js";

export function describeReversals(s: AppSurface): void {
  const debit = largeDebit(s.catalog);
  const largeDebitOf = (owner: string) =>
    op(owner, debit.operation, debit.amount ? { amount: debit.amount } : {});
  const state = async (app: RequestApp, owner: string) => ({
    owner: await ownerState(app, owner),
    read: await readOwner(app, owner),
    tables: await tableCounts(s.db()),
  });
  /** Expects the refusal and that nothing was written, for the owner or anywhere. */
  const expectRefused = async (
    app: RequestApp,
    owner: string,
    entryId: number,
    body: object,
    status: number,
    code: HttpErrorCode,
  ) => {
    const before = await state(app, owner);
    const problem = await expectProblem(
      await postReversal(app, entryId, { nonce: freshNonce(), ...body }),
      status,
      code,
    );
    expect(await state(app, owner)).toEqual(before);
    return problem;
  };

  describe("POST /ledger/entries/{entry_id}/reversal", () => {
    it("reverses a debit in full: the credits come back, linked both ways, and a replay answers the same", async () => {
      const { app } = clockedApp(s);
      const owner = freshOwner();
      await apply(app, op(owner, "CREDIT_ADD"));
      const spend = await apply(app, op(owner, "CREDIT_SPEND"));
      const nonce = freshNonce();
      const body = await reverse(app, spend.entry.id, { nonce, reason: "order 17 refunded" });
      expect(body).toEqual({
        balance: 10,
        available: 10,
        replayed: false,
        entry: {
          id: body.entry.id,
          app: s.name,
          operation: "REVERSAL",
          owner_id: owner,
          amount: 1,
          balance_after: 10,
          sequence: 3,
          nonce,
          created_at: START,
          reverses: spend.entry.id,
          reason: "order 17 refunded",
        },
        original: { id: spend.entry.id, amount: -1, reversed_amount: 1 },
      });
      // The entries show what they are: the reversal names what it reverses, the original what was reversed.
      const { entries } = await getEntries(app, owner);
      expect(entries.map((e) => [e.operation, e.amount, e.reverses, e.reversed_amount, e.reason])).toEqual([
        ["REVERSAL", 1, spend.entry.id, undefined, "order 17 refunded"],
        ["CREDIT_SPEND", -1, undefined, 1, undefined],
        ["CREDIT_ADD", 10, undefined, undefined, undefined],
      ]);
      const again = await expectReversal(
        await postReversal(app, spend.entry.id, { nonce, reason: "order 17 refunded" }),
        200,
      );
      expect(again).toEqual({ ...body, replayed: true });
      expect((await ownerState(app, owner)).entryCount).toBe(3);
    });

    it("reverses a credit in part, then what is left without an amount; then nothing is left", async () => {
      const { app } = clockedApp(s);
      const owner = freshOwner();
      const credit = await apply(app, op(owner, "CREDIT_ADD"));
      const first = await reverse(app, credit.entry.id, { amount: 3 });
      expect(first).toMatchObject({
        balance: 7,
        available: 7,
        entry: { operation: "REVERSAL", amount: -3, balance_after: 7, reverses: credit.entry.id },
        original: { id: credit.entry.id, amount: 10, reversed_amount: 3 },
      });
      expect(first.entry.reason).toBeUndefined();
      const rest = await reverse(app, credit.entry.id);
      expect(rest).toMatchObject({
        balance: 0,
        entry: { amount: -7 },
        original: { amount: 10, reversed_amount: 10 },
      });
      const problem = await expectRefused(app, owner, credit.entry.id, {}, 409, "ALREADY_REVERSED");
      expect(problem.details).toEqual({ entry_id: credit.entry.id });
      await expectRefused(app, owner, credit.entry.id, { amount: 1 }, 409, "ALREADY_REVERSED");
      expect((await getEntries(app, owner)).entries.at(-1)).toMatchObject({ reversed_amount: 10 });
    });

    it("refuses a reversal beyond what is left (REVERSAL_EXCEEDS_ORIGINAL), writing nothing", async () => {
      const { app } = clockedApp(s);
      const owner = freshOwner();
      await apply(app, op(owner, "CREDIT_ADD"));
      const credit = await apply(app, op(owner, "CREDIT_ADD"));
      const whole = await expectRefused(
        app,
        owner,
        credit.entry.id,
        { amount: 11 },
        422,
        "REVERSAL_EXCEEDS_ORIGINAL",
      );
      expect(whole.details).toEqual({ entry_id: credit.entry.id, reversible_amount: 10, requested: 11 });
      await reverse(app, credit.entry.id, { amount: 4 });
      const part = await expectRefused(
        app,
        owner,
        credit.entry.id,
        { amount: 7 },
        422,
        "REVERSAL_EXCEEDS_ORIGINAL",
      );
      expect(part.details).toMatchObject({ reversible_amount: 6, requested: 7 });
      expect((await reverse(app, credit.entry.id, { amount: 6 })).original.reversed_amount).toBe(10);
    });

    it("gives a debit back in part: credits without expiry first, then its grants", async () => {
      const { app } = clockedApp(s);
      const owner = freshOwner();
      const expiry = at(START, 2 * DAY_MS);
      await apply(app, op(owner, "CREDIT_ADD", { expires_at: expiry }));
      await apply(app, op(owner, "CREDIT_ADD"));
      for (let i = 0; i < 9; i++) await apply(app, op(owner, "CREDIT_SPEND"));
      // The large debit takes the grant's last 1, then the rest from the credits without expiry.
      const spent = await apply(app, largeDebitOf(owner));
      const balance = 20 - 9 - debit.magnitude;
      expect(await readOwner(app, owner)).toMatchObject({ balance, expiring: [] });

      // All but one of what came from the credits without expiry: none of it goes to the grant...
      const one = await reverse(app, spent.entry.id, { amount: debit.magnitude - 2 });
      expect(one).toMatchObject({
        balance: balance + debit.magnitude - 2,
        original: { reversed_amount: debit.magnitude - 2 },
      });
      expect((await readOwner(app, owner)).expiring).toEqual([]);
      // ...then the last of it and the grant's 1, in one reversal of 2.
      const two = await reverse(app, spent.entry.id, { amount: 2 });
      expect(two).toMatchObject({ balance: 11, original: { reversed_amount: debit.magnitude } });
      expect(await readOwner(app, owner)).toMatchObject({
        balance: 11,
        expiring: [{ amount: 1, expires_at: expiry }],
      });
      await expectRefused(app, owner, spent.entry.id, {}, 409, "ALREADY_REVERSED");
    });

    it("gives back to each grant what the debit took of it, spread over several grants, the latest first", async () => {
      const { app } = clockedApp(s);
      const owner = freshOwner();
      const soon = at(START, DAY_MS);
      const later = at(START, 2 * DAY_MS);
      await apply(app, op(owner, "CREDIT_ADD", { expires_at: soon }));
      await apply(app, op(owner, "CREDIT_ADD", { expires_at: later }));
      for (let i = 0; i < 8; i++) await apply(app, op(owner, "CREDIT_SPEND"));
      // soon: 2 left, later: 10. The large debit takes the 2, then the rest from later.
      const spent = await apply(app, largeDebitOf(owner));
      const fromLater = debit.magnitude - 2;
      expect((await readOwner(app, owner)).expiring).toEqual([{ amount: 10 - fromLater, expires_at: later }]);
      // A reversal of 1 goes to the grant drawn last (later); what is left of the reversal, in full,
      // gives each grant back its own share.
      await reverse(app, spent.entry.id, { amount: 1 });
      expect((await readOwner(app, owner)).expiring).toEqual([{ amount: 11 - fromLater, expires_at: later }]);
      const rest = await reverse(app, spent.entry.id);
      expect(rest.original).toEqual({
        id: spent.entry.id,
        amount: -debit.magnitude,
        reversed_amount: debit.magnitude,
      });
      expect((await readOwner(app, owner)).expiring).toEqual([
        { amount: 2, expires_at: soon },
        { amount: 10, expires_at: later },
      ]);
    });

    it("lets what goes back to a grant past its expiry expire at once, and a replay answers the same balance", async () => {
      const { app, clock } = clockedApp(s);
      const owner = freshOwner();
      const expiry = at(START, DAY_MS);
      await apply(app, op(owner, "CREDIT_ADD"));
      await apply(app, op(owner, "CREDIT_ADD", { expires_at: expiry }));
      const spend = await apply(app, op(owner, "CREDIT_SPEND"));
      clock.set(at(START, DAY_MS + 60_000));
      const nonce = freshNonce();
      const body = await reverse(app, spend.entry.id, { nonce });
      // 19 before: the 9 left of the grant expire first, the 1 given back to it expires right after.
      expect(body).toMatchObject({ balance: 10, available: 10, entry: { amount: 1, balance_after: 11 } });
      const { entries } = await getEntries(app, owner);
      expect(entries.slice(0, 3).map((e) => [e.operation, e.amount, e.balance_after, e.expires_at])).toEqual([
        ["EXPIRY", -1, 10, expiry],
        ["REVERSAL", 1, 11, undefined],
        ["EXPIRY", -9, 10, expiry],
      ]);
      expect(await readOwner(app, owner)).toMatchObject({ balance: 10, expiring: [] });
      clock.set(at(START, 3 * DAY_MS));
      expect(await expectReversal(await postReversal(app, spend.entry.id, { nonce }), 200)).toEqual({
        ...body,
        replayed: true,
      });
    });

    it("answers a replay as it was then, after later partial reversals of the same entry", async () => {
      const { app } = clockedApp(s);
      const owner = freshOwner();
      const credit = await apply(app, op(owner, "CREDIT_ADD"));
      const nonce = freshNonce();
      const first = await reverse(app, credit.entry.id, { nonce, amount: 3 });
      await reverse(app, credit.entry.id, { amount: 2 });
      const again = await expectReversal(await postReversal(app, credit.entry.id, { nonce, amount: 3 }), 200);
      expect(again).toEqual({ ...first, replayed: true });
      expect(again.original.reversed_amount).toBe(3);
      // Without an amount, the request asks for what is left (5 then): another request than that reversal.
      await expectProblem(await postReversal(app, credit.entry.id, { nonce }), 409, "NONCE_CONFLICT");
    });

    it("answers the same reversal sent twice at once once made and once replayed, with the same body", async () => {
      const { app } = clockedApp(s);
      const owner = freshOwner();
      const credit = await apply(app, op(owner, "CREDIT_ADD"));
      const body = { nonce: freshNonce(), amount: 4 };
      const [first, second] = await Promise.all([
        postReversal(app, credit.entry.id, body),
        postReversal(app, credit.entry.id, body),
      ]);
      expect([first.status, second.status].sort()).toEqual([200, 201]);
      const made = await expectReversal(first.status === 201 ? first : second, 201);
      const replayed = await expectReversal(first.status === 200 ? first : second, 200);
      expect(replayed).toEqual({ ...made, replayed: true });
      expect(made.original.reversed_amount).toBe(4);
    });

    it("takes an expiring credit's reversal from its own grant only, never from other credits", async () => {
      const { app } = clockedApp(s);
      const owner = freshOwner();
      const expiry = at(START, DAY_MS);
      const credit = await apply(app, op(owner, "CREDIT_ADD", { expires_at: expiry }));
      await apply(app, op(owner, "CREDIT_ADD"));
      for (let i = 0; i < 8; i++) await apply(app, op(owner, "CREDIT_SPEND"));
      // Balance 12, but only 2 of the grant are left.
      const problem = await expectRefused(
        app,
        owner,
        credit.entry.id,
        { amount: 3 },
        422,
        "INSUFFICIENT_BALANCE",
      );
      expect(problem.details).toMatchObject({ owner_id: owner, balance: 2, required: 3 });
      const body = await reverse(app, credit.entry.id, { amount: 2 });
      expect(body).toMatchObject({ balance: 10, entry: { amount: -2 }, original: { reversed_amount: 2 } });
      expect((await readOwner(app, owner)).expiring).toEqual([]);
      await expectRefused(app, owner, credit.entry.id, {}, 422, "INSUFFICIENT_BALANCE");
    });

    it("takes a lasting credit's reversal from the credits without expiry only", async () => {
      const { app } = clockedApp(s);
      const owner = freshOwner();
      const expiry = at(START, DAY_MS);
      const lasting = await apply(app, op(owner, "CREDIT_ADD"));
      await apply(app, op(owner, "CREDIT_ADD", { expires_at: expiry }));
      for (let i = 0; i < 3; i++) await apply(app, op(owner, "CREDIT_SPEND"));
      // The spends took from the grant (burn order): the 10 without expiry are all there.
      expect(await reverse(app, lasting.entry.id)).toMatchObject({ balance: 7 });
      expect((await readOwner(app, owner)).expiring).toEqual([{ amount: 7, expires_at: expiry }]);

      const other = freshOwner();
      const first = await apply(app, op(other, "CREDIT_ADD"));
      for (let i = 0; i < 3; i++) await apply(app, op(other, "CREDIT_SPEND"));
      await apply(app, op(other, "CREDIT_ADD", { expires_at: expiry }));
      // Balance 17, of which 7 without expiry: the expiring 10 are not taken for it.
      await expectRefused(app, other, first.entry.id, {}, 422, "INSUFFICIENT_BALANCE");
      expect((await reverse(app, first.entry.id, { amount: 7 })).balance).toBe(10);
    });

    it("refuses the reversal of a credit whose grant has expired, writing nothing (its EXPIRY neither)", async () => {
      const { app, clock } = clockedApp(s);
      const owner = freshOwner();
      const credit = await apply(app, op(owner, "CREDIT_ADD", { expires_at: at(START, 1_000) }));
      await apply(app, op(owner, "CREDIT_ADD"));
      clock.set(at(START, 1_000));
      await expectRefused(app, owner, credit.entry.id, {}, 422, "INSUFFICIENT_BALANCE");
    });

    it("gives no once or daily limit back: the original keeps its period", async () => {
      const { app } = clockedApp(s);
      const owner = freshOwner();
      const signup = await apply(app, op(owner, "SIGNUP_CREDIT"));
      const daily = await apply(app, op(owner, "DAILY_REWARD"));
      await reverse(app, signup.entry.id);
      await reverse(app, daily.entry.id);
      for (const operation of ["SIGNUP_CREDIT", "DAILY_REWARD"]) {
        await expectProblem(await postJson(app, op(owner, operation)), 422, "LIMIT_REACHED");
      }
      expect(await readOwner(app, owner)).toMatchObject({ balance: 0 });
    });

    it("applies to a suspended owner, who may still take nothing else", async () => {
      const { app } = clockedApp(s);
      const owner = freshOwner();
      await apply(app, op(owner, "CREDIT_ADD"));
      const spend = await apply(app, op(owner, "CREDIT_SPEND"));
      const credit = await apply(app, op(owner, "CREDIT_ADD"));
      await setOwnerStatus(app, owner, "suspended");
      expect((await reverse(app, spend.entry.id)).balance).toBe(20);
      expect((await reverse(app, credit.entry.id)).balance).toBe(10);
      await expectProblem(await postJson(app, op(owner, "CREDIT_SPEND")), 422, "OWNER_SUSPENDED");
      expect(await readOwner(app, owner)).toMatchObject({ balance: 10, status: "suspended" });
      await setOwnerStatus(app, owner, "active");
    });

    it("reverses a capture of a hold, giving the credits back", async (ctx) => {
      const { app } = clockedApp(s);
      // Holds are a feature of their own: without it there is no capture to reverse.
      if (!(await hasRoute(app, "/ledger/holds"))) ctx.skip();
      const owner = freshOwner();
      await apply(app, op(owner, "CREDIT_ADD"));
      const hold = await postJson(
        app,
        { owner_id: owner, operation: "CREDIT_SPEND", nonce: freshNonce() },
        "/ledger/holds",
      );
      const holdBody = (await hold.json()) as { hold: { id: string } };
      expect(hold.status).toBe(201);
      const captured = await postJson(
        app,
        { nonce: freshNonce() },
        `/ledger/holds/${holdBody.hold.id}/capture`,
      );
      const captureBody = (await captured.json()) as { entry: { id: number; amount: number } };
      expect(captured.status).toBe(201);
      const body = await reverse(app, captureBody.entry.id);
      expect(body).toMatchObject({
        balance: 10,
        available: 10,
        original: { amount: -1, reversed_amount: 1 },
      });
    });

    it("applies reversals of one entry sent at once no more than the entry: the rest ALREADY_REVERSED", async () => {
      const { app } = clockedApp(s);
      const owner = freshOwner();
      const credit = await apply(app, op(owner, "CREDIT_ADD"));
      const full = await Promise.all(
        Array.from({ length: 6 }, () => postReversal(app, credit.entry.id, { nonce: freshNonce() })),
      );
      expect(full.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409, 409]);
      const other = freshOwner();
      await apply(app, op(other, "CREDIT_ADD"));
      const spent = await apply(app, largeDebitOf(other));
      const parts = await Promise.all(
        Array.from({ length: debit.magnitude + 3 }, () =>
          postReversal(app, spent.entry.id, { nonce: freshNonce(), amount: 1 }),
        ),
      );
      const statuses = parts.map((r) => r.status);
      expect(statuses.filter((x) => x === 201)).toHaveLength(debit.magnitude);
      expect(statuses.filter((x) => x === 409)).toHaveLength(3);
      expect((await readOwner(app, owner)).balance).toBe(0);
      expect((await readOwner(app, other)).balance).toBe(10);
      expect(
        (await getEntries(app, other)).entries.find((e) => e.id === spent.entry.id)?.reversed_amount,
      ).toBe(debit.magnitude);
    });

    it("refuses a reversal that would take a balance past 2^53-1 (BALANCE_LIMIT_EXCEEDED)", async () => {
      const { app, clock } = clockedApp(s);
      const owner = freshOwner();
      await seedBalance(s, owner, BALANCE_MAX - 9, clock.now());
      const spend = await apply(app, op(owner, "CREDIT_SPEND"));
      await apply(app, op(owner, "CREDIT_ADD"));
      await expectRefused(app, owner, spend.entry.id, {}, 422, "BALANCE_LIMIT_EXCEEDED");
    });

    it("refuses an entry that does not exist, or another app's, as ENTRY_NOT_FOUND", async () => {
      const { app, clock } = clockedApp(s);
      const owner = freshOwner();
      const mine = await apply(app, op(owner, "CREDIT_ADD"));
      const theirs = await serviceAs(s, s.foreignApp, clock.now).post(op(owner, "CREDIT_ADD"));
      for (const id of [theirs.entry.id, Number.MAX_SAFE_INTEGER, mine.entry.id + 1_000_000]) {
        const problem = await expectRefused(app, owner, id, {}, 404, "ENTRY_NOT_FOUND");
        expect(problem.details).toEqual({ entry_id: id });
      }
      expect(await readOwner(app, owner)).toMatchObject({ balance: 20 });
    });
  });

  describe("POST /ledger/entries/{entry_id}/reversal of what is not reversible", () => {
    /** Each row makes an entry of its kind for an owner holding credits, and returns its id. */
    const rows: {
      name: string;
      make: (app: RequestApp, owner: string, clock: { set: (iso: string) => void }) => Promise<number>;
    }[] = [
      {
        name: "a zero-amount entry",
        make: async (_, owner) => (await serviceAs(s, s.name).post(op(owner, "TEST_ZERO"))).entry.id,
      },
      {
        name: "an EXPIRY",
        make: async (app, owner, clock) => {
          await apply(app, op(owner, "CREDIT_ADD", { expires_at: at(START, 1_000) }));
          clock.set(at(START, 1_000));
          await apply(app, op(owner, "CREDIT_SPEND"));
          const expiry = (await getEntries(app, owner, "?operation=EXPIRY")).entries[0];
          if (!expiry) throw new Error("no EXPIRY entry");
          return expiry.id;
        },
      },
      {
        name: "a REVERSAL",
        make: async (app, owner) => {
          const spend = await apply(app, op(owner, "CREDIT_SPEND"));
          return (await reverse(app, spend.entry.id)).entry.id;
        },
      },
      {
        name: "a TRANSFER_OUT",
        make: async (app, owner) => (await transfer(app, owner, freshOwner(), 2)).from.entry.id,
      },
      {
        name: "a TRANSFER_IN",
        make: async (app, owner) => {
          const giver = freshOwner();
          await apply(app, op(giver, "CREDIT_ADD"));
          return (await transfer(app, giver, owner, 2)).to.entry.id;
        },
      },
      {
        name: "a SUSPENSION and a REINSTATEMENT",
        make: async (app, owner) => {
          await setOwnerStatus(app, owner, "suspended");
          await setOwnerStatus(app, owner, "active");
          const [reinstated, suspended] = (await getEntries(app, owner)).entries;
          expect([reinstated?.operation, suspended?.operation]).toEqual(["REINSTATEMENT", "SUSPENSION"]);
          const problem = await expectProblem(
            await postReversal(app, suspended?.id ?? 0, { nonce: freshNonce() }),
            422,
            "NOT_REVERSIBLE",
          );
          expect(problem.details).toMatchObject({ operation: "SUSPENSION" });
          return reinstated?.id ?? 0;
        },
      },
    ];
    describe.each(named(rows))("%s", (_, row) => {
      it("answers 422 NOT_REVERSIBLE and writes nothing", async () => {
        const { app, clock } = clockedApp(s);
        const owner = freshOwner();
        await apply(app, op(owner, "CREDIT_ADD"));
        const id = await row.make(app, owner, clock);
        const problem = await expectRefused(app, owner, id, {}, 422, "NOT_REVERSIBLE");
        expect(problem.details).toMatchObject({ entry_id: id });
      });
    });
  });

  describe("POST /ledger/entries/{entry_id}/reversal with a nonce used before", () => {
    interface Row {
      name: string;
      /** The second request, given the first reversal's entry, nonce and a second reversible entry. */
      send: (
        app: RequestApp,
        ctx: { entryId: number; otherId: number; nonce: string; owner: string },
      ) => Promise<Response>;
    }
    const rows: Row[] = [
      {
        name: "another amount",
        send: (app, c) => postReversal(app, c.entryId, { nonce: c.nonce, amount: 2 }),
      },
      {
        name: "another entry",
        send: (app, c) => postReversal(app, c.otherId, { nonce: c.nonce, amount: 1 }),
      },
      {
        name: "another reason",
        send: (app, c) => postReversal(app, c.entryId, { nonce: c.nonce, amount: 1, reason: "another" }),
      },
      { name: "no reason", send: (app, c) => postReversal(app, c.entryId, { nonce: c.nonce, amount: 1 }) },
      {
        // The first reversed 1 of 10: one without an amount (what is left) is another request.
        name: "no amount",
        send: (app, c) => postReversal(app, c.entryId, { nonce: c.nonce, reason: "first" }),
      },
      {
        name: "as POST /ledger",
        send: (app, c) => postJson(app, op(c.owner, "CREDIT_ADD", { nonce: c.nonce })),
      },
      {
        name: "as a transfer",
        send: (app, c) =>
          postJson(
            app,
            { from_owner_id: c.owner, to_owner_id: freshOwner(), amount: 1, nonce: c.nonce },
            "/ledger/transfers",
          ),
      },
    ];
    describe.each(named(rows))("%s", (_, row) => {
      it("answers 409 NONCE_CONFLICT and writes nothing", async () => {
        const { app } = clockedApp(s);
        const owner = freshOwner();
        const credit = await apply(app, op(owner, "CREDIT_ADD"));
        const other = await apply(app, op(owner, "CREDIT_ADD"));
        const nonce = freshNonce();
        await reverse(app, credit.entry.id, { nonce, amount: 1, reason: "first" });
        const before = await state(app, owner);
        await expectProblem(
          await row.send(app, { entryId: credit.entry.id, otherId: other.entry.id, nonce, owner }),
          409,
          "NONCE_CONFLICT",
        );
        expect(await state(app, owner)).toEqual(before);
      });
    });

    it("a nonce used by POST /ledger is a conflict for a reversal, and a refused reversal leaves its nonce unused", async () => {
      const { app } = clockedApp(s);
      const owner = freshOwner();
      const nonce = freshNonce();
      const credit = await apply(app, op(owner, "CREDIT_ADD", { nonce }));
      await expectRefused(app, owner, credit.entry.id, { nonce }, 409, "NONCE_CONFLICT");
      const unused = freshNonce();
      await expectRefused(
        app,
        owner,
        credit.entry.id,
        { nonce: unused, amount: 11 },
        422,
        "REVERSAL_EXCEEDS_ORIGINAL",
      );
      await expectRefused(app, owner, Number.MAX_SAFE_INTEGER, { nonce: unused }, 404, "ENTRY_NOT_FOUND");
      expect((await reverse(app, credit.entry.id, { nonce: unused })).original.reversed_amount).toBe(10);
    });
  });

  describe("the reversals in the ledger's tables", () => {
    it("records negative allocations for what a debit's reversal gave back to grants", async () => {
      const { app } = clockedApp(s);
      const owner = freshOwner();
      await apply(app, op(owner, "CREDIT_ADD", { expires_at: at(START, DAY_MS) }));
      const spend = await apply(app, op(owner, "CREDIT_SPEND"));
      const back = await reverse(app, spend.entry.id);
      const list = await queryRows<{ sequence: string; amount: string }>(
        s.db(),
        sql`select sequence::text as sequence, amount::text as amount from ledger_allocations
            where owner_id = ${owner} order by sequence`,
      );
      expect(list.map((r) => [Number(r.sequence), Number(r.amount)])).toEqual([
        [spend.entry.sequence, 1],
        [back.entry.sequence, -1],
      ]);
    });
  });
}
