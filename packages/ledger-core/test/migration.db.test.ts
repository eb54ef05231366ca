// Migrations on a ledger that already has history. 0002: the balance rows become owner rows, the stored
// postings are checked against their entries and then derived from them, and the ledger goes on as
// before. A ledger whose stored postings disagree with their entries is not migrated, and says why.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { sql } from "drizzle-orm";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import { migrate as migratePostgres } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";
import { describe, expect, it, onTestFinished } from "vitest";
import { LedgerService } from "../src/index.js";
import {
  errorText,
  MIGRATIONS_FOLDER,
  queryRows,
  schema,
  verifyLedger,
  type LedgerDb,
} from "../src/store/index.js";
import {
  createDatabase,
  dropDatabase,
  freshNonce,
  testDatabaseUrl,
  testDriver,
} from "../src/testing/index.js";
import { testCatalog } from "./fixtures.js";
import { eventSchema } from "../src/features/events/envelope.js";
import { toLedgerEvent } from "../src/features/events/outbox.js";
import { lastEventPosition, readEvents } from "../src/store/events.js";
import { sqlClientOf } from "../src/store/sql-client.js";

/** A migrations folder holding only the first `count` migrations of the journal. */
function firstMigrations(count: number): string {
  const dir = mkdtempSync(join(tmpdir(), "ledger-migrations-"));
  cpSync(MIGRATIONS_FOLDER, dir, { recursive: true });
  const journalPath = join(dir, "meta", "_journal.json");
  const journal = JSON.parse(readFileSync(journalPath, "utf8")) as { entries: unknown[] };
  journal.entries = journal.entries.slice(0, count);
  writeFileSync(journalPath, JSON.stringify(journal));
  return dir;
}

interface Opened {
  db: LedgerDb;
  migrate: (folder: string) => Promise<void>;
}

/** A new, empty database on this run's driver, closed (and dropped) when the test ends. */
async function emptyDatabase(): Promise<Opened> {
  if (testDriver() === "pglite") {
    const client = await PGlite.create("memory://");
    const db = drizzlePglite({ client, schema });
    onTestFinished(() => client.close());
    return { db, migrate: (folder) => migratePglite(db, { migrationsFolder: folder }) };
  }
  const admin = testDatabaseUrl();
  const { name, url } = await createDatabase(admin, "ledger_migration");
  const client = postgres(url, { max: 1, onnotice: () => {} });
  const db = drizzlePostgres({ client, schema });
  onTestFinished(async () => {
    await client.end({ timeout: 5 });
    await dropDatabase(admin, name);
  });
  return { db, migrate: (folder) => migratePostgres(db, { migrationsFolder: folder }) };
}

/** Two owners' history as migration 0001 left it: entries, two postings each, balance rows. */
async function seedOldLedger(db: LedgerDb, opts: { damagePosting?: boolean } = {}) {
  await db.execute(sql`insert into ledger_entries (app, operation, owner_id, amount, balance_after, sequence, nonce, limit_period, created_at)
    values ('app1', 'CREDIT_ADD', 'alice', 10, 10, 1, 'n1', null, '2026-01-01T00:00:00Z'),
           ('app1', 'CREDIT_SPEND', 'alice', -1, 9, 2, 'n2', null, '2026-01-01T00:01:00Z'),
           ('app2', 'SIGNUP_CREDIT', 'bob', 3, 3, 1, 'n1', 'once', '2026-01-01T00:02:00Z')`);
  await db.execute(sql`insert into ledger_postings (entry_id, account, amount)
    select id, 'owner:' || owner_id, amount from ledger_entries
    union all select id, 'operation:' || operation, -amount from ledger_entries`);
  if (opts.damagePosting) {
    await db.execute(sql`alter table ledger_postings disable trigger ledger_postings_append_only`);
    await db.execute(sql`update ledger_postings set amount = amount + 1 where account = 'owner:bob'`);
  }
  await db.execute(sql`insert into ledger_balances (owner_id, balance, last_sequence, updated_at)
    values ('alice', 9, 2, now()), ('bob', 3, 1, now())`);
}

