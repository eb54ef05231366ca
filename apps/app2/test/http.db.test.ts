// app2's HTTP suite, run once on PGlite and once on real Postgres (see the vitest preset). Every request
// goes through app.request(): the whole app (middleware, validation, service, database), no port
// opened. One fresh database for the file; every test works on fresh owner ids. The cross-app tests at
// the end run app1 and app2 over that same database, as `pnpm start` does.
import { APP_NAME as APP1_NAME, createApp as createApp1 } from "@ledger/app1/app";
import { app1Catalog } from "@ledger/app1/operations";
import { sharedOperations } from "@ledger/core";
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
import { app2Catalog } from "../src/operations.js";
import {
  apply,
  badBody,
  expectProblem,
  expectReplayed,
  getBalance,
  getEntries,
  manualClock,
  readOwner,
  named,
  op,
  ownerState,
  postJson,
  rawMember,
  sendHostileBody,
  silentLogger,
  tableCounts,
  withMembers,
} from "@ledger/core/testing/http";
import { conflict, describeNonceConflicts } from "@ledger/core/testing/shared-operations";
import { describeAppSurface, type AppSurface } from "@ledger/core/testing/surface";
import { describeSecurity } from "@ledger/core/testing/security";
import type { HostileBody } from "@ledger/core/testing/http";

/** app1's own operations (its catalog less the shared ones), which app2 must not offer. */
const APP1_OPERATIONS = app1Catalog.names.filter((name) => !Object.hasOwn(sharedOperations, name));

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

/** An owner holding `credits`, put there with USAGE_REFUND (any amount in 1..100000 at a time). */
async function ownerWith(credits: number): Promise<string> {
  const owner = freshOwner();
  for (let left = credits; left > 0; left -= 100_000) {
    await apply(app, op(owner, "USAGE_REFUND", { amount: Math.min(left, 100_000) }));
  }
  return owner;
}

