// The write path's access to the database, below drizzle: fixed SQL texts with positional parameters,
// prepared once per connection, and statements sent together so that a transaction costs as few round
// trips as possible. On postgres.js, BEGIN goes out with a transaction's first statements and COMMIT with
// its last ones, so a group-commit batch (lock, then write) is two round trips, not eight.
//
// Why not drizzle's `db.execute`: it runs every statement unprepared, and postgres.js then describes each
// parameterised statement in a round trip of its own before running it (docs/BENCHMARKS.md).
import { PGlite, type Transaction as PgliteTransaction } from "@electric-sql/pglite";
import type { Sql, ReservedSql } from "postgres";
import type { LedgerDb } from "./client.js";

/** One statement: its text never changes (so it is prepared once), only its parameters do. */
export interface Statement {
  text: string;
  params: readonly unknown[];
}

export type Rows = Record<string, unknown>[];

export interface SqlRunner {
  /** Runs the statements in order, sent together where the driver can; one row array per statement. */
  run(statements: readonly Statement[]): Promise<Rows[]>;
}

export interface SqlTransaction extends SqlRunner {
  /**
   * Runs the statements, then commits, sent together. If a statement fails the transaction is rolled
   * back and its error thrown; if the commit itself fails, the commit's error is thrown.
   */
  runAndCommit(statements: readonly Statement[]): Promise<Rows[]>;
}

export interface SqlClient extends SqlRunner {
  /**
   * Runs fn in one transaction on one connection. The transaction opens with fn's first statements and
   * commits with its runAndCommit, or when fn returns; it rolls back when fn throws.
   */
  transaction<T>(fn: (tx: SqlTransaction) => Promise<T>): Promise<T>;
}

const clients = new WeakMap<object, SqlClient>();

/**
 * How busy the connections under a database are, as the ledger's SQL client sees them: postgres.js
 * keeps its pool's queues to itself, so what is counted is what this client sends (nearly every query of
 * the ledger; drizzle's own, such as /health's ping and the entries page, are not seen).
 */
export interface PoolUsage {
  /** Connections the pool may open (PGlite: 1, its one connection). */
  max: number;
  /**
   * Connections busy: one per transaction holding one, plus one per statement in flight outside a
   * transaction, up to `max`. (PGlite: 1 while anything runs, else 0.)
   */
  inUse: number;
  /**
   * What waits for a connection: transactions waiting for one, and statements beyond the free
   * connections (postgres.js queues them, or pipelines them behind another on a busy one). PGlite: what
   * waits behind the one running.
   */
  waiting: number;
}

interface UsageCounts {
  max: number;
  /** Transactions holding a connection, and waiting for one. */
  held: number;
  reserving: number;
  /** Statements (PGlite: runs) in flight outside a transaction. */
  loose: number;
}

const usages = new WeakMap<object, UsageCounts>();

/** The database's pool usage now (see PoolUsage). */
export function poolUsageOf(db: LedgerDb): PoolUsage {
  sqlClientOf(db);
  const counts = usages.get(driverClientOf(db) as object);
  if (!counts) return { max: 0, inUse: 0, waiting: 0 };
  const busy = counts.held + counts.loose;
  return {
    max: counts.max,
    inUse: Math.min(counts.max, busy),
    waiting: counts.reserving + Math.max(0, busy - counts.max),
  };
}

/** The driver's client under a drizzle database: the postgres.js pool or the PGlite instance. */
export function driverClientOf(db: LedgerDb): unknown {
  return (db as unknown as { $client?: unknown }).$client;
}

/** The SqlClient over the same connection pool (or embedded database) as a drizzle database. */
export function sqlClientOf(db: LedgerDb): SqlClient {
  const underlying = driverClientOf(db);
  if (underlying === null || (typeof underlying !== "object" && typeof underlying !== "function")) {
    throw new TypeError("This database has no driver client (was it opened with openDatabase?)");
  }
  let client = clients.get(underlying);
  if (!client) {
    const pglite = underlying instanceof PGlite;
    const counts: UsageCounts = {
      max: pglite ? 1 : (underlying as Sql).options.max,
      held: 0,
      reserving: 0,
      loose: 0,
    };
    client = pglite ? pgliteClient(underlying, counts) : postgresClient(underlying as Sql, counts);
    clients.set(underlying, client);
    usages.set(underlying, counts);
  }
  return client;
}

function postgresClient(sql: Sql, counts: UsageCounts): SqlClient {
  const send = (conn: Sql | ReservedSql, s: Statement) =>
    conn.unsafe(s.text, s.params as never[], { prepare: true }) as unknown as Promise<Rows>;
  return {
    async run(statements) {
      counts.loose += statements.length;
      try {
        return await settleAll(statements.map((s) => send(sql, s)));
      } finally {
        counts.loose -= statements.length;
      }
    },
    async transaction(fn) {
      counts.reserving += 1;
      let conn: ReservedSql;
      try {
        conn = await sql.reserve();
      } finally {
        counts.reserving -= 1;
      }
      counts.held += 1;
      // Closures move it on; the cast keeps TypeScript from narrowing it to its first value.
      let state = "idle" as "idle" | "open" | "done";
      const begin = (): Promise<Rows>[] => {
        if (state !== "idle") return [];
        state = "open";
        return [send(conn, { text: "begin", params: [] })];
      };
      const tx: SqlTransaction = {
        async run(statements) {
          const opening = begin();
          const results = await settleAll([...opening, ...statements.map((s) => send(conn, s))]);
          return results.slice(opening.length);
        },
        async runAndCommit(statements) {
          const opening = begin();
          state = "done";
          // After a failed statement Postgres answers COMMIT with ROLLBACK: nothing of it is kept.
          const results = await settleAll([
            ...opening,
            ...statements.map((s) => send(conn, s)),
            send(conn, { text: "commit", params: [] }),
          ]);
          return results.slice(opening.length, opening.length + statements.length);
        },
      };
      try {
        const result = await fn(tx);
        if (state === "open") {
          state = "done";
          await send(conn, { text: "commit", params: [] });
        }
        return result;
      } catch (error) {
        if (state === "open") await send(conn, { text: "rollback", params: [] }).catch(() => undefined);
        throw error;
      } finally {
        counts.held -= 1;
        conn.release();
      }
    },
  };
}

function pgliteClient(pg: PGlite, counts: UsageCounts): SqlClient {
  const runOn = async (q: PGlite | PgliteTransaction, statements: readonly Statement[]) => {
    const results: Rows[] = [];
    for (const s of statements)
      results.push((await q.query<Record<string, unknown>>(s.text, [...s.params])).rows);
    return results;
  };
  // PGlite runs one thing at a time: a run or a transaction in flight is the connection in use, or waits.
  const counted = async <T>(work: () => Promise<T>): Promise<T> => {
    counts.loose += 1;
    try {
      return await work();
    } finally {
      counts.loose -= 1;
    }
  };
  return {
    run: (statements) => counted(() => runOn(pg, statements)),
    transaction: (fn) =>
      counted(() => pg.transaction((t) => fn({ run: (s) => runOn(t, s), runAndCommit: (s) => runOn(t, s) }))),
  };
}

/** Waits for every query (none is left unobserved), then throws the first failure in order, if any. */
async function settleAll(queries: Promise<Rows>[]): Promise<Rows[]> {
  const settled = await Promise.allSettled(queries);
  const failed = settled.find((s) => s.status === "rejected");
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<Rows>).value);
}
