// Opens the ledger's database on either driver and brings its schema up to date with drizzle's
// migrator. DATABASE_URL given: postgres.js against a real Postgres. Not given: embedded PGlite with
// its data on disk, so that a newcomer needs no database server and data survives a restart.
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { PGlite } from "@electric-sql/pglite";
import { sql } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import { migrate as migratePostgres } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";
import { translateDriverError } from "./errors.js";
import { schema } from "./schema.js";

export type Driver = "postgres" | "pglite";
export type LedgerDb = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface LedgerDatabase {
  readonly driver: Driver;
  readonly db: LedgerDb;
  /** Resolves when the database answers `select 1` within timeoutMs; throws DatabaseUnavailableError otherwise. */
  ping(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export interface OpenDatabaseOptions {
  /** A postgres:// URL. Absent: embedded PGlite. */
  url?: string | undefined;
  /** PGlite's data directory; "memory://" keeps it in memory. Ignored with a URL. */
  dataDir?: string | undefined;
  /** Connections in the postgres.js pool. */
  poolSizeMax?: number | undefined;
  /** Apply pending migrations before returning (default true). */
  migrate?: boolean | undefined;
}

export const MIGRATIONS_FOLDER = fileURLToPath(new URL("../../drizzle", import.meta.url));
export const DEFAULT_DATA_DIR = ".data/ledger";
/** Any fixed number: the advisory lock that makes concurrent start-ups migrate one at a time. */
const MIGRATION_LOCK_KEY = 7_245_001;
const PING_TIMEOUT_MS_DEFAULT = 2_000;

export async function openDatabase(opts: OpenDatabaseOptions = {}): Promise<LedgerDatabase> {
  return opts.url ? openPostgres(opts.url, opts) : openPglite(opts.dataDir ?? DEFAULT_DATA_DIR, opts);
}

async function openPostgres(url: string, opts: OpenDatabaseOptions): Promise<LedgerDatabase> {
  if (opts.migrate !== false) await migratePostgresLocked(url);
  const client = postgres(url, {
    max: opts.poolSizeMax ?? 10,
    onnotice: () => {},
    connect_timeout: 5,
    connection: { application_name: "ledger" },
  });
  const db = drizzlePostgres({ client, schema });
  return {
    driver: "postgres",
    db,
    ping: (timeoutMs) => ping(db, timeoutMs),
    close: () => client.end({ timeout: 5 }),
  };
}

/**
 * Many app processes may start at once against one database. Each migrates under a session advisory
 * lock held on a one-connection client (so every statement, BEGIN included, runs on the locked
 * session); the second finds nothing left to do.
 */
async function migratePostgresLocked(url: string): Promise<void> {
  const client = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 5 });
  try {
    await client`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
    await migratePostgres(drizzlePostgres({ client }), { migrationsFolder: MIGRATIONS_FOLDER });
    await client`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`;
  } catch (error) {
    throw translateDriverError(error);
  } finally {
    await client.end({ timeout: 5 });
  }
}

async function openPglite(dataDir: string, opts: OpenDatabaseOptions): Promise<LedgerDatabase> {
  if (!dataDir.startsWith("memory://")) mkdirSync(dataDir, { recursive: true });
  const client = await PGlite.create(dataDir);
  const db = drizzlePglite({ client, schema });
  if (opts.migrate !== false) await migratePglite(db, { migrationsFolder: MIGRATIONS_FOLDER });
  return {
    driver: "pglite",
    db,
    ping: (timeoutMs) => ping(db, timeoutMs),
    close: () => client.close(),
  };
}

async function ping(db: LedgerDb, timeoutMs = PING_TIMEOUT_MS_DEFAULT): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([db.execute(sql`select 1`), timeout]);
  } catch (error) {
    throw translateDriverError(error);
  } finally {
    clearTimeout(timer);
  }
}