describe(`migration 0002 on an existing ledger [${testDriver()}]`, () => {
  it("keeps every entry and balance, derives the same postings, and the ledger goes on", async () => {
    const { db, migrate } = await emptyDatabase();
    const old = firstMigrations(2);
    onTestFinished(() => rmSync(old, { recursive: true, force: true }));
    await migrate(old);
    await seedOldLedger(db);
    const postingsBefore = await queryRows(
      db,
      sql`select entry_id, account, amount::text as amount from ledger_postings order by 1, 2`,
    );
    await migrate(MIGRATIONS_FOLDER);

    expect(
      await queryRows(
        db,
        sql`select entry_id, account, amount::text as amount from ledger_postings order by 1, 2`,
      ),
    ).toEqual(postingsBefore);
    expect(
      await queryRows(
        db,
        sql`select owner_id, balance::text as balance, last_sequence::text as last_sequence, status from ledger_owners order by 1`,
      ),
    ).toEqual([
      { owner_id: "alice", balance: "9", last_sequence: "2", status: "active" },
      { owner_id: "bob", balance: "3", last_sequence: "1", status: "active" },
    ]);
    const report = await verifyLedger(db);
    expect(report.checks.filter((c) => c.violations > 0)).toEqual([]);

    const ledger = new LedgerService({ db, app: "app1", catalog: testCatalog });
    const next = await ledger.post({
      owner_id: "alice",
      operation: "CREDIT_ADD",
      nonce: freshNonce(),
      expires_at: new Date(Date.now() + 60_000).toISOString(),
    });
    expect(next.entry).toMatchObject({ sequence: 3, balance_after: 19 });
    await expect(
      ledger.post({ owner_id: "alice", operation: "CREDIT_ADD", nonce: "n1" }),
    ).resolves.toMatchObject({
      replayed: true,
      entry: { sequence: 1 },
    });
    expect((await verifyLedger(db)).ok).toBe(true);
  });

  it("refuses to migrate a ledger with an owner named after a route word, and says which", async () => {
    const { db, migrate } = await emptyDatabase();
    const before = firstMigrations(3);
    onTestFinished(() => rmSync(before, { recursive: true, force: true }));
    await migrate(before);
    await db.execute(sql`insert into ledger_entries (app, operation, owner_id, amount, balance_after, sequence, nonce, created_at)
      values ('app1', 'CREDIT_ADD', 'holds', 10, 10, 1, 'n1', now()), ('app1', 'CREDIT_ADD', 'alice', 10, 10, 1, 'n2', now())`);
    await db.execute(sql`insert into ledger_owners (owner_id, balance, last_sequence, updated_at)
      values ('holds', 10, 1, now()), ('alice', 10, 1, now())`);
    const error = await migrate(MIGRATIONS_FOLDER).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(errorText(error)).toMatch(/owner ids holds are route words of the ledger/);
  });

  it("refuses to migrate a ledger whose stored postings disagree with their entries, changing nothing", async () => {
    const { db, migrate } = await emptyDatabase();
    const old = firstMigrations(2);
    onTestFinished(() => rmSync(old, { recursive: true, force: true }));
    await migrate(old);
    await seedOldLedger(db, { damagePosting: true });
    const error = await migrate(MIGRATIONS_FOLDER).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(errorText(error)).toMatch(/ledger_postings disagree with their entries \(1 entries\)/);
    // Still the old schema, with its data.
    expect(await queryRows(db, sql`select count(*)::int as n from ledger_balances`)).toEqual([{ n: 2 }]);
    expect(await queryRows(db, sql`select to_regclass('ledger_owners') is null as gone`)).toEqual([
      { gone: true },
    ]);
  });
});

describe(`migration 0004 on a ledger with expiring credits [${testDriver()}]`, () => {
  it("keeps every grant, allocation and expiry as part 0 with nothing held, and the ledger goes on", async () => {
    const { db, migrate } = await emptyDatabase();
    const before = firstMigrations(4);
    onTestFinished(() => rmSync(before, { recursive: true, force: true }));
    await migrate(before);
    // alice: +10 expiring (grant #1), -4 spent from it, the rest expired under 0003's expiry nonce.
    await db.execute(sql`insert into ledger_entries (app, operation, owner_id, amount, balance_after, sequence, nonce, created_at, expires_at)
      values ('app1', 'CREDIT_ADD', 'alice', 10, 10, 1, 'n1', '2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z'),
             ('app1', 'CREDIT_SPEND', 'alice', -4, 6, 2, 'n2', '2026-01-01T01:00:00Z', null),
             ('app1', 'EXPIRY', 'alice', -6, 0, 3, 'expiry 1 alice', '2026-01-02T00:00:01Z', '2026-01-02T00:00:00Z'),
             ('app1', 'CREDIT_ADD', 'alice', 10, 10, 4, 'n3', '2026-01-03T00:00:00Z', null)`);
    await db.execute(sql`insert into ledger_grants (owner_id, sequence, app, amount, remaining, expires_at, created_at, expired_sequence)
      values ('alice', 1, 'app1', 10, 0, '2026-01-02T00:00:00Z', '2026-01-01T00:00:00Z', 3)`);
    await db.execute(sql`insert into ledger_allocations (owner_id, sequence, grant_sequence, amount)
      values ('alice', 2, 1, 4), ('alice', 3, 1, 6)`);
    await db.execute(sql`insert into ledger_owners (owner_id, balance, last_sequence, status, updated_at)
      values ('alice', 10, 4, 'active', now())`);

    await migrate(MIGRATIONS_FOLDER);
    expect(
      await queryRows(
        db,
        sql`select owner_id, held::text as held, balance::text as balance from ledger_owners`,
      ),
    ).toEqual([{ owner_id: "alice", held: "0", balance: "10" }]);
    expect(await queryRows(db, sql`select sequence::text as sequence, part from ledger_grants`)).toEqual([
      { sequence: "1", part: 0 },
    ]);
    expect(
      await queryRows(db, sql`select count(*)::int as n from ledger_allocations where grant_part = 0`),
    ).toEqual([{ n: 2 }]);
    const report = await verifyLedger(db);
    expect(report.checks.filter((c) => c.violations > 0)).toEqual([]);

    const ledger = new LedgerService({ db, app: "app1", catalog: testCatalog });
    const spent = await ledger.post({ owner_id: "alice", operation: "CREDIT_SPEND", nonce: freshNonce() });
    expect(spent).toMatchObject({ balance: 9, available: 9, entry: { sequence: 5 } });
    expect(await ledger.balance("alice")).toMatchObject({ balance: 9, available: 9, held: 0 });
    expect((await verifyLedger(db)).ok).toBe(true);
  });
});

