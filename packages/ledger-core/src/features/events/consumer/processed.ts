// Exactly once, in effect: the consumer's own Postgres records each event id it processed, in the same
// transaction as the handler's effect. The id goes in first (insert ... on conflict do nothing), so a
// second delivery of the event, on this process or another, either finds it and skips the handler, or
// waits on the first one's row lock and then finds it (or, if the first rolled back, takes its place).
// The broker is acked only after the commit: a crash between the two is a redelivery that is skipped.
import type { Sql } from "postgres";
import type { LedgerEvent } from "../envelope.js";
import type { LedgerEventHandler } from "./core.js";

export const PROCESSED_TABLE = "ledger_consumer_processed";

const CREATE_TABLE = `create table if not exists ${PROCESSED_TABLE} (
  consumer text not null,
  event_id uuid not null,
  position bigint not null,
  processed_at timestamptz not null default now(),
  primary key (consumer, event_id)
)`;

/** Creates the table if it is missing. Two consumers starting at once may race: the loser finds it made. */
export async function ensureProcessedTable(sql: Sql): Promise<void> {
  try {
    await sql.unsafe(CREATE_TABLE);
  } catch (error) {
    // 42P07 duplicate_table, 23505 unique_violation (on pg_type): the other creator won the race.
    const code = (error as { code?: unknown }).code;
    if (code !== "42P07" && code !== "23505") throw error;
  }
}

/**
 * Runs the handler on the event unless `consumer` already processed it, recording the id in the same
 * transaction. "skipped": already processed, the handler was not called.
 */
export async function processOnce(
  sql: Sql,
  consumer: string,
  event: LedgerEvent,
  handler: LedgerEventHandler,
): Promise<"handled" | "skipped"> {
  return sql.begin(async (tx) => {
    const claimed = await tx`
      insert into ledger_consumer_processed (consumer, event_id, position)
      values (${consumer}, ${event.id}, ${event.position})
      on conflict do nothing
      returning 1 as claimed`;
    if (claimed.length === 0) return "skipped" as const;
    await handler(event, tx);
    return "handled" as const;
  });
}

/** Deletes at most `limit` of a consumer's records processed before `before`; returns how many went. */
export async function pruneProcessedEvents(
  sql: Sql,
  opts: { consumer: string; before: Date; limit?: number },
): Promise<number> {
  // An id pruned and then delivered again is handled again: prune only what no broker still holds or
  // can replay (older than the stream's or queue's retention, and than LEDGER_EVENTS_RETENTION_DAYS).
  const limit = opts.limit ?? 10_000;
  if (!Number.isInteger(limit) || limit < 1 || limit > 1_000_000) {
    throw new RangeError(`limit must be an integer from 1 to 1000000, got ${limit}`);
  }
  const rows = await sql`
    delete from ledger_consumer_processed
    where (consumer, event_id) in (
      select consumer, event_id from ledger_consumer_processed
      where consumer = ${opts.consumer} and processed_at < ${opts.before}
      limit ${limit})
    returning 1`;
  return rows.length;
}
