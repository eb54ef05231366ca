// app1's HTTP suite, run once on PGlite and once on real Postgres (see the vitest preset). Every request
// goes through app.request(): the whole app (middleware, validation, service, database), no port
// opened. One fresh database for the file; every test works on fresh owner ids.
import type { HttpErrorCode } from "@ledger/core/http";
import {
  expectLedgerInvariants,
  freshNonce,
  freshOwner,
  openTestDatabase,
  testDriver,
} from "@ledger/core/testing";
import type { TestDatabase } from "@ledger/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { APP_NAME, createApp } from "../src/app.js";
import type { App } from "../src/app.js";
import { app1Catalog } from "../src/operations.js";
import {
  apply,
  badOwnerPaths,
  badPageQueries,
  commonBadPosts,
  expectApplied,
  expectProblem,
  expectReplayed,
  getBalance,
  getEntries,
  invalid,
  manualClock,
  named,
  op,
  ownerState,
  patched,
  postJson,
  sendBadPost,
  silentLogger,
  tableCounts,
} from "@ledger/core/testing/http";
import { describeAppSurface } from "@ledger/core/testing/surface";
import type { BadPost, PostInput } from "@ledger/core/testing/http";

/**
 * app2's own operations, which app1 must not offer. Named here rather than imported: app2's suite
 * imports app1 for the cross-app tests, and the dependency goes one way only.
 */
const APP2_OPERATIONS = ["TOKEN_USAGE", "USAGE_REFUND", "REFERRAL_BONUS"] as const;

let tdb: TestDatabase;
let app: App;

beforeAll(async () => {
  tdb = await openTestDatabase();
  app = createApp({ db: tdb.db, ping: () => tdb.ping(), logger: silentLogger });
});

afterAll(async () => {
  await expectLedgerInvariants(tdb);
  await tdb.close();
});

/** Both views of "what is written": the owner's, through the API, and every table's row count. */
async function snapshot(owner: string) {
  return { owner: await ownerState(app, owner), tables: await tableCounts(tdb.db) };
}

