// Opens the ledger's database on either driver and brings its schema up to date with drizzle's
// migrator. DATABASE_URL given: postgres.js against a real Postgres. Not given: embedded PGlite with
// its data on disk, so that a newcomer needs no database server and data survives a restart.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { PGlite } from "@electric-sql/pglite";
import { sql, type SQL } from "drizzle-orm";
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
  /**
   * Postgres cancels any statement running longer (a lock wait included), so a stuck statement cannot
   * hold a connection and an owner's lock forever. 0 turns it off (audits over a large ledger).
   */
  statementTimeoutMs?: number | undefined;
  /**
   * How the server plans statements on these connections. "per-execution" (the apps): every run of a
   * prepared statement is planned with its actual parameters. "default": Postgres's own choice
   * (audits, which run each statement once).
   */
  plans?: "per-execution" | "default" | undefined;
}

/** The planner settings of each plan mode, sent as connection parameters. */
const PLAN_SETTINGS: Record<"per-execution" | "default", Record<string, string>> = {
  "per-execution": { plan_cache_mode: "force_custom_plan" },
  default: {},
};

/** Seconds to wait for a TCP connection to Postgres before the call fails as DATABASE_UNAVAILABLE. */
const CONNECT_TIMEOUT_S = 2;
const STATEMENT_TIMEOUT_MS_DEFAULT = 10_000;

export const MIGRATIONS_FOLDER = fileURLToPath(new URL("../../drizzle", import.meta.url));
/** `<repo>/.data/ledger`, whichever package the process starts from, so every launcher sees the same data. */
export const DEFAULT_DATA_DIR = fileURLToPath(new URL("../../../../.data/ledger", import.meta.url));
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
    connect_timeout: CONNECT_TIMEOUT_S,
    connection: {
      application_name: "ledger",
      statement_timeout: opts.statementTimeoutMs ?? STATEMENT_TIMEOUT_MS_DEFAULT,
      // The write path's statements are prepared once per connection. A generic plan cached while a
      // table was nearly empty (a new ledger) keeps its sequential scans as the table grows, until the
      // next autoanalyze; the batch statements' array sizes also vary from 1 to 500. Planning each
      // execution with its actual parameters costs less than that. Generic plans with sequential scans
      // and hash joins priced out were tried and measured 2-6 times slower (docs/BENCHMARKS.md).
      ...PLAN_SETTINGS[opts.plans ?? "per-execution"],
    },
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
  const client = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: CONNECT_TIMEOUT_S });
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
  const inMemory = dataDir.startsWith("memory://");
  const unlock = inMemory ? () => {} : lockDataDir(dataDir);
  try {
    const client = await PGlite.create(dataDir);
    const db = drizzlePglite({ client, schema });
    if (opts.migrate !== false) await migratePglite(db, { migrationsFolder: MIGRATIONS_FOLDER });
    return {
      driver: "pglite",
      db,
      ping: (timeoutMs) => ping(db, timeoutMs),
      close: async () => {
        await client.close();
        unlock();
      },
    };
  } catch (error) {
    unlock();
    throw error;
  }
}

export class DataDirInUseError extends Error {
  constructor(dataDir: string, pid: number) {
    super(
      `The embedded database at ${dataDir} is in use by process ${pid}. PGlite has a single writer: ` +
        "run both apps in one process (pnpm start), or give each its own LEDGER_DATA_DIR, or set DATABASE_URL.",
    );
  }
}

/**
 * Embedded PGlite has one writer. Two processes opening the same data directory would corrupt it,
 * so each takes a lock file beside it first; a lock left by a dead process is taken over.
 */
function lockDataDir(dataDir: string): () => void {
  mkdirSync(dirname(dataDir), { recursive: true });
  const lockPath = `${dataDir.replace(/\/+$/, "")}.lock`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(lockPath, String(process.pid), { flag: "wx" });
      return () => rmSync(lockPath, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const holder = Number(readFileSync(lockPath, "utf8").trim());
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder)) {
        throw new DataDirInUseError(dataDir, holder);
      }
      rmSync(lockPath, { force: true });
    }
  }
  throw new Error(`Could not lock ${dataDir}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
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

/** Runs raw SQL and returns its rows, whichever driver: postgres.js returns an array, PGlite `{ rows }`. */
export async function queryRows<T>(db: LedgerDb, query: SQL): Promise<T[]> {
  const result: unknown = await db.execute(query);
  return (Array.isArray(result) ? result : (result as { rows: T[] }).rows) as T[];
}
