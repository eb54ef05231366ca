// POST /ledger/transfers through HTTP, for every app: both sides written together, expiry carried over
// to the receiver, every refusal with nothing written, replays and conflicts, suspended sides, and
// transfers crossing at once. describeAppSurface runs it.
import { describe, expect, it } from "vitest";
import { BALANCE_MAX } from "../domain/limits.js";
import type { HttpErrorCode } from "../http/problem.js";
import type { AppSurface } from "./app-surface.js";
import { freshNonce, freshOwner } from "./index.js";
import {
  at,
  clockedApp,
  DAY_MS,
  expectTransfer,
  hasRoute,
  postTransfer,
  seedBalance,
  setOwnerStatus,
  START,
  transfer,
} from "./moves.js";
import { expectProblem } from "./problems.js";
import { apply, getEntries, op, postJson, readOwner, type RequestApp } from "./requests.js";
import { ownerState, tableCounts } from "./snapshots.js";
import { named } from "./tables.js";

export function describeTransfers(s: AppSurface): void {
  const state = async (app: RequestApp, owners: string[]) => ({
    owners: await Promise.all(
      owners.map(async (o) => ({ ...(await ownerState(app, o)), read: await readOwner(app, o) })),
    ),
    tables: await tableCounts(s.db()),
  });
  /** Expects the refusal and that nothing was written, for either owner or anywhere. */
  const expectRefused = async (
    app: RequestApp,
    body: { from_owner_id: string; to_owner_id: string; amount: number; nonce?: string },
    status: number,
    code: HttpErrorCode,
  ) => {
    const owners = [body.from_owner_id, body.to_owner_id];
    const before = await state(app, owners);
    const problem = await expectProblem(
      await postTransfer(app, { nonce: freshNonce(), ...body }),
      status,
      code,
    );
    expect(await state(app, owners)).toEqual(before);
    return problem;
  };

  describe("POST /ledger/transfers", () => {
    it("moves credits from one owner to another: both entries name the other side, and a replay answers the same", async () => {
      const { app } = clockedApp(s);
      const from = freshOwner("from");
      const to = freshOwner("to");
      await apply(app, op(from, "CREDIT_ADD"));
      const nonce = freshNonce();
      const body = await transfer(app, from, to, 4, nonce);
      expect(body).toEqual({
        replayed: false,
        from: {
          owner_id: from,
          balance: 6,
          available: 6,
          entry: {
            id: body.from.entry.id,
            app: s.name,
            operation: "TRANSFER_OUT",
            owner_id: from,
            amount: -4,
            balance_after: 6,
            sequence: 2,
            nonce,
            created_at: START,
            counterparty_owner_id: to,
          },
        },
        to: {
          owner_id: to,
          balance: 4,
          available: 4,
          entry: {
            id: body.to.entry.id,
            app: s.name,
            operation: "TRANSFER_IN",
            owner_id: to,
            amount: 4,
            balance_after: 4,
            sequence: 1,
            nonce: `transfer-in ${nonce}`,
            created_at: START,
            counterparty_owner_id: from,
          },
        },
      });
      expect(await readOwner(app, from)).toMatchObject({ balance: 6, available: 6, expiring: [] });
      expect(await readOwner(app, to)).toMatchObject({ balance: 4, available: 4, expiring: [] });
      expect((await getEntries(app, from)).entries[0]).toEqual(body.from.entry);
      expect((await getEntries(app, to)).entries).toEqual([body.to.entry]);

      const again = await expectTransfer(
        await postTransfer(app, { from_owner_id: from, to_owner_id: to, amount: 4, nonce }),
        200,
      );
      expect(again).toEqual({ ...body, replayed: true });
      expect((await ownerState(app, from)).entryCount).toBe(2);
      expect((await ownerState(app, to)).entryCount).toBe(1);
    });

    it("answers the same transfer sent twice at once once made and once replayed, with the same body", async () => {
      const { app } = clockedApp(s);
      const from = freshOwner("from");
      const to = freshOwner("to");
      await apply(app, op(from, "CREDIT_ADD"));
      const body = { from_owner_id: from, to_owner_id: to, amount: 3, nonce: freshNonce() };
      const [first, second] = await Promise.all([postTransfer(app, body), postTransfer(app, body)]);
      expect([first.status, second.status].sort()).toEqual([200, 201]);
      const made = await expectTransfer(first.status === 201 ? first : second, 201);
      const replayed = await expectTransfer(first.status === 200 ? first : second, 200);
      expect(replayed).toEqual({ ...made, replayed: true });
      expect(await readOwner(app, from)).toMatchObject({ balance: 7 });
    });

    it("carries the sender's expiries over: the receiver's expiring shows them, merged by instant", async () => {
      const { app, clock } = clockedApp(s);
      const from = freshOwner("from");
      const to = freshOwner("to");
      const soon = at(START, DAY_MS);
      const later = at(START, 2 * DAY_MS);
      await apply(app, op(from, "CREDIT_ADD", { expires_at: soon }));
      await apply(app, op(from, "CREDIT_ADD", { expires_at: later }));
      await apply(app, op(from, "CREDIT_ADD", { expires_at: soon }));
      await apply(app, op(from, "CREDIT_ADD"));
      // Burn order: both soon grants, the later one, then 5 of the credits without expiry.
      const body = await transfer(app, from, to, 35);
      expect(body.to).toMatchObject({ balance: 35, available: 35 });
      expect(await readOwner(app, from)).toMatchObject({ balance: 5, expiring: [] });
      expect(await readOwner(app, to)).toMatchObject({
        balance: 35,
        expiring: [
          { amount: 20, expires_at: soon },
          { amount: 10, expires_at: later },
        ],
      });

      // The receiver spends its soonest first, and what it has left of them expires when they do.
      await apply(app, op(to, "CREDIT_SPEND"));
      clock.set(soon);
      expect(await readOwner(app, to)).toMatchObject({
        balance: 15,
        expiring: [{ amount: 10, expires_at: later }],
      });
      await apply(app, op(to, "CREDIT_SPEND"));
      const [spend, expiry] = (await getEntries(app, to)).entries;
      expect(spend).toMatchObject({ operation: "CREDIT_SPEND", balance_after: 14 });
      expect(expiry).toMatchObject({ app: s.name, operation: "EXPIRY", amount: -19, expires_at: soon });

      // Passed on again, they still keep their expiry.
      const third = freshOwner("third");
      await transfer(app, to, third, 12);
      expect(await readOwner(app, third)).toMatchObject({
        balance: 12,
        expiring: [{ amount: 9, expires_at: later }],
      });
    });

    it("takes only available credits: expired ones do not count", async () => {
      const { app, clock } = clockedApp(s);
      const from = freshOwner("from");
      const to = freshOwner("to");
      await apply(app, op(from, "CREDIT_ADD", { expires_at: at(START, 1_000) }));
      await apply(app, op(from, "CREDIT_ADD"));
      const problem = await expectRefused(
        app,
        { from_owner_id: from, to_owner_id: to, amount: 21 },
        422,
        "INSUFFICIENT_BALANCE",
      );
      expect(problem.details).toEqual({ owner_id: from, balance: 20, required: 21 });
      clock.set(at(START, 1_000));
      await expectRefused(
        app,
        { from_owner_id: from, to_owner_id: to, amount: 11 },
        422,
        "INSUFFICIENT_BALANCE",
      );
      expect((await transfer(app, from, to, 10)).from.balance).toBe(0);
      // An owner with no entries has nothing to give; no row is left behind for either side.
      await expectRefused(
        app,
        { from_owner_id: freshOwner(), to_owner_id: freshOwner(), amount: 1 },
        422,
        "INSUFFICIENT_BALANCE",
      );
    });

    it("takes no held credits", async (ctx) => {
      const { app } = clockedApp(s);
      // Holds are a feature of their own: without it nothing is held.
      if (!(await hasRoute(app, "/ledger/holds"))) ctx.skip();
      const from = freshOwner("from");
      await apply(app, op(from, "CREDIT_ADD"));
      for (let i = 0; i < 8; i++) {
        const res = await postJson(
          app,
          { owner_id: from, operation: "CREDIT_SPEND", nonce: freshNonce() },
          "/ledger/holds",
        );
        expect(res.status).toBe(201);
      }
      await expectRefused(
        app,
        { from_owner_id: from, to_owner_id: freshOwner(), amount: 3 },
        422,
        "INSUFFICIENT_BALANCE",
      );
      expect((await transfer(app, from, freshOwner(), 2)).from).toMatchObject({ balance: 8, available: 0 });
    });

    it("refuses the same owner on both sides (400)", async () => {
      const { app } = clockedApp(s);
      const owner = freshOwner();
      await apply(app, op(owner, "CREDIT_ADD"));
      const problem = await expectRefused(
        app,
        { from_owner_id: owner, to_owner_id: owner, amount: 1 },
        400,
        "VALIDATION_FAILED",
      );
      expect(problem.errors?.map((e) => e.path)).toEqual(["to_owner_id"]);
    });

    it("refuses a suspended sender or receiver (OWNER_SUSPENDED), writing nothing", async () => {
      const { app } = clockedApp(s);
      const from = freshOwner("from");
      const to = freshOwner("to");
      await apply(app, op(from, "CREDIT_ADD"));
      await apply(app, op(to, "CREDIT_ADD"));
      await setOwnerStatus(app, from, "suspended");
      const sender = await expectRefused(
        app,
        { from_owner_id: from, to_owner_id: to, amount: 1 },
        422,
        "OWNER_SUSPENDED",
      );
      expect(sender.details).toEqual({ owner_id: from });
      // The sender's suspension comes first, even when it could not afford the transfer either.
      await expectRefused(app, { from_owner_id: from, to_owner_id: to, amount: 11 }, 422, "OWNER_SUSPENDED");
      await setOwnerStatus(app, from, "active");
      await setOwnerStatus(app, to, "suspended");
      const receiver = await expectRefused(
        app,
        { from_owner_id: from, to_owner_id: to, amount: 1 },
        422,
        "OWNER_SUSPENDED",
      );
      expect(receiver.details).toEqual({ owner_id: to });
      await setOwnerStatus(app, to, "active");
      expect((await transfer(app, from, to, 1)).to.balance).toBe(11);
    });

    it("refuses what would take the receiver past 2^53-1 (BALANCE_LIMIT_EXCEEDED)", async () => {
      const { app, clock } = clockedApp(s);
      const from = freshOwner("from");
      const to = freshOwner("to");
      await apply(app, op(from, "CREDIT_ADD"));
      await seedBalance(s, to, BALANCE_MAX - 3, clock.now());
      await expectRefused(
        app,
        { from_owner_id: from, to_owner_id: to, amount: 4 },
        422,
        "BALANCE_LIMIT_EXCEEDED",
      );
      expect((await transfer(app, from, to, 3)).to.balance).toBe(BALANCE_MAX);
    });

    it("conserves the total over transfers crossing at once between two owners", async () => {
      const { app } = clockedApp(s);
      const a = freshOwner("a");
      const b = freshOwner("b");
      await apply(app, op(a, "CREDIT_ADD", { expires_at: at(START, DAY_MS) }));
      await apply(app, op(b, "CREDIT_ADD"));
      const results = await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          postTransfer(app, {
            from_owner_id: i % 2 === 0 ? a : b,
            to_owner_id: i % 2 === 0 ? b : a,
            amount: 1 + (i % 3),
            nonce: freshNonce(),
          }),
        ),
      );
      for (const res of results) expect([201, 422]).toContain(res.status);
      const [ra, rb] = [await readOwner(app, a), await readOwner(app, b)];
      expect(ra.balance + rb.balance).toBe(20);
      const expiring = [...ra.expiring, ...rb.expiring].reduce((sum, e) => sum + e.amount, 0);
      expect(expiring).toBe(10);
    });
  });

  describe("POST /ledger/transfers with a nonce used before", () => {
    interface Row {
      name: string;
      change: (c: { from: string; to: string }) => object;
    }
    const rows: Row[] = [
      { name: "another amount", change: () => ({ amount: 3 }) },
      { name: "another receiver", change: () => ({ to_owner_id: freshOwner() }) },
      { name: "another sender", change: (c) => ({ from_owner_id: c.to, to_owner_id: freshOwner() }) },
      { name: "the sides swapped", change: (c) => ({ from_owner_id: c.to, to_owner_id: c.from }) },
    ];
    describe.each(named(rows))("%s", (_, row) => {
      it("answers 409 NONCE_CONFLICT and writes nothing", async () => {
        const { app } = clockedApp(s);
        const from = freshOwner("from");
        const to = freshOwner("to");
        await apply(app, op(from, "CREDIT_ADD"));
        await apply(app, op(to, "CREDIT_ADD"));
        const nonce = freshNonce();
        await transfer(app, from, to, 2, nonce);
        const body = { from_owner_id: from, to_owner_id: to, amount: 2, nonce, ...row.change({ from, to }) };
        await expectRefused(app, body, 409, "NONCE_CONFLICT");
      });
    });

    it("shares the app's one nonce space with POST /ledger, both ways; a refused transfer leaves its nonce unused", async () => {
      const { app } = clockedApp(s);
      const from = freshOwner("from");
      const to = freshOwner("to");
      const posted = freshNonce();
      await apply(app, op(from, "CREDIT_ADD", { nonce: posted }));
      await expectRefused(
        app,
        { from_owner_id: from, to_owner_id: to, amount: 1, nonce: posted },
        409,
        "NONCE_CONFLICT",
      );
      const moved = freshNonce();
      await transfer(app, from, to, 1, moved);
      await expectProblem(
        await postJson(app, op(to, "CREDIT_SPEND", { nonce: moved })),
        409,
        "NONCE_CONFLICT",
      );
      const unused = freshNonce();
      await expectRefused(
        app,
        { from_owner_id: from, to_owner_id: to, amount: 10, nonce: unused },
        422,
        "INSUFFICIENT_BALANCE",
      );
      expect((await transfer(app, from, to, 9, unused)).from.balance).toBe(0);
    });
  });
}
