// Concurrency and locking, on real Postgres only (PGlite has a single connection). Two separate
// connection pools stand in for two app processes.
import { sql } from "drizzle-orm";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase, queryRows, type LedgerDatabase } from "../src/store/index.js";
import { LedgerService, type PostResult } from "../src/index.js";
import {
  expectLedgerInvariants,
  freshNonce,
  freshOwner,
  openTestDatabase,
  testDatabaseUrl,
  createDatabase,
  dropDatabase,
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

type Outcome = { ok: true; result: PostResult } | { ok: false; code: string };

async function attempt(p: Promise<PostResult>): Promise<Outcome> {
  try {
    return { ok: true, result: await p };
  } catch (error) {
    return { ok: false, code: (error as { code?: string }).code ?? String(error) };
  }
}

const serviceFor = (i: number) => (i % 2 === 0 ? a : b);

describe("concurrency on real Postgres, two pools", () => {
  it("commits a lone request at once, in a batch of its own: group commit never waits for company", async () => {
    const alone = new LedgerService({ db: tdb.db, app: "app-a", catalog: testCatalog });
    await alone.post({ owner_id: freshOwner(), operation: "CREDIT_ADD", nonce: freshNonce() });
    await alone.post({ owner_id: freshOwner(), operation: "CREDIT_ADD", nonce: freshNonce() });
    expect(alone.batchStats()).toEqual({ batches: 2, operations: 2, largestBatch: 1 });
  });

  it("answers a replay without the owner's lock: a held lock does not delay it", async () => {
    const owner = freshOwner();
    const nonce = freshNonce();
    const first = await a.post({ owner_id: owner, operation: "CREDIT_ADD", nonce });
    if (!tdb.url) throw new Error("the postgres test database has a URL");
    const holder = postgres(tdb.url, { max: 1, onnotice: () => {} });
    try {
      await holder.begin(async (tx) => {
        await tx`select 1 from ledger_balances where owner_id = ${owner} for update`;
        const quick = new LedgerService({
          db: tdb.db,
          app: "app-a",
          catalog: testCatalog,
          operationTimeoutMs: 2_000,
        });
        expect(await quick.post({ owner_id: owner, operation: "CREDIT_ADD", nonce })).toEqual({
          ...first,
          replayed: true,
        });
        // A new write for that owner must wait for the lock, and gives up at its deadline.
        await expect(
          quick.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce() }),
        ).rejects.toMatchObject({ code: "DATABASE_UNAVAILABLE" });
      });
    } finally {
      await holder.end();
    }
  });

  it("with batching off (batchSizeMax 1), writes one transaction per request, with the same answers", async () => {
    const single = new LedgerService({ db: tdb.db, app: "app-a", catalog: testCatalog, batchSizeMax: 1 });
    const owner = freshOwner();
    await single.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce() });
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, () =>
        attempt(single.post({ owner_id: owner, operation: "CREDIT_SPEND", nonce: freshNonce() })),
      ),
    );
    expect(outcomes.filter((o) => o.ok)).toHaveLength(10);
    expect(single.batchStats()).toEqual({ batches: 21, operations: 21, largestBatch: 1 });
  });

  it("100 concurrent CREDIT_SPEND against a balance of 40: exactly 40 succeed, balance 0", async () => {
    const owner = freshOwner();
    for (let i = 0; i < 4; i++)
      await a.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce() });
    expect((await a.balance(owner)).balance).toBe(40);

    const outcomes = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        attempt(serviceFor(i).post({ owner_id: owner, operation: "CREDIT_SPEND", nonce: freshNonce() })),
      ),
    );
    const ok = outcomes.filter((o) => o.ok);
    const refused = outcomes.filter((o): o is { ok: false; code: string } => !o.ok);
    expect(ok).toHaveLength(40);
    expect(refused.map((o) => o.code)).toEqual(Array(60).fill("INSUFFICIENT_BALANCE"));
    expect((await b.balance(owner)).balance).toBe(0);
    // Group commit gathered the concurrent requests: fewer transactions than requests, in both pools.
    for (const service of [a, b]) {
      const stats = service.batchStats();
      expect(stats.batches).toBeLessThan(stats.operations);
      expect(stats.largestBatch).toBeGreaterThan(1);
    }
    // Every success saw a distinct running balance: 39, 38, ..., 0.
    const after = ok.map((o) => (o.ok ? o.result.balance : -1)).sort((x, y) => x - y);
    expect(after).toEqual(Array.from({ length: 40 }, (_, i) => i));
    const page = await a.entries({ owner_id: owner, limit: 200 });
    expect(page.entries).toHaveLength(44);
    expect(page.entries.map((e) => e.sequence)).toEqual(Array.from({ length: 44 }, (_, i) => 44 - i));
  });

  it("one nonce sent 20 times at once: one entry, 20 identical answers", async () => {
    const owner = freshOwner();
    const nonce = freshNonce();
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        attempt(serviceFor(i).post({ owner_id: owner, operation: "CREDIT_ADD", nonce })),
      ),
    );
    const results = outcomes.map((o) => (o.ok ? o.result : undefined));
    expect(results.every(Boolean)).toBe(true);
    const answers = results.map((r) => (r ? { entry: r.entry, balance: r.balance } : undefined));
    expect(new Set(answers.map((x) => JSON.stringify(x))).size).toBe(1);
    expect(results.filter((r) => r && !r.replayed)).toHaveLength(1);
    expect((await a.entries({ owner_id: owner })).entries).toHaveLength(1);
    expect((await a.balance(owner)).balance).toBe(10);
  });

  it("one nonce sent at once for 10 different owners: one entry, 9 NONCE_CONFLICT", async () => {
    const nonce = freshNonce();
    const owners = Array.from({ length: 10 }, () => freshOwner());
    const outcomes = await Promise.all(
      owners.map((owner, i) =>
        attempt(serviceFor(i).post({ owner_id: owner, operation: "CREDIT_ADD", nonce })),
      ),
    );
    expect(outcomes.filter((o) => o.ok)).toHaveLength(1);
    expect(outcomes.filter((o) => !o.ok).map((o) => (o.ok ? "" : o.code))).toEqual(
      Array(9).fill("NONCE_CONFLICT"),
    );
    const balances = await Promise.all(owners.map((o) => a.balance(o)));
    expect(balances.map((x) => x.balance).sort((x, y) => y - x)).toEqual([10, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it("20 concurrent SIGNUP_CREDIT for one owner with different nonces: exactly one succeeds", async () => {
    const owner = freshOwner();
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        attempt(serviceFor(i).post({ owner_id: owner, operation: "SIGNUP_CREDIT", nonce: freshNonce() })),
      ),
    );
    expect(outcomes.filter((o) => o.ok)).toHaveLength(1);
    expect(outcomes.filter((o) => !o.ok).map((o) => (o.ok ? "" : o.code))).toEqual(
      Array(19).fill("LIMIT_REACHED"),
    );
    expect((await a.balance(owner)).balance).toBe(3);
  });

  it("writes for many owners at once from both pools all land, each balance exact", async () => {
    const owners = Array.from({ length: 25 }, () => freshOwner());
    await Promise.all(
      owners.flatMap((owner, i) =>
        Array.from({ length: 4 }, (_, k) =>
          serviceFor(i + k).post({
            owner_id: owner,
            operation: "TEST_CREDIT",
            amount: k + 1,
            nonce: freshNonce(),
          }),
        ),
      ),
    );
    const balances = await Promise.all(owners.map((o) => b.balance(o)));
    expect(balances.every((x) => x.balance === 10)).toBe(true);
  });
});

describe("start-up on real Postgres", () => {
  it("several processes migrating one new database at once all succeed, and the schema is applied once", async () => {
    const { name, url } = await createDatabase(testDatabaseUrl(), "ledger_test_migrate");
    try {
      const opened = await Promise.all(
        Array.from({ length: 4 }, () => openDatabase({ url, poolSizeMax: 1 })),
      );
      const first = opened[0];
      if (!first) throw new Error("no database opened");
      const rows = await queryRows(
        first.db,
        sql`select count(*)::int as n from drizzle.__drizzle_migrations`,
      );
      expect(rows).toEqual([{ n: 2 }]);
      await Promise.all(opened.map((d) => d.close()));
    } finally {
      await dropDatabase(testDatabaseUrl(), name);
    }
  });
});
