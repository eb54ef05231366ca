// app1's HTTP suite, run once on PGlite and once on real Postgres (see the vitest preset). Every request
// goes through app.request(): the whole app (middleware, validation, service, database), no port
// opened. One fresh database for the file; every test works on fresh owner ids.
import {
  expectedBalance,
  expectLedgerInvariants,
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
  badBody,
  expectApplied,
  expectProblem,
  expectReplayed,
  getBalance,
  getEntries,
  named,
  op,
  ownerState,
  postJson,
  sendHostileBody,
  silentLogger,
  tableCounts,
  withMembers,
} from "@ledger/core/testing/http";
import { describeAppSurface, type AppSurface } from "@ledger/core/testing/surface";
import { describeSecurity } from "@ledger/core/testing/security";
import type { HostileBody } from "@ledger/core/testing/http";

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
      expect(await res.json()).toEqual(expectedBalance("test_user", 10));
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
  });

  /**
   * app1's own bad POSTs that the hostile table (hostile.db.test.ts, built from app1's catalog: the
   * wrong amounts of every operation, app2's operations) does not already send. The bad bodies every
   * app refuses alike are rows of that table; these rows are in its vocabulary.
   */
  const badPosts: readonly HostileBody[] = [
    badBody('amount "10" (a string) for CREDIT_ADD', withMembers({ operation: "CREDIT_ADD", amount: "10" })),
    badBody(
      "amount 4 for CONTENT_CREATION",
      withMembers({ operation: "CONTENT_CREATION", amount: 4 }),
      "AMOUNT_MISMATCH",
    ),
  ];

  describe.each(named(badPosts))("POST /ledger refuses %s", (_, bad) => {
    it(`answers ${bad.status} ${bad.code} as problem+json and writes nothing`, async () => {
      const owner = freshOwner();
      await apply(app, op(owner, "CREDIT_ADD"));
      const before = await snapshot(owner);

      await expectProblem(await sendHostileBody(app, bad, op(owner, "CREDIT_SPEND")), bad.status, bad.code);

      expect(before.owner).toEqual({ balance: 10, entryCount: 1 });
      expect(await snapshot(owner)).toEqual(before);
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
  });

  describe("balance rules", () => {
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

  const surface: AppSurface = {
    app: () => app,
    db: () => tdb.db,
    ping: () => tdb.ping(),
    createApp,
    name: APP_NAME,
    title: "app1 credits ledger",
    catalog: app1Catalog,
    foreignApp: "app2",
    foreignOperations: APP2_OPERATIONS,
    validPost: (owner) => op(owner, "CREDIT_ADD"),
  };
  describeAppSurface(surface);
  describeSecurity(surface);
});