describe(`app2 HTTP [${testDriver()}]`, () => {
  it("sanity: app1's own operations are known to this suite", () => {
    expect([...APP1_OPERATIONS].sort()).toEqual(["CONTENT_ACCESS", "CONTENT_CREATION"]);
  });

  describe("POST /ledger", () => {
    it("applies each of app2's operations with its signed amount, running balance and sequence", async () => {
      const owner = freshOwner();
      const steps = [
        { operation: "CREDIT_ADD", amount: undefined, signed: 10, balance: 10 },
        { operation: "SIGNUP_CREDIT", amount: undefined, signed: 3, balance: 13 },
        { operation: "DAILY_REWARD", amount: undefined, signed: 1, balance: 14 },
        { operation: "CREDIT_SPEND", amount: undefined, signed: -1, balance: 13 },
        { operation: "TOKEN_USAGE", amount: 7, signed: -7, balance: 6 },
        { operation: "USAGE_REFUND", amount: 4, signed: 4, balance: 10 },
        { operation: "REFERRAL_BONUS", amount: undefined, signed: 5, balance: 15 },
        { operation: "PROMO_CREDIT", amount: undefined, signed: 20, balance: 35 },
      ];
      // The table covers the whole catalog, so a new operation in app2 needs a line here.
      expect(steps.map((s) => s.operation).sort()).toEqual([...app2Catalog.names].sort());

      for (const [i, step] of steps.entries()) {
        const input = op(owner, step.operation, { amount: step.amount });
        expect(await apply(app, input)).toMatchObject({
          owner_id: owner,
          balance: step.balance,
          replayed: false,
          entry: {
            app: APP_NAME,
            operation: step.operation,
            owner_id: owner,
            amount: step.signed,
            balance_after: step.balance,
            sequence: i + 1,
            nonce: input.nonce,
          },
        });
      }
      expect(await ownerState(app, owner)).toEqual({ balance: 35, entryCount: steps.length });
    });

    it("grants PROMO_CREDIT's 20 credits expiring 30 days after the write, and takes them away then", async () => {
      const clock = manualClock("2026-05-10T08:00:00.000Z");
      const clocked = createApp({
        db: tdb.db,
        ping: () => tdb.ping(),
        logger: silentLogger,
        clock: clock.now,
      });
      const owner = freshOwner();
      const promo = await apply(clocked, op(owner, "PROMO_CREDIT"));
      expect(promo.entry).toMatchObject({ amount: 20, expires_at: "2026-06-09T08:00:00.000Z" });
      await apply(clocked, op(owner, "CREDIT_ADD"));
      await apply(clocked, op(owner, "TOKEN_USAGE", { amount: 15 }));
      expect(await readOwner(clocked, owner)).toMatchObject({
        balance: 15,
        expiring: [{ amount: 5, expires_at: "2026-06-09T08:00:00.000Z" }],
      });
      clock.set("2026-06-09T08:00:00.000Z");
      expect(await readOwner(clocked, owner)).toMatchObject({ balance: 10, expiring: [] });
      // PROMO_CREDIT sets its own expiry: a request cannot choose one.
      await expectProblem(
        await postJson(clocked, op(owner, "PROMO_CREDIT", { expires_at: "2026-07-01T00:00:00Z" })),
        400,
        "EXPIRY_NOT_ALLOWED",
      );
    });

    it("accepts an amount equal to a fixed operation's magnitude", async () => {
      const owner = freshOwner();
      expect((await apply(app, op(owner, "REFERRAL_BONUS", { amount: 5 }))).entry.amount).toBe(5);
      expect((await apply(app, op(owner, "CREDIT_SPEND", { amount: 1 }))).entry.amount).toBe(-1);
      expect(await getBalance(app, owner)).toBe(4);
    });
  });

  describe("variable operations", () => {
    it.each([1, 2, 99_999, 100_000])("TOKEN_USAGE takes %i, within its bounds 1..100000", async (amount) => {
      const owner = await ownerWith(100_000);
      const body = await apply(app, op(owner, "TOKEN_USAGE", { amount }));
      expect(body).toMatchObject({ balance: 100_000 - amount, entry: { amount: -amount } });
    });

    it.each([1, 2, 99_999, 100_000])("USAGE_REFUND takes %i, within its bounds 1..100000", async (amount) => {
      const owner = freshOwner();
      const body = await apply(app, op(owner, "USAGE_REFUND", { amount }));
      expect(body).toMatchObject({ balance: amount, entry: { amount } });
    });

    it("refuses TOKEN_USAGE over the balance with 422 INSUFFICIENT_BALANCE, and takes exactly the balance", async () => {
      const owner = await ownerWith(250);
      const before = await snapshot(owner);
      const problem = await expectProblem(
        await postJson(app, op(owner, "TOKEN_USAGE", { amount: 251 })),
        422,
        "INSUFFICIENT_BALANCE",
      );
      expect(problem.details).toMatchObject({ owner_id: owner, balance: 250, required: 251 });
      expect(await snapshot(owner)).toEqual(before);

      expect((await apply(app, op(owner, "TOKEN_USAGE", { amount: 250 }))).balance).toBe(0);
      await expectProblem(
        await postJson(app, op(owner, "TOKEN_USAGE", { amount: 1 })),
        422,
        "INSUFFICIENT_BALANCE",
      );
    });
  });

  /**
   * app2's own bad POSTs that the hostile table (hostile.db.test.ts, built from app2's catalog: the
   * missing, zero and out-of-bounds amounts of every operation, app1's operations) does not already
   * send: amounts of a variable operation of the wrong type, built around a TOKEN_USAGE of 3.
   */
  const badPosts: readonly HostileBody[] = [
    // A variable operation's amount is checked for its type first, as a fixed one's is, whatever its bounds.
    badBody('TOKEN_USAGE amount "10" (a string)', withMembers({ amount: "10" })),
    badBody(
      "TOKEN_USAGE amount 10^9 + 1 (past the ledger's largest amount)",
      withMembers({ amount: 1e9 + 1 }),
    ),
    badBody("TOKEN_USAGE amount -1", withMembers({ amount: -1 })),
    badBody("TOKEN_USAGE amount 1.5", withMembers({ amount: 1.5 })),
    badBody("TOKEN_USAGE amount 2^53", withMembers({ amount: 2 ** 53 })),
    badBody("TOKEN_USAGE amount 1e400 (Infinity once parsed)", rawMember("amount", "1e400")),
    badBody("TOKEN_USAGE amount null", withMembers({ amount: null })),
    badBody("TOKEN_USAGE amount true", withMembers({ amount: true })),
  ];

  describe.each(named(badPosts))("POST /ledger refuses %s", (_, bad) => {
    it(`answers ${bad.status} ${bad.code} as problem+json and writes nothing`, async () => {
      const owner = await ownerWith(10);
      const before = await snapshot(owner);
      // Built around a TOKEN_USAGE of 3 that the owner can afford: accepted, it would move the balance.
      await expectProblem(
        await sendHostileBody(app, bad, op(owner, "TOKEN_USAGE", { amount: 3 })),
        bad.status,
        bad.code,
      );
      expect(before.owner).toEqual({ balance: 10, entryCount: 1 });
      expect(await snapshot(owner)).toEqual(before);
    });
  });

  describe("GET /ledger/{owner_id}/entries", () => {
    it("lists the owner's entries newest first, each with its running balance and sequence", async () => {
      const owner = freshOwner();
      const posted = [
        (await apply(app, op(owner, "USAGE_REFUND", { amount: 500 }))).entry,
        (await apply(app, op(owner, "TOKEN_USAGE", { amount: 120 }))).entry,
        (await apply(app, op(owner, "REFERRAL_BONUS"))).entry,
        (await apply(app, op(owner, "TOKEN_USAGE", { amount: 385 }))).entry,
      ];
      const page = await getEntries(app, owner);
      expect(page.next_cursor).toBeNull();
      expect(page.entries).toEqual([...posted].reverse());
      expect(page.entries.map((e) => [e.sequence, e.operation, e.amount, e.balance_after])).toEqual([
        [4, "TOKEN_USAGE", -385, 0],
        [3, "REFERRAL_BONUS", 5, 385],
        [2, "TOKEN_USAGE", -120, 380],
        [1, "USAGE_REFUND", 500, 500],
      ]);
    });
  });

  describe("idempotency", () => {
    it("replays the same nonce with the same request: the same entry, 200, replayed, nothing written", async () => {
      const owner = await ownerWith(100);
      const input = op(owner, "TOKEN_USAGE", { amount: 30 });
      const first = await apply(app, input);
      const before = await snapshot(owner);

      const again = await expectReplayed(await postJson(app, input));
      expect(again).toEqual({ ...first, replayed: true });
      expect(await snapshot(owner)).toEqual(before);
      expect(before.owner.balance).toBe(70);
    });

    describeNonceConflicts(
      { app: () => app, db: () => tdb.db },
      async () => {
        const input = op(await ownerWith(100), "TOKEN_USAGE", { amount: 30 });
        await apply(app, input);
        return input;
      },
      [
        { name: "another amount", change: () => ({ amount: 31 }), status: 409, code: "NONCE_CONFLICT" },
        conflict("another operation", () => ({ operation: "USAGE_REFUND" })),
        conflict("another owner", () => ({ owner_id: freshOwner() })),
        // The amount is checked against the operation before the nonce is looked up.
        { name: "no amount", change: () => ({ amount: undefined }), status: 400, code: "AMOUNT_REQUIRED" },
      ],
    );

    it("does not use up the nonce of a refused request", async () => {
      const owner = freshOwner();
      const nonce = freshNonce();
      await expectProblem(
        await postJson(app, op(owner, "TOKEN_USAGE", { amount: 5, nonce })),
        422,
        "INSUFFICIENT_BALANCE",
      );
      const applied = await apply(app, op(owner, "USAGE_REFUND", { amount: 5, nonce }));
      expect(applied.entry).toMatchObject({ nonce, sequence: 1, balance_after: 5 });
    });
  });

  const surface: AppSurface = {
    app: () => app,
    db: () => tdb.db,
    ping: () => tdb.ping(),
    createApp,
    name: APP_NAME,
    title: "app2 credits ledger",
    catalog: app2Catalog,
    foreignApp: "app1",
    foreignOperations: APP1_OPERATIONS,
    validPost: (owner) => op(owner, "USAGE_REFUND", { amount: 1 }),
  };
  describeAppSurface(surface);
  describeSecurity(surface);

  describe("across apps: app1 and app2 over one database", () => {
    let app1: ReturnType<typeof createApp1>;

    beforeAll(() => {
      app1 = createApp1({ db: tdb.db, ping: () => tdb.ping(), logger: silentLogger });
    });

    it("spends in app2 the credits an owner earned in app1, and each entry records the app that wrote it", async () => {
      const owner = freshOwner("shared");
      await apply(app1, op(owner, "CREDIT_ADD"));
      await apply(app1, op(owner, "SIGNUP_CREDIT"));
      expect(await getBalance(app, owner)).toBe(13);

      expect((await apply(app, op(owner, "TOKEN_USAGE", { amount: 13 }))).balance).toBe(0);
      await expectProblem(await postJson(app, op(owner, "CREDIT_SPEND")), 422, "INSUFFICIENT_BALANCE");
      expect(await getBalance(app1, owner)).toBe(0);

      const fromApp2 = await getEntries(app, owner);
      expect(
        fromApp2.entries.map((e) => [e.sequence, e.app, e.operation, e.amount, e.balance_after]),
      ).toEqual([
        [3, APP_NAME, "TOKEN_USAGE", -13, 0],
        [2, APP1_NAME, "SIGNUP_CREDIT", 3, 13],
        [1, APP1_NAME, "CREDIT_ADD", 10, 10],
      ]);
      // Both apps read the same history.
      expect(await getEntries(app1, owner)).toEqual(fromApp2);
    });

    it("spends in app1 the credits an owner got in app2", async () => {
      const owner = freshOwner("shared");
      await apply(app, op(owner, "USAGE_REFUND", { amount: 5 }));
      await expectProblem(
        await postJson(app1, op(owner, "CONTENT_CREATION", { amount: 6 })),
        400,
        "AMOUNT_MISMATCH",
      );
      const created = await apply(app1, op(owner, "CONTENT_CREATION"));
      expect(created).toMatchObject({ balance: 0, entry: { app: APP1_NAME, sequence: 2, balance_after: 0 } });
      expect(await ownerState(app, owner)).toEqual({ balance: 0, entryCount: 2 });
    });

    it("scopes nonces per app: the same nonce applies once in each app, and replays in each", async () => {
      const owner = freshOwner("shared");
      const nonce = freshNonce();
      const in1 = await apply(app1, op(owner, "CREDIT_ADD", { nonce }));
      const in2 = await apply(app, op(owner, "CREDIT_ADD", { nonce }));
      expect([in1.entry.app, in2.entry.app]).toEqual([APP1_NAME, APP_NAME]);
      expect(in2.balance).toBe(20);

      expect((await expectReplayed(await postJson(app1, op(owner, "CREDIT_ADD", { nonce })))).entry).toEqual(
        in1.entry,
      );
      expect((await expectReplayed(await postJson(app, op(owner, "CREDIT_ADD", { nonce })))).entry).toEqual(
        in2.entry,
      );
      expect(await ownerState(app1, owner)).toEqual({ balance: 20, entryCount: 2 });
    });

    it("counts an owner's once-per-owner SIGNUP_CREDIT across apps: the owner is shared, so is the limit", async () => {
      const owner = freshOwner("shared");
      await apply(app1, op(owner, "SIGNUP_CREDIT"));
      const before = await snapshot(owner);
      await expectProblem(await postJson(app, op(owner, "SIGNUP_CREDIT")), 422, "LIMIT_REACHED");
      expect(await snapshot(owner)).toEqual(before);
    });

    it("keeps each app to its own operations for a shared owner", async () => {
      const owner = freshOwner("shared");
      await apply(app, op(owner, "USAGE_REFUND", { amount: 50 }));
      const before = await snapshot(owner);
      await expectProblem(
        await postJson(app1, op(owner, "TOKEN_USAGE", { amount: 1 })),
        400,
        "UNKNOWN_OPERATION",
      );
      await expectProblem(await postJson(app, op(owner, "CONTENT_CREATION")), 400, "UNKNOWN_OPERATION");
      expect(await snapshot(owner)).toEqual(before);
    });
  });
});
