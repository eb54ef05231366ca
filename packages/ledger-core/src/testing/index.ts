// Test support shared by ledger-core and the apps: a fresh database per test file on either driver,
// and the invariant check every suite runs when it ends.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, expect } from "vitest";
import { verifyLedger } from "../store/audit.js";
import { openDatabase, type Driver, type LedgerDatabase } from "../store/client.js";
import { createDatabase, dropDatabase } from "./postgres.js";

export interface TestDatabase extends LedgerDatabase {
  /** The postgres:// URL of this test's own database (postgres driver only). */
  readonly url: string | undefined;
}

/**
 * The driver this test run targets. The vitest preset sets LEDGER_TEST_DRIVER per project; this is
 * test infrastructure, the one place outside an app's env.ts that reads the environment.
 */
export function testDriver(): Driver {
  return process.env.LEDGER_TEST_DRIVER === "postgres" ? "postgres" : "pglite";
}

export function testDatabaseUrl(): string {
  const url = process.env.TEST_DATABASE_URL;
  if (!url) throw new Error("TEST_DATABASE_URL must be set to run the postgres project");
  return url;
}

/**
 * A brand-new, migrated database: in-memory PGlite, or a new database on the server named by
 * TEST_DATABASE_URL, dropped again on close. Nothing is shared with any other test file or run.
 */
export async function openTestDatabase(
  driver: Driver = testDriver(),
  opts: { poolSizeMax?: number } = {},
): Promise<TestDatabase> {
  if (driver === "pglite") {
    const db = await openDatabase({ dataDir: "memory://" });
    return { ...db, url: undefined };
  }
  const adminUrl = testDatabaseUrl();
  const { name, url } = await createDatabase(adminUrl, "ledger_test");
  const db = await openDatabase({ url, poolSizeMax: opts.poolSizeMax });
  return {
    ...db,
    url,
    close: async () => {
      await db.close();
      await dropDatabase(adminUrl, name);
    },
  };
}

export { createDatabase, dropDatabase, withDatabase } from "./postgres.js";

/**
 * A fresh test database for the whole file: opened before its tests, checked against every ledger
 * invariant and closed after them. Read it through the getter, from the file's own hooks or tests.
 */
export function useTestDatabase(): () => TestDatabase {
  let tdb: TestDatabase | undefined;
  beforeAll(async () => {
    tdb = await openTestDatabase();
  });
  afterAll(async () => {
    if (!tdb) return;
    await expectLedgerInvariants(tdb);
    await tdb.close();
  });
  return () => {
    if (!tdb) throw new Error("useTestDatabase: read before its beforeAll ran");
    return tdb;
  };
}

/** Every invariant `ledger verify` checks: accounts sum to zero, balances match entries, chains hold, ... */
export async function expectLedgerInvariants(db: LedgerDatabase): Promise<void> {
  const report = await verifyLedger(db.db);
  const broken = report.checks.filter((c) => c.violations > 0);
  expect(broken, broken.map((c) => `${c.name}: ${c.examples.join("; ")}`).join("\n")).toEqual([]);
  expect(report.checks.length).toBeGreaterThanOrEqual(10);
}

let counter = 0;
/** A fresh owner id per test, so tests sharing a database never see each other's balances. */
export function freshOwner(prefix = "owner"): string {
  counter += 1;
  return `${prefix}_${Date.now().toString(36)}_${counter}_${randomBytes(3).toString("hex")}`;
}

export function freshNonce(): string {
  return `n-${randomBytes(12).toString("hex")}`;
}

/** The balance read of an active owner without holds: what `GET /ledger/{owner_id}` answers. */
export function expectedBalance(
  owner_id: string,
  balance: number,
  expiring: { amount: number; expires_at: string }[] = [],
) {
  return { owner_id, balance, available: balance, held: 0, status: "active", expiring };
}

export { metricSum, metricValue, parseMetrics, samplesOf, type Sample } from "./metrics.js";
