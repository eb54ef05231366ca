// Credits that expire, through HTTP, for every app (CREDIT_ADD takes expires_at everywhere): grants
// and their expiry in reads, burn order, expiry by the next write and by the sweeper, idempotency with
// expires_at, the balance at an instant, and the entries' filters. describeAppSurface runs it.
import { describe, expect, it, onTestFinished } from "vitest";
import { freshNonce, freshOwner } from "./index.js";
import { manualClock, silentLogger } from "./deps.js";
import { expectProblem } from "./problems.js";
import { serviceAs } from "./moves.js";
import {
  apply,
  balanceAt,
  expectReplayed,
  getEntries,
  getSummary,
  op,
  postJson,
  readOwner,
} from "./requests.js";
import { ownerState, tableCounts } from "./snapshots.js";
import type { AppSurface } from "./app-surface.js";

const DAY_MS = 86_400_000;
const at = (start: string, ms: number) => new Date(Date.parse(start) + ms).toISOString();
/** The summary's order of groups: by app, then operation, by code point. */
const byAppThenOperation = (a: { app: string; operation: string }, b: { app: string; operation: string }) =>
  a.app < b.app ? -1 : a.app > b.app ? 1 : a.operation < b.operation ? -1 : a.operation > b.operation ? 1 : 0;