describe(`migration 0005 on a ledger with history [${testDriver()}]`, () => {
  it("gives every entry its entry.created in id order, none to the holds made before it, and events go on", async () => {
    const { db, migrate } = await emptyDatabase();
    const before = firstMigrations(5);
    onTestFinished(() => rmSync(before, { recursive: true, force: true }));
    await migrate(before);
    // alice: +10, then a hold of 3 (the HOLD entry, amount 0), captured for 2.
    await db.execute(sql`insert into ledger_entries (app, operation, owner_id, amount, balance_after, held_after, sequence, nonce, created_at, expires_at, hold_id)
      values ('app1', 'CREDIT_ADD', 'alice', 10, 10, 0, 1, 'n1', '2026-01-01T00:00:00Z', null, null),
             ('app1', 'HOLD', 'alice', 0, 10, 3, 2, 'n2', '2026-01-01T01:00:00Z', '2026-01-01T01:15:00Z', 'h1'),
             ('app1', 'TEST_DEBIT', 'alice', -2, 8, 0, 3, 'n3', '2026-01-01T01:05:00.123Z', null, 'h1')`);
    await db.execute(sql`insert into ledger_holds (id, app, owner_id, operation, amount, status, captured_amount, expires_at, created_at, sequence, ended_at, end_sequence, draws)
      values ('h1', 'app1', 'alice', 'TEST_DEBIT', 3, 'captured', 2, '2026-01-01T01:15:00Z', '2026-01-01T01:00:00Z', 2, '2026-01-01T01:05:00.123Z', 3, '[]')`);
    await db.execute(sql`insert into ledger_owners (owner_id, balance, held, last_sequence, status, updated_at)
      values ('alice', 8, 0, 3, 'active', now())`);

    await migrate(MIGRATIONS_FOLDER);
    const db0 = sqlClientOf(db);
    const events = (await readEvents(db0, 0, 100)).map(toLedgerEvent);
    expect(events.map((e) => [e.position, e.type, e.sequence, e.request_id])).toEqual([
      [1, "entry.created", 1, null],
      [2, "entry.created", 2, null],
      [3, "entry.created", 3, null],
    ]);
    for (const e of events) expect(eventSchema.safeParse(e).error).toBeUndefined();
    expect(events[2]?.data).toEqual({
      id: 3,
      app: "app1",
      operation: "TEST_DEBIT",
      owner_id: "alice",
      amount: -2,
      balance_after: 8,
      sequence: 3,
      nonce: "n3",
      created_at: "2026-01-01T01:05:00.123Z",
      hold_id: "h1",
      balance: 8,
      available: 8,
      held: 0,
    });
    expect(events[1]?.data).toMatchObject({ expires_at: "2026-01-01T01:15:00.000Z", held: 3, available: 7 });
    expect(await lastEventPosition(db0)).toBe(3);
    expect((await verifyLedger(db)).checks.filter((c) => c.violations > 0)).toEqual([]);

    const ledger = new LedgerService({ db, app: "app1", catalog: testCatalog });
    await ledger.post({ owner_id: "alice", operation: "CREDIT_SPEND", nonce: freshNonce() });
    const next = (await readEvents(db0, 3, 10)).map(toLedgerEvent);
    expect(next.map((e) => [e.position, e.type, e.sequence])).toEqual([[4, "entry.created", 4]]);
    expect((await verifyLedger(db)).ok).toBe(true);
  });
});