describe(`app1 HTTP [${testDriver()}]`, () => {
  // First in the file, so test_user is untouched: the file's database is brand new.
  describe("the seed's curl examples, verbatim", () => {
    const seedBody =
      '{"operation": "CREDIT_ADD", "amount": 10, "owner_id": "test_user", "nonce": "123e4567-e89b-12d3-a456-426655440000"}';

    it("POST /ledger/ adds 10 credits to test_user, then GET /ledger/test_user answers balance 10", async () => {
      expect(await getBalance(app, "test_user")).toBe(0);

      const created = await expectApplied(
        await app.request("/ledger/", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: seedBody,
        }),
      );
      expect(created).toMatchObject({
        owner_id: "test_user",
        balance: 10,
        entry: {
          app: APP_NAME,
          operation: "CREDIT_ADD",
          owner_id: "test_user",
          amount: 10,
          balance_after: 10,
          sequence: 1,
          nonce: "123e4567-e89b-12d3-a456-426655440000",
        },
      });

      const res = await app.request("/ledger/test_user");
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^application\/json\b/);
      expect(await res.json()).toEqual({ owner_id: "test_user", balance: 10 });
    });

    it("running the same curl again replays it: test_user still has 10", async () => {
      const replay = await expectReplayed(
        await app.request("/ledger/", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: seedBody,
        }),
      );
      expect(replay).toMatchObject({ owner_id: "test_user", balance: 10, entry: { sequence: 1 } });
      expect(await ownerState(app, "test_user")).toEqual({ balance: 10, entryCount: 1 });
    });
  });

  describe("POST /ledger", () => {
    it("applies each of app1's operations with its signed amount, running balance and sequence", async () => {
      const owner = freshOwner();
      const steps = [
        { operation: "CREDIT_ADD", amount: 10, balance: 10 },
        { operation: "SIGNUP_CREDIT", amount: 3, balance: 13 },
        { operation: "DAILY_REWARD", amount: 1, balance: 14 },
        { operation: "CREDIT_SPEND", amount: -1, balance: 13 },
        { operation: "CONTENT_CREATION", amount: -5, balance: 8 },
        { operation: "CONTENT_ACCESS", amount: 0, balance: 8 },
      ];
      // The table covers the whole catalog, so a new operation in app1 needs a line here.
      expect(steps.map((s) => s.operation).sort()).toEqual([...app1Catalog.names].sort());

      for (const [i, step] of steps.entries()) {
        const input = op(owner, step.operation);
        const body = await apply(app, input);
        expect(body).toMatchObject({
          owner_id: owner,
          balance: step.balance,
          replayed: false,
          entry: {
            app: APP_NAME,
            operation: step.operation,
            owner_id: owner,
            amount: step.amount,
            balance_after: step.balance,
            sequence: i + 1,
            nonce: input.nonce,
          },
        });
      }
      expect(await ownerState(app, owner)).toEqual({ balance: 8, entryCount: steps.length });
    });

    it("accepts an amount equal to the operation's fixed magnitude, and answers the signed amount", async () => {
      const owner = freshOwner();
      expect((await apply(app, op(owner, "CREDIT_ADD", { amount: 10 }))).entry.amount).toBe(10);
      expect((await apply(app, op(owner, "CREDIT_SPEND", { amount: 1 }))).entry.amount).toBe(-1);
      expect((await apply(app, op(owner, "CONTENT_CREATION", { amount: 5 }))).entry.amount).toBe(-5);
      expect((await apply(app, op(owner, "CONTENT_ACCESS", { amount: 0 }))).entry.amount).toBe(0);
      expect(await getBalance(app, owner)).toBe(4);
    });

    it("accepts application/json with a charset parameter", async () => {
      const owner = freshOwner();
      await expectApplied(
        await app.request("/ledger", {
          method: "POST",
          headers: { "content-type": "application/json; charset=utf-8" },
          body: JSON.stringify(op(owner, "CREDIT_ADD")),
        }),
      );
      expect(await getBalance(app, owner)).toBe(10);
    });

    it("accepts owner ids and nonces of 128 characters, and owner ids with . : @ - that round-trip in the path", async () => {
      const longOwner = freshOwner("long").padEnd(128, "x");
      const longNonce = freshNonce().padEnd(128, "n");
      const body = await apply(app, op(longOwner, "CREDIT_ADD", { nonce: longNonce }));
      expect(body.entry).toMatchObject({ owner_id: longOwner, nonce: longNonce });
      expect(await getBalance(app, longOwner)).toBe(10);

      const emailish = freshOwner("jane.doe@example.com:tenant-7");
      await apply(app, op(emailish, "SIGNUP_CREDIT"));
      // Unencoded in the path: these characters need no escaping there.
      const res = await app.request(`/ledger/${emailish}`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ owner_id: emailish, balance: 3 });
    });
  });

  /** app1's own bad POSTs, on top of the common ones: amounts that do not fit the operation, app2's operations. */
  const badPosts: readonly BadPost[] = [
    ...commonBadPosts,
    { name: "amount 0 for CREDIT_SPEND", body: patched({ amount: 0 }), status: 400, code: "AMOUNT_MISMATCH" },
    { name: "amount 2 for CREDIT_SPEND", body: patched({ amount: 2 }), status: 400, code: "AMOUNT_MISMATCH" },
    invalid('amount "10" (a string) for CREDIT_ADD', patched({ operation: "CREDIT_ADD", amount: "10" })),
    {
      name: "amount 11 for CREDIT_ADD",
      body: patched({ operation: "CREDIT_ADD", amount: 11 }),
      status: 400,
      code: "AMOUNT_MISMATCH",
    },
    {
      name: "amount 0 for CREDIT_ADD",
      body: patched({ operation: "CREDIT_ADD", amount: 0 }),
      status: 400,
      code: "AMOUNT_MISMATCH",
    },
    {
      name: "amount 4 for CONTENT_CREATION",
      body: patched({ operation: "CONTENT_CREATION", amount: 4 }),
      status: 400,
      code: "AMOUNT_MISMATCH",
    },
    {
      name: "amount 1 for CONTENT_ACCESS (which moves 0)",
      body: patched({ operation: "CONTENT_ACCESS", amount: 1 }),
      status: 400,
      code: "AMOUNT_MISMATCH",
    },
    ...APP2_OPERATIONS.map((operation): BadPost => ({
      name: `app2's ${operation}`,
      body: patched({ operation, amount: 5 }),
      status: 400,
      code: "UNKNOWN_OPERATION",
    })),
  ];

  describe.each(named(badPosts))("POST /ledger refuses %s", (_, bad) => {
    it(`answers ${bad.status} ${bad.code} as problem+json and writes nothing`, async () => {
      const owner = freshOwner();
      await apply(app, op(owner, "CREDIT_ADD"));
      const before = await snapshot(owner);

      await expectProblem(await sendBadPost(app, bad, op(owner, "CREDIT_SPEND")), bad.status, bad.code);

      expect(before.owner).toEqual({ balance: 10, entryCount: 1 });
      expect(await snapshot(owner)).toEqual(before);
    });
  });

  describe("GET /ledger/{owner_id}", () => {
    it("answers the owner's balance", async () => {
      const owner = freshOwner();
      await apply(app, op(owner, "CREDIT_ADD"));
      await apply(app, op(owner, "CONTENT_CREATION"));
      const res = await app.request(`/ledger/${owner}`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^application\/json\b/);
      expect(await res.json()).toEqual({ owner_id: owner, balance: 5 });
    });

    it("answers 0 for an owner with no entries, and writes nothing", async () => {
      const before = await tableCounts(tdb.db);
      expect(await getBalance(app, freshOwner())).toBe(0);
      expect(await tableCounts(tdb.db)).toEqual(before);
    });

    it("answers with a trailing slash too", async () => {
      const owner = freshOwner();
      await apply(app, op(owner, "SIGNUP_CREDIT"));
      const res = await app.request(`/ledger/${owner}/`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ owner_id: owner, balance: 3 });
    });
  });

  describe.each(named(badOwnerPaths))("GET with %s", (_, { path, status, code }) => {
    it(`answers ${status} ${code} as problem+json and writes nothing`, async () => {
      const before = await tableCounts(tdb.db);
      await expectProblem(await app.request(path), status, code);
      expect(await tableCounts(tdb.db)).toEqual(before);
    });
  });

  describe("GET /ledger/{owner_id}/entries", () => {
    it("lists the owner's entries newest first, each with its running balance and sequence", async () => {
      const owner = freshOwner();
      const posted = [];
      for (const operation of [
        "CREDIT_ADD",
        "SIGNUP_CREDIT",
        "CREDIT_SPEND",
        "CONTENT_ACCESS",
        "CONTENT_CREATION",
      ]) {
        posted.push((await apply(app, op(owner, operation))).entry);
      }
      const page = await getEntries(app, owner);
      expect(page.next_cursor).toBeNull();
      expect(page.entries).toEqual([...posted].reverse());
      expect(page.entries.map((e) => [e.sequence, e.operation, e.amount, e.balance_after])).toEqual([
        [5, "CONTENT_CREATION", -5, 7],
        [4, "CONTENT_ACCESS", 0, 12],
        [3, "CREDIT_SPEND", -1, 12],
        [2, "SIGNUP_CREDIT", 3, 13],
        [1, "CREDIT_ADD", 10, 10],
      ]);
      expect(page.entries.every((e) => e.app === APP_NAME && e.owner_id === owner)).toBe(true);
    });

    it("answers an empty page for an owner with no entries", async () => {
      const owner = freshOwner();
      expect(await getEntries(app, owner)).toEqual({ owner_id: owner, entries: [], next_cursor: null });
    });

    it("pages through the history with next_cursor: no entry twice, none missed", async () => {
      const owner = freshOwner();
      for (let i = 0; i < 5; i++) await apply(app, op(owner, "CREDIT_ADD"));

      const seen: number[][] = [];
      let cursor: string | null = null;
      do {
        const query: string = cursor === null ? "?limit=2" : `?limit=2&cursor=${encodeURIComponent(cursor)}`;
        const page = await getEntries(app, owner, query);
        seen.push(page.entries.map((e) => e.sequence));
        cursor = page.next_cursor;
      } while (cursor !== null && seen.length < 10);

      expect(seen).toEqual([[5, 4], [3, 2], [1]]);
    });

    it("gives no next_cursor when a page ends exactly at the oldest entry", async () => {
      const owner = freshOwner();
      for (let i = 0; i < 4; i++) await apply(app, op(owner, "CREDIT_ADD"));
      const first = await getEntries(app, owner, "?limit=2");
      expect(first.next_cursor).not.toBeNull();
      const second = await getEntries(app, owner, `?limit=2&cursor=${first.next_cursor ?? ""}`);
      expect(second.entries.map((e) => e.sequence)).toEqual([2, 1]);
      expect(second.next_cursor).toBeNull();
    });

    it("pages 50 entries by default, and takes up to 200", async () => {
      const owner = freshOwner();
      for (let i = 0; i < 51; i++) await apply(app, op(owner, "CONTENT_ACCESS"));
      const first = await getEntries(app, owner);
      expect(first.entries).toHaveLength(50);
      expect(first.next_cursor).not.toBeNull();
      const rest = await getEntries(app, owner, `?cursor=${first.next_cursor ?? ""}`);
      expect(rest.entries.map((e) => e.sequence)).toEqual([1]);
      expect(rest.next_cursor).toBeNull();
      expect((await getEntries(app, owner, "?limit=200")).entries).toHaveLength(51);
    });
  });

  describe.each(named(badPageQueries))("GET /ledger/{owner_id}/entries with %s", (_, { query, code }) => {
    it(`answers 400 ${code} as problem+json`, async () => {
      const owner = freshOwner();
      await apply(app, op(owner, "CREDIT_ADD"));
      await expectProblem(await app.request(`/ledger/${owner}/entries${query}`), 400, code);
    });
  });

  describe("idempotency", () => {
    it("replays the same nonce with the same request: the same entry, 200, replayed, nothing written", async () => {
      const owner = freshOwner();
      const input = op(owner, "CREDIT_ADD");
      const first = await apply(app, input);
      const before = await snapshot(owner);

      const again = await expectReplayed(await postJson(app, input));
      expect(again.entry).toEqual(first.entry);
      expect(again.balance).toBe(first.balance);
      expect(await snapshot(owner)).toEqual(before);
    });

    it("replays with the original answer even after later writes moved the balance", async () => {
      const owner = freshOwner();
      const input = op(owner, "CREDIT_ADD");
      const first = await apply(app, input);
      await apply(app, op(owner, "CONTENT_CREATION"));
      const again = await expectReplayed(await postJson(app, input));
      expect(again).toEqual({ ...first, replayed: true });
      expect(await getBalance(app, owner)).toBe(5);
    });

    it("treats a fixed amount stated or left out as the same request", async () => {
      const owner = freshOwner();
      const nonce = freshNonce();
      const first = await apply(app, op(owner, "CREDIT_ADD", { nonce }));
      const again = await expectReplayed(await postJson(app, op(owner, "CREDIT_ADD", { nonce, amount: 10 })));
      expect(again.entry).toEqual(first.entry);
    });

    const conflicts: {
      name: string;
      change: () => Partial<PostInput>;
      status: number;
      code: HttpErrorCode;
    }[] = [
      {
        name: "another operation",
        change: () => ({ operation: "SIGNUP_CREDIT" }),
        status: 409,
        code: "NONCE_CONFLICT",
      },
      {
        name: "another owner",
        change: () => ({ owner_id: freshOwner() }),
        status: 409,
        code: "NONCE_CONFLICT",
      },
      {
        name: "a debit instead",
        change: () => ({ operation: "CREDIT_SPEND" }),
        status: 409,
        code: "NONCE_CONFLICT",
      },
      // The amount is checked against the operation before the nonce is looked up.
      { name: "a wrong amount", change: () => ({ amount: 11 }), status: 400, code: "AMOUNT_MISMATCH" },
    ];

    describe.each(named(conflicts))("the same nonce with %s", (_, { change, status, code }) => {
      it(`answers ${status} ${code} and writes nothing`, async () => {
        const owner = freshOwner();
        const input = op(owner, "CREDIT_ADD");
        await apply(app, input);
        const changed = { ...input, ...change() };
        const before = { mine: await snapshot(owner), theirs: await ownerState(app, changed.owner_id) };
        await expectProblem(await postJson(app, changed), status, code);
        expect({ mine: await snapshot(owner), theirs: await ownerState(app, changed.owner_id) }).toEqual(
          before,
        );
      });
    });

    it("does not use up the nonce of a refused request", async () => {
      const owner = freshOwner();
      const nonce = freshNonce();
      await expectProblem(
        await postJson(app, op(owner, "CREDIT_SPEND", { nonce })),
        422,
        "INSUFFICIENT_BALANCE",
      );
      // The same refused request again is refused again, not replayed as if it had succeeded.
      await expectProblem(
        await postJson(app, op(owner, "CREDIT_SPEND", { nonce })),
        422,
        "INSUFFICIENT_BALANCE",
      );
      const applied = await apply(app, op(owner, "CREDIT_ADD", { nonce }));
      expect(applied.entry).toMatchObject({ nonce, sequence: 1, balance_after: 10 });
    });
  });

  describe("balance rules", () => {
    it("refuses a spend from an empty balance with 422 INSUFFICIENT_BALANCE and writes nothing", async () => {
      const owner = freshOwner();
      const before = await snapshot(owner);
      const problem = await expectProblem(
        await postJson(app, op(owner, "CREDIT_SPEND")),
        422,
        "INSUFFICIENT_BALANCE",
      );
      expect(problem.details).toMatchObject({ owner_id: owner, balance: 0, required: 1 });
      expect(await snapshot(owner)).toEqual(before);
    });

    it("refuses CONTENT_CREATION at 4 credits and allows it at exactly 5, down to 0", async () => {
      const owner = freshOwner();
      await apply(app, op(owner, "SIGNUP_CREDIT"));
      await apply(app, op(owner, "DAILY_REWARD"));
      const before = await snapshot(owner);
      expect(before.owner).toEqual({ balance: 4, entryCount: 2 });
      await expectProblem(await postJson(app, op(owner, "CONTENT_CREATION")), 422, "INSUFFICIENT_BALANCE");
      expect(await snapshot(owner)).toEqual(before);

      await apply(app, op(owner, "CREDIT_SPEND"));
      await apply(app, op(owner, "CREDIT_ADD"));
      const created = await apply(app, op(owner, "CONTENT_CREATION"));
      expect(created.balance).toBe(8);
      await apply(app, op(owner, "CREDIT_SPEND"));
      await apply(app, op(owner, "CREDIT_SPEND"));
      await apply(app, op(owner, "CREDIT_SPEND"));
      expect((await apply(app, op(owner, "CONTENT_CREATION"))).balance).toBe(0);
      await expectProblem(await postJson(app, op(owner, "CREDIT_SPEND")), 422, "INSUFFICIENT_BALANCE");
    });
  });

  describe("limits", () => {
    it("gives SIGNUP_CREDIT once per owner: the second answers 422 LIMIT_REACHED and writes nothing", async () => {
      const owner = freshOwner();
      await apply(app, op(owner, "SIGNUP_CREDIT"));
      const before = await snapshot(owner);
      await expectProblem(await postJson(app, op(owner, "SIGNUP_CREDIT")), 422, "LIMIT_REACHED");
      expect(await snapshot(owner)).toEqual(before);
      expect(before.owner.balance).toBe(3);
      // The limit is per owner: another owner still gets theirs.
      expect((await apply(app, op(freshOwner(), "SIGNUP_CREDIT"))).balance).toBe(3);
    });

    it("gives DAILY_REWARD once per owner per UTC day, by the injected clock", async () => {
      const clock = manualClock("2026-03-01T10:00:00.000Z");
      const clocked = createApp({
        db: tdb.db,
        ping: () => tdb.ping(),
        logger: silentLogger,
        clock: clock.now,
      });
      const owner = freshOwner();

      const first = await apply(clocked, op(owner, "DAILY_REWARD"));
      expect(first.entry.created_at).toBe("2026-03-01T10:00:00.000Z");

      clock.set("2026-03-01T23:59:59.999Z");
      const before = await snapshot(owner);
      const problem = await expectProblem(
        await postJson(clocked, op(owner, "DAILY_REWARD")),
        422,
        "LIMIT_REACHED",
      );
      expect(problem.details).toMatchObject({
        operation: "DAILY_REWARD",
        limit: "daily",
        period: "2026-03-01",
      });
      expect(await snapshot(owner)).toEqual(before);

      clock.set("2026-03-02T00:00:00.000Z");
      const nextDay = await apply(clocked, op(owner, "DAILY_REWARD"));
      expect(nextDay).toMatchObject({
        balance: 2,
        entry: { sequence: 2, created_at: "2026-03-02T00:00:00.000Z" },
      });
    });
  });

  describe("CONTENT_ACCESS, the zero-amount operation", () => {
    it("records an entry that moves nothing, even at balance 0, as often as it is asked", async () => {
      const owner = freshOwner();
      const first = await apply(app, op(owner, "CONTENT_ACCESS"));
      expect(first).toMatchObject({ balance: 0, entry: { amount: 0, balance_after: 0, sequence: 1 } });
      const second = await apply(app, op(owner, "CONTENT_ACCESS", { amount: 0 }));
      expect(second.entry).toMatchObject({ amount: 0, balance_after: 0, sequence: 2 });
      expect(await ownerState(app, owner)).toEqual({ balance: 0, entryCount: 2 });
    });

    it("leaves a positive balance exactly where it was", async () => {
      const owner = freshOwner();
      await apply(app, op(owner, "SIGNUP_CREDIT"));
      expect((await apply(app, op(owner, "CONTENT_ACCESS"))).balance).toBe(3);
      expect(await getBalance(app, owner)).toBe(3);
    });
  });

  describeAppSurface({
    app: () => app,
    db: () => tdb.db,
    ping: () => tdb.ping(),
    createApp,
    name: APP_NAME,
    title: "app1 credits ledger",
    operations: app1Catalog.names,
    foreignApp: "app2",
    foreignOperations: APP2_OPERATIONS,
    validPost: (owner) => op(owner, "CREDIT_ADD"),
  });
});
