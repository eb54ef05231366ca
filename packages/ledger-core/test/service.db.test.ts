// The service suite: runs once on PGlite and once on real Postgres (see the vitest preset).
import { beforeAll, describe, expect, it } from "vitest";
import { seedBalanceIn } from "../src/testing/moves.js";
import { LedgerService, type LedgerErrorCode } from "../src/index.js";
import {
  freshNonce,
  expectedBalance,
  freshOwner,
  openTestDatabase,
  testDriver,
  useTestDatabase,
} from "../src/testing/index.js";
import { manualClock } from "../src/testing/deps.js";
import { testCatalog } from "./fixtures.js";

const tdb = useTestDatabase();
const clock = manualClock("2026-03-01T10:00:00Z");
let ledger: LedgerService;
let otherApp: LedgerService;

beforeAll(() => {
  ledger = new LedgerService({ db: tdb().db, app: "app-a", catalog: testCatalog, clock: clock.now });
  otherApp = new LedgerService({ db: tdb().db, app: "app-b", catalog: testCatalog, clock: clock.now });
});

async function post(
  owner: string,
  operation: string,
  amount?: number,
  nonce = freshNonce(),
  service = ledger,
) {
  return service.post({ owner_id: owner, operation, nonce, ...(amount === undefined ? {} : { amount }) });
}

async function expectCode(promise: Promise<unknown>, code: LedgerErrorCode) {
  await expect(promise).rejects.toMatchObject({ code });
}