export function describeExpiringCredits(s: AppSurface): void {
  const START = "2026-03-01T10:00:00.000Z";
  const clocked = () => {
    const clock = manualClock(START);
    const app = s.createApp({ db: s.db(), ping: s.ping, logger: silentLogger, clock: clock.now });
    return { clock, app };
  };

  describe("credits that expire", () => {
    it("grants CREDIT_ADD's credits with expires_at, read in UTC to the millisecond, and lists them in expiring", async () => {
      const { app } = clocked();
      const owner = freshOwner();
      const body = await apply(
        app,
        op(owner, "CREDIT_ADD", { expires_at: "2026-03-05T12:30:00.123456+02:00" }),
      );
      expect(body.entry).toMatchObject({
        amount: 10,
        balance_after: 10,
        expires_at: "2026-03-05T10:30:00.123Z",
      });
      await apply(app, op(owner, "CREDIT_ADD", { expires_at: "2026-03-05T10:30:00.123Z" }));
      await apply(app, op(owner, "CREDIT_ADD", { expires_at: "2026-03-02T00:00:00Z" }));
      await apply(app, op(owner, "CREDIT_ADD"));
      expect(await readOwner(app, owner)).toEqual({
        owner_id: owner,
        balance: 40,
        available: 40,
        held: 0,
        status: "active",
        expiring: [
          { amount: 10, expires_at: "2026-03-02T00:00:00.000Z" },
          { amount: 20, expires_at: "2026-03-05T10:30:00.123Z" },
        ],
      });
      const { entries } = await getEntries(app, owner);
      expect(entries.map((e) => e.expires_at ?? null)).toEqual([
        null,
        "2026-03-02T00:00:00.000Z",
        "2026-03-05T10:30:00.123Z",
        "2026-03-05T10:30:00.123Z",
      ]);
    });

    it("replays a request with expires_at written another way for the same instant; another instant is a conflict", async () => {
      const { app } = clocked();
      const owner = freshOwner();
      const nonce = freshNonce();
      const first = await apply(app, op(owner, "CREDIT_ADD", { nonce, expires_at: "2026-04-01T00:00:00Z" }));
      const again = await expectReplayed(
        await postJson(app, op(owner, "CREDIT_ADD", { nonce, expires_at: "2026-04-01T02:00:00.000+02:00" })),
      );
      expect(again.entry).toEqual(first.entry);
      const before = { owner: await ownerState(app, owner), tables: await tableCounts(s.db()) };
      for (const change of [{ expires_at: "2026-04-01T00:00:00.001Z" }, {}]) {
        await expectProblem(
          await postJson(app, { ...op(owner, "CREDIT_ADD", { nonce }), ...change }),
          409,
          "NONCE_CONFLICT",
        );
      }
      expect({ owner: await ownerState(app, owner), tables: await tableCounts(s.db()) }).toEqual(before);
    });

    it("refuses an expires_at that is past, or over ten years ahead, by the ledger's clock, writing nothing", async () => {
      const { app } = clocked();
      const owner = freshOwner();
      await apply(app, op(owner, "CREDIT_ADD"));
      const before = { owner: await ownerState(app, owner), tables: await tableCounts(s.db()) };
      for (const expires_at of [START, at(START, -1), "2036-03-01T10:00:00.001Z"]) {
        const problem = await expectProblem(
          await postJson(app, op(owner, "CREDIT_ADD", { expires_at })),
          400,
          "VALIDATION_FAILED",
        );
        expect(problem.errors?.map((e) => e.path)).toEqual(["expires_at"]);
        expect(problem.errors?.[0]?.message).toMatch(/future/);
      }
      expect({ owner: await ownerState(app, owner), tables: await tableCounts(s.db()) }).toEqual(before);
      await apply(app, op(owner, "CREDIT_ADD", { expires_at: "2036-03-01T10:00:00.000Z" }));
    });

    it("spends the soonest expiry first and credits without expiry last", async () => {
      const { app } = clocked();
      const owner = freshOwner();
      await apply(app, op(owner, "CREDIT_ADD"));
      await apply(app, op(owner, "CREDIT_ADD", { expires_at: at(START, 2 * DAY_MS) }));
      await apply(app, op(owner, "CREDIT_ADD", { expires_at: at(START, DAY_MS) }));
      for (let i = 0; i < 12; i++) await apply(app, op(owner, "CREDIT_SPEND"));
      expect((await readOwner(app, owner)).expiring).toEqual([
        { amount: 8, expires_at: at(START, 2 * DAY_MS) },
      ]);
      for (let i = 0; i < 8; i++) await apply(app, op(owner, "CREDIT_SPEND"));
      expect(await readOwner(app, owner)).toMatchObject({ balance: 10, expiring: [] });
    });

    it("stops counting an expired remainder at once, and the next write records it with an EXPIRY entry first", async () => {
      const { app, clock } = clocked();
      const owner = freshOwner();
      await apply(app, op(owner, "CREDIT_ADD"));
      await apply(app, op(owner, "CREDIT_ADD", { expires_at: at(START, DAY_MS) }));
      await apply(app, op(owner, "CREDIT_SPEND"));
      clock.set(at(START, DAY_MS));
      // Read at the expiry instant: the 9 left of the grant no longer count, though no entry says so yet;
      // nor in history: the balance at that instant leaves them out too.
      expect(await readOwner(app, owner)).toMatchObject({ balance: 10, available: 10, expiring: [] });
      expect(await balanceAt(app, owner, at(START, DAY_MS))).toBe(10);
      expect((await getEntries(app, owner)).entries).toHaveLength(3);
      const spend = await apply(app, op(owner, "CREDIT_SPEND"));
      expect(spend).toMatchObject({ balance: 9, entry: { sequence: 5, balance_after: 9 } });
      const [, expiry] = (await getEntries(app, owner)).entries;
      expect(expiry).toMatchObject({
        app: s.name,
        operation: "EXPIRY",
        amount: -9,
        balance_after: 10,
        sequence: 4,
        expires_at: at(START, DAY_MS),
        created_at: at(START, DAY_MS),
      });
      expect(await balanceAt(app, owner, at(START, DAY_MS - 1))).toBe(19);
      // The expiry and the spend were written at the expiry instant: the balance right after them.
      expect(await balanceAt(app, owner, at(START, DAY_MS))).toBe(9);
    });

    it("answers ?at= between an expiry and its EXPIRY entry without the expired credits", async () => {
      const { app, clock } = clocked();
      const owner = freshOwner();
      await apply(app, op(owner, "CREDIT_ADD"));
      await apply(app, op(owner, "CREDIT_ADD", { expires_at: at(START, 60_000) }));
      await apply(app, op(owner, "CREDIT_SPEND"));
      // Hours later the next write records the expiry: in between, history says 10, not 19.
      clock.set(at(START, 3 * 3_600_000));
      await apply(app, op(owner, "CREDIT_SPEND"));
      expect(await balanceAt(app, owner, at(START, 59_999))).toBe(19);
      expect(await balanceAt(app, owner, at(START, 60_000))).toBe(10);
      expect(await balanceAt(app, owner, at(START, 3_600_000))).toBe(10);
      expect(await balanceAt(app, owner, at(START, 3 * 3_600_000))).toBe(9);
    });

    it("refuses a debit that only expired credits would cover, and writes nothing, expiry included", async () => {
      const { app, clock } = clocked();
      const owner = freshOwner();
      await apply(app, op(owner, "CREDIT_ADD", { expires_at: at(START, 1_000) }));
      clock.set(at(START, 1_000));
      const before = { owner: await ownerState(app, owner), tables: await tableCounts(s.db()) };
      await expectProblem(await postJson(app, op(owner, "CREDIT_SPEND")), 422, "INSUFFICIENT_BALANCE");
      expect({ owner: await ownerState(app, owner), tables: await tableCounts(s.db()) }).toEqual(before);
    });

    it("expires due grants in the background too (LEDGER_EXPIRY_SWEEP_S), with no write for the owner", async () => {
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
      // The sweeper's, and the event streams' (every app has those).
      expect(stops).toHaveLength(2);
      await apply(swept, op(owner, "CREDIT_ADD", { expires_at: at(START, 60_000) }));
      clock.set(at(START, 60_000));
      let entries = (await getEntries(swept, owner)).entries;
      for (let tries = 0; tries < 50 && entries.length < 2; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        entries = (await getEntries(swept, owner)).entries;
      }
      expect(entries.map((e) => [e.operation, e.amount, e.balance_after])).toEqual([
        ["EXPIRY", -10, 0],
        ["CREDIT_ADD", 10, 10],
      ]);
    });
  });

  describe("GET /ledger/{owner_id}?at= and the entries' filters", () => {
    it("answers the running balance after the last entry at or before the instant", async () => {
      const { app, clock } = clocked();
      const owner = freshOwner();
      await apply(app, op(owner, "CREDIT_ADD"));
      clock.set(at(START, 60_000));
      await apply(app, op(owner, "CREDIT_SPEND"));
      expect(await balanceAt(app, owner, at(START, -1))).toBe(0);
      expect(await balanceAt(app, owner, START)).toBe(10);
      expect(await balanceAt(app, owner, at(START, 59_999))).toBe(10);
      expect(await balanceAt(app, owner, "2026-03-01T11:01:00+01:00")).toBe(9);
      expect(await balanceAt(app, freshOwner(), START)).toBe(0);
      // The ledger's clock says what the future is.
      await expectProblem(
        await app.request(`/ledger/${owner}?at=${at(START, 60_001)}`),
        400,
        "VALIDATION_FAILED",
      );
    });

    it("explains a change between two instants: the entries after the first up to the second, by app and operation, adding up exactly", async () => {
      const { app, clock } = clocked();
      const owner = freshOwner();
      const other = serviceAs(s, s.foreignApp, clock.now);
      await apply(app, op(owner, "CREDIT_ADD")); // START: 10
      clock.set(at(START, 60_000));
      await apply(app, op(owner, "CREDIT_ADD", { expires_at: at(START, 180_000) })); // 20
      await apply(app, op(owner, "CREDIT_SPEND")); // 19
      clock.set(at(START, 120_000));
      await other.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce() }); // 29
      clock.set(at(START, 240_000));
      // The grant's 9 left expired at +180 s; this spend records the EXPIRY first: 20, then 19.
      await apply(app, op(owner, "CREDIT_SPEND"));
      const sum = (groups: { amount: number }[]) => groups.reduce((t, g) => t + g.amount, 0);

      const all = await getSummary(app, owner, `?from=${at(START, -1)}`);
      expect(all).toEqual({
        owner_id: owner,
        from: at(START, -1),
        to: at(START, 240_000),
        balance_from: 0,
        balance_to: 19,
        change: 19,
        groups: [
          { app: s.name, operation: "CREDIT_ADD", entries: 2, amount: 20 },
          { app: s.name, operation: "CREDIT_SPEND", entries: 2, amount: -2 },
          { app: s.name, operation: "EXPIRY", entries: 1, amount: -9 },
          { app: s.foreignApp, operation: "CREDIT_ADD", entries: 1, amount: 10 },
        ].sort(byAppThenOperation),
      });
      expect(sum(all.groups)).toBe(all.change);

      // An entry at `from` is before the span; one at `to` is in it.
      const middle = await getSummary(app, owner, `?from=${START}&to=${at(START, 120_000)}`);
      expect(middle).toMatchObject({ balance_from: 10, balance_to: 29, change: 19 });
      expect(sum(middle.groups)).toBe(19);
      expect(middle.groups).toEqual(
        [
          { app: s.name, operation: "CREDIT_ADD", entries: 1, amount: 10 },
          { app: s.name, operation: "CREDIT_SPEND", entries: 1, amount: -1 },
          { app: s.foreignApp, operation: "CREDIT_ADD", entries: 1, amount: 10 },
        ].sort(byAppThenOperation),
      );
      // Nothing between two instants: no groups, no change; an owner with no entries: zeros.
      expect(
        await getSummary(app, owner, `?from=${at(START, 130_000)}&to=${at(START, 200_000)}`),
      ).toMatchObject({ balance_from: 29, balance_to: 29, change: 0, groups: [] });
      expect(await getSummary(app, freshOwner())).toMatchObject({
        balance_from: 0,
        balance_to: 0,
        change: 0,
        groups: [],
      });
    });

    it("defaults the summary to the 30 days before now, and refuses a future `to`, `from` after `to` and a bad instant", async () => {
      const { app } = clocked();
      const owner = freshOwner();
      await apply(app, op(owner, "CREDIT_ADD"));
      const summary = await getSummary(app, owner);
      expect(summary).toMatchObject({
        from: at(START, -30 * DAY_MS),
        to: START,
        balance_from: 0,
        balance_to: 10,
        change: 10,
        groups: [{ app: s.name, operation: "CREDIT_ADD", entries: 1, amount: 10 }],
      });
      const before = await tableCounts(s.db());
      for (const query of [
        `?to=${at(START, 1)}`,
        `?from=${at(START, -1)}&to=${at(START, -2)}`,
        "?from=yesterday",
        `?to=${"9".repeat(100)}`,
      ]) {
        await expectProblem(await app.request(`/ledger/${owner}/summary${query}`), 400, "VALIDATION_FAILED");
      }
      expect(await tableCounts(s.db())).toEqual(before);
    });

    it("filters entries by time, app and operation, newest first, with a cursor", async () => {
      const { app, clock } = clocked();
      const owner = freshOwner();
      for (let i = 0; i < 5; i++) {
        clock.set(at(START, i * 60_000));
        await apply(app, op(owner, i % 2 === 0 ? "CREDIT_ADD" : "CREDIT_SPEND"));
      }
      const seqs = async (query: string) =>
        (await getEntries(app, owner, query)).entries.map((e) => e.sequence);
      expect(await seqs(`?from=${at(START, 60_000)}`)).toEqual([5, 4, 3, 2]);
      expect(await seqs(`?to=${at(START, 60_000)}`)).toEqual([2, 1]);
      expect(await seqs(`?from=${at(START, 60_000)}&to=${at(START, 180_000)}`)).toEqual([4, 3, 2]);
      expect(await seqs("?operation=CREDIT_SPEND")).toEqual([4, 2]);
      expect(await seqs(`?app=${s.name}&operation=CREDIT_ADD`)).toEqual([5, 3, 1]);
      expect(await seqs(`?app=${s.foreignApp}`)).toEqual([]);
      const first = await getEntries(app, owner, "?operation=CREDIT_ADD&limit=2");
      expect(first.entries.map((e) => e.sequence)).toEqual([5, 3]);
      expect(first.next_cursor).not.toBeNull();
      const next = await getEntries(
        app,
        owner,
        `?operation=CREDIT_ADD&limit=2&cursor=${first.next_cursor ?? ""}`,
      );
      expect(next.entries.map((e) => e.sequence)).toEqual([1]);
      expect(next.next_cursor).toBeNull();
    });
  });
}
