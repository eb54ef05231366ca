// Reversals and transfers under concurrency, on real Postgres only (PGlite has one connection). Two
// separate connection pools stand in for two app processes, each with its own group commit.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase, type LedgerDatabase } from "../src/store/index.js";
import { LedgerService } from "../src/index.js";
import { reverseEntry } from "../src/features/reversals/command.js";
import { transferCredits } from "../src/features/transfers/command.js";
import {
  expectLedgerInvariants,
  freshNonce,
  freshOwner,
  openTestDatabase,
  type TestDatabase,
} from "../src/testing/index.js";
import { testCatalog } from "./fixtures.js";

let tdb: TestDatabase;
let second: LedgerDatabase;
let a: LedgerService;
let b: LedgerService;

beforeAll(async () => {
  tdb = await openTestDatabase("postgres", { poolSizeMax: 10 });
  if (!tdb.url) throw new Error("postgres test database has a URL");
  second = await openDatabase({ url: tdb.url, poolSizeMax: 10 });
  a = new LedgerService({ db: tdb.db, app: "app-a", catalog: testCatalog });
  b = new LedgerService({ db: second.db, app: "app-a", catalog: testCatalog });
});

afterAll(async () => {
  await expectLedgerInvariants(tdb);
  await second.close();
  await tdb.close();
});

type Outcome<T> = { ok: true; value: T } | { ok: false; code: string };

async function attempt<T>(p: Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await p };
  } catch (error) {
    return { ok: false, code: (error as { code?: string }).code ?? String(error) };
  }
}

const serviceFor = (i: number) => (i % 2 === 0 ? a : b);

describe("reversals and transfers on real Postgres, two pools", () => {
  it("20 concurrent full reversals of one entry apply once: one reversal, the rest ALREADY_REVERSED", async () => {
    const owner = freshOwner();
    await a.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce() });
    const spend = await a.post({ owner_id: owner, operation: "TEST_DEBIT", amount: 7, nonce: freshNonce() });
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        attempt(reverseEntry(serviceFor(i), spend.entry.id, { nonce: freshNonce() })),
      ),
    );
    const ok = outcomes.filter((o) => o.ok);
    expect(ok).toHaveLength(1);
    expect(outcomes.filter((o) => !o.ok).map((o) => (o.ok ? "" : o.code))).toEqual(
      Array(19).fill("ALREADY_REVERSED"),
    );
    expect((await b.balance(owner)).balance).toBe(10);
    const { entries } = await a.entries({ owner_id: owner });
    expect(entries.filter((e) => e.operation === "REVERSAL")).toHaveLength(1);
    expect(entries.find((e) => e.id === spend.entry.id)?.reversed_amount).toBe(7);
  });

  it("20 concurrent partial reversals of one entry never exceed it", async () => {
    const owner = freshOwner();
    const credit = await a.post({
      owner_id: owner,
      operation: "TEST_CREDIT",
      amount: 12,
      nonce: freshNonce(),
    });
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        attempt(reverseEntry(serviceFor(i), credit.entry.id, { nonce: freshNonce(), amount: 1 + (i % 3) })),
      ),
    );
    const reversed = outcomes.reduce((sum, o) => sum + (o.ok ? -o.value.entry.amount : 0), 0);
    const codes = new Set(outcomes.flatMap((o) => (o.ok ? [] : [o.code])));
    for (const code of codes) expect(["ALREADY_REVERSED", "REVERSAL_EXCEEDS_ORIGINAL"]).toContain(code);
    // Amounts of 1..3 against 12: whatever the order, the last ones cannot fit, and the total is never over.
    expect(reversed).toBeLessThanOrEqual(12);
    expect(reversed).toBeGreaterThanOrEqual(10);
    const { entries } = await b.entries({ owner_id: owner });
    expect(entries.find((e) => e.id === credit.entry.id)?.reversed_amount).toBe(reversed);
    expect((await a.balance(owner)).balance).toBe(12 - reversed);
    // Each success said how much was reversed by then: every total from its own amount up, once.
    const totals = outcomes
      .flatMap((o) => (o.ok ? [o.value.original.reversed_amount] : []))
      .sort((x, y) => x - y);
    expect(new Set(totals).size).toBe(totals.length);
    expect(totals.at(-1)).toBe(reversed);
  });

  it("200 crossing transfers between two owners from two pools conserve the total, with no deadlock and no 5xx", async () => {
    const x = freshOwner("x");
    const y = freshOwner("y");
    for (const owner of [x, y]) {
      await a.post({ owner_id: owner, operation: "TEST_CREDIT", amount: 100, nonce: freshNonce() });
      await a.post({
        owner_id: owner,
        operation: "CREDIT_ADD",
        nonce: freshNonce(),
        expires_at: new Date(Date.now() + 86_400_000).toISOString(),
      });
    }
    const outcomes = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        attempt(
          transferCredits(serviceFor(i >> 1), {
            from_owner_id: i % 2 === 0 ? x : y,
            to_owner_id: i % 2 === 0 ? y : x,
            amount: 1 + (i % 7),
            nonce: freshNonce(),
          }),
        ),
      ),
    );
    const refused = outcomes.flatMap((o) => (o.ok ? [] : [o.code]));
    for (const code of refused) expect(code).toBe("INSUFFICIENT_BALANCE");
    expect(outcomes.filter((o) => o.ok).length).toBeGreaterThan(150);
    const [bx, by] = [await a.balance(x), await b.balance(y)];
    expect(bx.balance + by.balance).toBe(220);
    const expiring = [...bx.expiring, ...by.expiring].reduce((sum, e) => sum + e.amount, 0);
    expect(expiring).toBe(20);
    // Every transfer wrote both sides or neither.
    const outs = (await a.entries({ owner_id: x, limit: 200, operation: "TRANSFER_OUT" })).entries.length;
    const ins = (await a.entries({ owner_id: y, limit: 200, operation: "TRANSFER_IN" })).entries.length;
    expect(outs).toBe(ins);
    // Group commit gathered the concurrent transfers into shared batches in both pools.
    for (const service of [a, b]) expect(service.batchStats().largestBatch).toBeGreaterThan(1);
  });
});
