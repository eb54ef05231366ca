// Concurrency and locking, on real Postgres only (PGlite has a single connection). Two separate
// connection pools stand in for two app processes.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MIGRATIONS_FOLDER, openDatabase, queryRows, type LedgerDatabase } from "../src/store/index.js";
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
        await tx`select 1 from ledger_owners where owner_id = ${owner} for update`;
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

  it("100 concurrent debits across two pools against three grants: exact successes, each remainder exact", async () => {
    const owner = freshOwner();
    const day = 86_400_000;
    // Three grants of 10, expiring in 3, 1 and 2 days: burn order is the 1-day one, then 2, then 3.
    for (const days of [3, 1, 2]) {
      const expires_at = new Date(Date.now() + days * day).toISOString();
      await a.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce(), expires_at });
    }
    const amounts = Array.from({ length: 100 }, (_, i) => 2 + ((i * 7) % 4));
    const outcomes = await Promise.all(
      amounts.map((amount, i) =>
        attempt(
          serviceFor(i).post({ owner_id: owner, operation: "TEST_DEBIT", amount, nonce: freshNonce() }),
        ),
      ),
    );
    const spent = outcomes.reduce((sum, o, i) => sum + (o.ok ? (amounts[i] ?? 0) : 0), 0);
    const refusedAmounts = outcomes.flatMap((o, i) => (o.ok ? [] : [amounts[i] ?? 0]));
    expect(new Set(outcomes.flatMap((o) => (o.ok ? [] : [o.code])))).toEqual(
      new Set(["INSUFFICIENT_BALANCE"]),
    );
    const left = (await b.balance(owner)).balance;
    expect(spent + left).toBe(30);
    // A refusal means the balance was below that amount then; balances only went down since.
    expect(left).toBeLessThan(Math.min(...refusedAmounts));
    // Whatever order they came in, burn order spends the soonest grant first: the remainders follow.
    const expected = [1, 2, 3].map((days, i) => ({
      days,
      remaining: Math.min(10, Math.max(0, 30 - spent - (2 - i) * 10)),
    }));
    const rows = await queryRows<{ remaining: string; sequence: string }>(
      tdb.db,
      sql`select remaining::text as remaining, sequence::text as sequence from ledger_grants
          where owner_id = ${owner} order by expires_at`,
    );
    expect(rows.map((r) => Number(r.remaining))).toEqual(expected.map((e) => e.remaining));
    expect(rows.map((r) => Number(r.sequence))).toEqual([2, 3, 1]);
    const allocated = await queryRows<{ total: string }>(
      tdb.db,
      sql`select coalesce(sum(amount), 0)::text as total from ledger_allocations where owner_id = ${owner}`,
    );
    expect(allocated).toEqual([{ total: String(spent) }]);
  });

  it("two sweepers racing on 1,000 due grants, one per pool, expire each exactly once", async () => {
    const app = `sweep-${freshNonce().slice(2, 10)}`;
    const writer = new LedgerService({ db: tdb.db, app, catalog: testCatalog });
    const owners = Array.from({ length: 500 }, () => freshOwner("sweep"));
    const expires_at = new Date(Date.now() + 3_600_000).toISOString();
    const later = new Date(Date.now() + 2 * 3_600_000).toISOString();
    await Promise.all(
      owners.flatMap((owner) => [
        writer.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce(), expires_at }),
        writer.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce(), expires_at: later }),
      ]),
    );
    // Both grants of every owner are due three hours from now, as both sweepers' clocks say.
    const clock = () => new Date(Date.now() + 3 * 3_600_000);
    const sweepers = [tdb, second].map(
      (d) => new LedgerService({ db: d.db, app, catalog: testCatalog, clock }),
    );
    const reports = await Promise.all(sweepers.map((s) => s.sweepExpired()));
    expect(reports.reduce((sum, r) => sum + r.grants, 0)).toBe(1_000);
    const expiries = await queryRows<{ n: number; owners: number }>(
      tdb.db,
      sql`select count(*)::int as n, count(distinct owner_id)::int as owners from ledger_entries
          where app = ${app} and operation = 'EXPIRY'`,
    );
    expect(expiries).toEqual([{ n: 1_000, owners: 500 }]);
    const open = await queryRows<{ n: number }>(
      tdb.db,
      sql`select count(*)::int as n from ledger_grants where app = ${app} and (remaining > 0 or expired_sequence is null)`,
    );
    expect(open).toEqual([{ n: 0 }]);
    for (const owner of owners.slice(0, 5)) expect((await sweepers[0]?.balance(owner))?.balance).toBe(0);
    // Nothing is left to expire: a third sweep finds nothing.
    expect(await sweepers[1]?.sweepExpired()).toEqual({ owners: 0, grants: 0 });
  });

  it("a balance read while grants expire counts each remainder exactly once: one snapshot per read", async () => {
    // 150 owners, each with 10 credits that never expire and 10 that expire at its own instant, 5 ms
    // apart. Around those instants, writes for the owners (which expire the grant first) and sweeps
    // run in both pools, while readers poll the owners whose instant is now. A read must answer 20
    // when its clock says the grant has not expired and 10 once it has, whatever committed meanwhile.
    const owners = Array.from({ length: 150 }, () => freshOwner("race"));
    const start = Date.now() + 1_500;
    const expiry = (i: number) => start + i * 5;
    await Promise.all(
      owners.flatMap((owner, i) => [
        a.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce() }),
        a.post({
          owner_id: owner,
          operation: "CREDIT_ADD",
          nonce: freshNonce(),
          expires_at: new Date(expiry(i)).toISOString(),
        }),
      ]),
    );
    const end = expiry(owners.length) + 200;
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    const writers = owners.map(async (owner, i) => {
      await sleep(Math.max(0, expiry(i) - Date.now()));
      await serviceFor(i).post({ owner_id: owner, operation: "TEST_ZERO", nonce: freshNonce() });
    });
    const sweeps = (async () => {
      while (Date.now() < end) {
        await Promise.all([a.sweepExpired(), b.sweepExpired()]);
        await sleep(3);
      }
    })();
    let reads = 0;
    const wrong: string[] = [];
    const readers = Array.from({ length: 8 }, async (_, r) => {
      // Each reader's service records the instant its balance read judged expiry by.
      let judged = 0;
      const reader = new LedgerService({
        db: r % 2 === 0 ? tdb.db : second.db,
        app: "app-a",
        catalog: testCatalog,
        clock: () => {
          const now = new Date();
          judged = now.getTime();
          return now;
        },
      });
      while (Date.now() < end) {
        const i = Math.min(
          owners.length - 1,
          Math.max(0, Math.floor((Date.now() - start) / 5) + (r % 3) - 1),
        );
        const owner = owners[i] ?? "";
        const { balance } = await reader.balance(owner);
        reads += 1;
        const expected = judged >= expiry(i) ? 10 : 20;
        if (balance !== expected) wrong.push(`${owner}: ${balance}, expected ${expected}`);
      }
    });
    await Promise.all([...writers, sweeps, ...readers]);
    expect(wrong).toEqual([]);
    expect(reads).toBeGreaterThan(500);
    for (const owner of owners.slice(0, 10)) expect((await a.balance(owner)).balance).toBe(10);
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

  it("a batch that loses one nonce at the unique key answers it as a conflict and still applies the rest", async () => {
    const blocker = freshOwner();
    const held = freshOwner();
    const others = Array.from({ length: 34 }, () => freshOwner());
    const nonce = freshNonce();
    const service = new LedgerService({ db: tdb.db, app: "app-a", catalog: testCatalog });
    for (const o of [blocker, held])
      await service.post({ owner_id: o, operation: "CREDIT_ADD", nonce: freshNonce() });
    if (!tdb.url) throw new Error("the postgres test database has a URL");
    const holder = postgres(tdb.url, { max: 1, onnotice: () => {} });
    let outcomes: Promise<Outcome[]> | undefined;
    try {
      await holder.begin(async (tx) => {
        await tx`select 1 from ledger_owners where owner_id in (${blocker}, ${held}) order by owner_id for update`;
        // A first batch waits for blocker's lock; 35 more writes queue behind it, so a second batch
        // (held's write with the nonce at its head) starts beside it, looks its nonces up, and waits
        // for held's lock. Meanwhile the other pool commits the same nonce for another owner.
        const first = attempt(
          service.post({ owner_id: blocker, operation: "CREDIT_ADD", nonce: freshNonce() }),
        );
        outcomes = Promise.all([
          first,
          attempt(service.post({ owner_id: held, operation: "CREDIT_ADD", nonce })),
          ...others.map((o) =>
            attempt(service.post({ owner_id: o, operation: "CREDIT_ADD", nonce: freshNonce() })),
          ),
        ]);
        await new Promise((resolve) => setTimeout(resolve, 300));
        await b.post({ owner_id: freshOwner(), operation: "CREDIT_ADD", nonce });
      });
      const settled = await outcomes;
      if (!settled) throw new Error("the writes were sent");
      expect(service.batchStats().largestBatch).toBeGreaterThanOrEqual(32);
      expect(settled[0]).toMatchObject({ ok: true });
      expect(settled[1]).toEqual({ ok: false, code: "NONCE_CONFLICT" });
      expect(settled.slice(2).map((o) => (o.ok ? o.result.balance : o.code))).toEqual(Array(34).fill(10));
      expect((await a.balance(held)).balance).toBe(10);
    } finally {
      await holder.end();
    }
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
      // Each migration of the journal applied once.
      const journal = JSON.parse(readFileSync(join(MIGRATIONS_FOLDER, "meta", "_journal.json"), "utf8")) as {
        entries: unknown[];
      };
      expect(journal.entries.length).toBeGreaterThanOrEqual(3);
      expect(rows).toEqual([{ n: journal.entries.length }]);
      await Promise.all(opened.map((d) => d.close()));
    } finally {
      await dropDatabase(testDatabaseUrl(), name);
    }
  });
});