describe(`ledger service [${testDriver()}]`, () => {
  it("applies a sequence of operations and reports the running balance of each", async () => {
    const owner = freshOwner();
    const results = [];
    for (const op of ["SIGNUP_CREDIT", "CREDIT_ADD", "CREDIT_SPEND", "CREDIT_SPEND", "DAILY_REWARD"]) {
      results.push(await post(owner, op));
    }
    expect(results.map((r) => r.balance)).toEqual([3, 13, 12, 11, 12]);
    expect(results.map((r) => r.entry.amount)).toEqual([3, 10, -1, -1, 1]);
    expect(results.map((r) => r.entry.sequence)).toEqual([1, 2, 3, 4, 5]);
    expect(results.every((r) => !r.replayed && r.entry.app === "app-a")).toBe(true);
    expect(await ledger.balance(owner)).toEqual(expectedBalance(owner, 12));
  });

  it("reports 0 for an owner with no entries", async () => {
    expect(await ledger.balance(freshOwner())).toMatchObject({ balance: 0 });
  });

  it("accepts the fixed amount when the request states it, and refuses any other", async () => {
    const owner = freshOwner();
    expect((await post(owner, "CREDIT_ADD", 10)).balance).toBe(10);
    await expectCode(post(owner, "CREDIT_ADD", 11), "AMOUNT_MISMATCH");
    await expectCode(post(owner, "CREDIT_SPEND", 2), "AMOUNT_MISMATCH");
    expect((await post(owner, "CREDIT_SPEND", 1)).balance).toBe(9);
  });

  it("replays the same nonce with the same request: the original answer, nothing written", async () => {
    const owner = freshOwner();
    const nonce = freshNonce();
    const first = await post(owner, "CREDIT_ADD", undefined, nonce);
    await post(owner, "CREDIT_SPEND");
    const again = await post(owner, "CREDIT_ADD", 10, nonce);
    expect(again.replayed).toBe(true);
    expect(again.entry).toEqual(first.entry);
    expect(again.balance).toBe(first.balance);
    expect((await ledger.balance(owner)).balance).toBe(9);
    expect((await ledger.entries({ owner_id: owner })).entries).toHaveLength(2);
  });

  it("refuses the same nonce with a different request (NONCE_CONFLICT) and writes nothing", async () => {
    const owner = freshOwner();
    const nonce = freshNonce();
    await post(owner, "CREDIT_ADD", undefined, nonce);
    await expectCode(post(owner, "SIGNUP_CREDIT", undefined, nonce), "NONCE_CONFLICT");
    await expectCode(post(freshOwner(), "CREDIT_ADD", undefined, nonce), "NONCE_CONFLICT");
    await expectCode(post(owner, "TEST_CREDIT", 10, nonce), "NONCE_CONFLICT");
    expect((await ledger.balance(owner)).balance).toBe(10);
  });

  it("scopes nonces per app: another app may use the same nonce", async () => {
    const owner = freshOwner();
    const nonce = freshNonce();
    await post(owner, "CREDIT_ADD", undefined, nonce, ledger);
    const other = await post(owner, "CREDIT_ADD", undefined, nonce, otherApp);
    expect(other.replayed).toBe(false);
    expect(other.entry.app).toBe("app-b");
    expect(other.balance).toBe(20);
  });

  it("refuses a debit beyond the balance and writes nothing; the nonce stays usable", async () => {
    const owner = freshOwner();
    const nonce = freshNonce();
    await expectCode(post(owner, "CREDIT_SPEND", undefined, nonce), "INSUFFICIENT_BALANCE");
    expect((await ledger.entries({ owner_id: owner })).entries).toEqual([]);
    await post(owner, "SIGNUP_CREDIT");
    await expectCode(post(owner, "TEST_DEBIT", 4), "INSUFFICIENT_BALANCE");
    expect((await post(owner, "TEST_DEBIT", 3)).balance).toBe(0);
    await expectCode(post(owner, "CREDIT_SPEND", undefined, nonce), "INSUFFICIENT_BALANCE");
    await post(owner, "CREDIT_ADD");
    expect((await post(owner, "CREDIT_SPEND", undefined, nonce)).balance).toBe(9);
  });

  it("limits SIGNUP_CREDIT to once per owner, across apps", async () => {
    const owner = freshOwner();
    await post(owner, "SIGNUP_CREDIT");
    await expectCode(post(owner, "SIGNUP_CREDIT"), "LIMIT_REACHED");
    await expectCode(post(owner, "SIGNUP_CREDIT", undefined, freshNonce(), otherApp), "LIMIT_REACHED");
    expect((await ledger.balance(owner)).balance).toBe(3);
    // Each limited operation counts on its own.
    expect((await post(owner, "TEST_WELCOME")).balance).toBe(10);
    await expectCode(post(owner, "TEST_WELCOME"), "LIMIT_REACHED");
    // Another owner is not affected.
    expect((await post(freshOwner(), "SIGNUP_CREDIT")).balance).toBe(3);
  });

  it("limits DAILY_REWARD to once per owner per UTC day, by the injected clock", async () => {
    const owner = freshOwner();
    try {
      clock.set("2026-03-01T00:00:00Z");
      await post(owner, "DAILY_REWARD");
      clock.set("2026-03-01T23:59:59.999Z");
      await expectCode(post(owner, "DAILY_REWARD"), "LIMIT_REACHED");
      clock.set("2026-03-02T00:00:00Z");
      const next = await post(owner, "DAILY_REWARD");
      expect(next.balance).toBe(2);
      expect(next.entry.created_at).toBe("2026-03-02T00:00:00.000Z");
      await expectCode(post(owner, "DAILY_REWARD"), "LIMIT_REACHED");
    } finally {
      // The clock is shared by the file's other tests.
      clock.set("2026-03-01T10:00:00Z");
    }
  });

  it("counts a daily limit on the day the entry is written when midnight passes while it waits for its lock", async () => {
    // The limits are read with the lock, for the clock before it; the entry takes the clock after it.
    // This clock reads 23:59:59.900 before every lock and 00:00:00.100 the next day after it.
    let calls = 0;
    const midnight = () =>
      new Date(calls++ % 2 === 0 ? "2026-04-01T23:59:59.900Z" : "2026-04-02T00:00:00.100Z");
    const crossing = new LedgerService({ db: tdb().db, app: "app-a", catalog: testCatalog, clock: midnight });
    const dayAfter = new LedgerService({
      db: tdb().db,
      app: "app-a",
      catalog: testCatalog,
      clock: () => new Date("2026-04-02T00:00:00.050Z"),
    });

    const fresh = freshOwner();
    const first = await post(fresh, "DAILY_REWARD", undefined, freshNonce(), crossing);
    expect(first.entry.created_at).toBe("2026-04-02T00:00:00.100Z");
    await expectCode(post(fresh, "DAILY_REWARD", undefined, freshNonce(), crossing), "LIMIT_REACHED");

    const rewarded = freshOwner();
    await post(rewarded, "DAILY_REWARD", undefined, freshNonce(), dayAfter);
    await expectCode(post(rewarded, "DAILY_REWARD", undefined, freshNonce(), crossing), "LIMIT_REACHED");
    expect((await ledger.balance(rewarded)).balance).toBe(1);
  });

  it("a replay of a limited operation is a replay, not LIMIT_REACHED", async () => {
    const owner = freshOwner();
    const nonce = freshNonce();
    const first = await post(owner, "DAILY_REWARD", undefined, nonce);
    const again = await post(owner, "DAILY_REWARD", undefined, nonce);
    expect(again).toEqual({ ...first, replayed: true });
  });

  it("records zero-amount operations as events without moving credits", async () => {
    const owner = freshOwner();
    const zero = await post(owner, "TEST_ZERO");
    expect(zero.entry.amount).toBe(0);
    expect(zero.balance).toBe(0);
    await post(owner, "CREDIT_ADD");
    expect((await post(owner, "TEST_ZERO", 0)).balance).toBe(10);
    await expectCode(post(owner, "TEST_ZERO", 1), "AMOUNT_MISMATCH");
    expect((await ledger.entries({ owner_id: owner })).entries.map((e) => e.operation)).toEqual([
      "TEST_ZERO",
      "CREDIT_ADD",
      "TEST_ZERO",
    ]);
  });

  it("keeps variable amounts within their bounds and requires them", async () => {
    const owner = freshOwner();
    await post(owner, "TEST_CREDIT", 100);
    await expectCode(post(owner, "TEST_DEBIT"), "AMOUNT_REQUIRED");
    await expectCode(post(owner, "TEST_DEBIT", 1), "AMOUNT_OUT_OF_RANGE");
    await expectCode(post(owner, "TEST_DEBIT", 51), "AMOUNT_OUT_OF_RANGE");
    await expectCode(post(owner, "TEST_CREDIT", 0), "AMOUNT_OUT_OF_RANGE");
    expect((await post(owner, "TEST_DEBIT", 2)).balance).toBe(98);
    expect((await post(owner, "TEST_DEBIT", 50)).entry.amount).toBe(-50);
    expect((await ledger.balance(owner)).balance).toBe(48);
  });

  it("refuses a credit that would take a balance past 2^53-1, and allows reaching it exactly", async () => {
    const owner = freshOwner();
    // Nine million requests would be needed through the API; the store writes one balanced entry
    // (its postings and the projection included) that brings the owner within reach instead.
    const start = Number.MAX_SAFE_INTEGER - 15;
    await seedBalanceIn(tdb().db, owner, start, clock.now());
    await expectCode(post(owner, "TEST_CREDIT", 16), "BALANCE_LIMIT_EXCEEDED");
    expect((await post(owner, "TEST_CREDIT", 15)).balance).toBe(Number.MAX_SAFE_INTEGER);
    await expectCode(post(owner, "CREDIT_ADD"), "BALANCE_LIMIT_EXCEEDED");
    expect((await post(owner, "CREDIT_SPEND")).balance).toBe(Number.MAX_SAFE_INTEGER - 1);
    await expectCode(post(owner, "TEST_CREDIT", 1_000_000_001), "VALIDATION_FAILED");
  });

  it("refuses unknown operations and malformed input with stable codes, writing nothing", async () => {
    const owner = freshOwner();
    await expectCode(post(owner, "NOPE"), "UNKNOWN_OPERATION");
    await expectCode(ledger.post({ owner_id: owner, operation: "CREDIT_ADD" }), "VALIDATION_FAILED");
    await expectCode(ledger.post({ owner_id: "", operation: "CREDIT_ADD", nonce: "x" }), "VALIDATION_FAILED");
    await expectCode(
      ledger.post({ owner_id: "a/b", operation: "CREDIT_ADD", nonce: "x" }),
      "VALIDATION_FAILED",
    );
    await expectCode(
      ledger.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: "x", amount: 1.5 }),
      "VALIDATION_FAILED",
    );
    await expectCode(
      ledger.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: "x", amount: -10 }),
      "VALIDATION_FAILED",
    );
    await expectCode(
      ledger.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: "x", extra: 1 }),
      "VALIDATION_FAILED",
    );
    await expectCode(ledger.post(null), "VALIDATION_FAILED");
    expect((await ledger.balance(owner)).balance).toBe(0);
  });

  it("sweeps every app's due grants: app-b's sweeper expires app-a's, under app-a", async () => {
    clock.set("2026-04-01T00:00:00Z");
    try {
      const owner = freshOwner();
      await ledger.post({
        owner_id: owner,
        operation: "CREDIT_ADD",
        nonce: freshNonce(),
        expires_at: "2026-04-01T01:00:00Z",
      });
      clock.set("2026-04-01T01:00:00Z");
      const report = await otherApp.sweepExpired();
      expect(report.grants).toBeGreaterThanOrEqual(1);
      const [expiry] = (await ledger.entries({ owner_id: owner })).entries;
      expect(expiry).toMatchObject({ app: "app-a", operation: "EXPIRY", amount: -10, balance_after: 0 });
      expect(await otherApp.sweepExpired()).toEqual({ owners: 0, grants: 0 });
    } finally {
      clock.set("2026-03-01T10:00:00Z");
    }
  });

  it("lists an owner's entries newest first, in pages joined by a cursor", async () => {
    const owner = freshOwner();
    for (let i = 0; i < 7; i++) await post(owner, "CREDIT_ADD");
    const seen: number[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await ledger.entries({ owner_id: owner, cursor, limit: 3 });
      seen.push(...page.entries.map((e) => e.sequence));
      expect(page.entries.every((e) => e.balance_after === e.sequence * 10)).toBe(true);
      cursor = page.next_cursor ?? undefined;
      pages += 1;
    } while (cursor);
    expect(seen).toEqual([7, 6, 5, 4, 3, 2, 1]);
    expect(pages).toBe(3);
    await expectCode(ledger.entries({ owner_id: owner, cursor: "bogus" }), "INVALID_CURSOR");
    await expectCode(ledger.entries({ owner_id: owner, limit: 0 }), "VALIDATION_FAILED");
    await expectCode(ledger.entries({ owner_id: owner, limit: 201 }), "VALIDATION_FAILED");
  });

  it("answers DATABASE_UNAVAILABLE, never a bare error, when its database is gone", async () => {
    const gone = await openTestDatabase();
    const service = new LedgerService({ db: gone.db, app: "app-a", catalog: testCatalog });
    await gone.close();
    await expectCode(
      post(freshOwner(), "CREDIT_ADD", undefined, freshNonce(), service),
      "DATABASE_UNAVAILABLE",
    );
    await expectCode(service.balance(freshOwner()), "DATABASE_UNAVAILABLE");
    await expectCode(service.entries({ owner_id: freshOwner() }), "DATABASE_UNAVAILABLE");
    await expect(gone.ping()).rejects.toMatchObject({ code: "DATABASE_UNAVAILABLE" });
  });
});
