// The outbox's SQL: the events a batch writes (in its write round trip, last before COMMIT), and what the
// readers of the log need (the relay, GET /ledger/events, the streams, retention).
//
// Positions: the insert takes them from ledger_event_counter's one row, in the same statement, and the
// row's lock is held until COMMIT, which is sent with it. Every writing transaction takes that lock last
// (after its owners', and after its entries are in, so it never waits on another transaction's nonce while
// holding it), so there is no deadlock, and the transactions that write events commit one at a time in
// position order: a reader that has seen position p will never later see a new event below p. Rolled back
// transactions roll their counter update back too, so positions are gapless.
import type { RowWriter } from "../engine/command.js";
import { parseJson, UTC_MS } from "./reads.js";
import type { Rows, SqlRunner, Statement } from "./sql-client.js";

/** One event as a batch writes it: its entry is named by (app, nonce), its id is the database's. */
export interface EventWrite {
  id: string;
  type: string;
  version: number;
  occurredAt: Date;
  app: string;
  ownerId: string;
  sequence: number;
  /** The nonce of the entry the event is about (the entry's id is only known once it is inserted). */
  nonce: string;
  requestId: string | null;
  /** The API key that wrote the entry. */
  actor: string | null;
  /** The W3C trace id of the request. */
  traceId: string | null;
  /** The type's data without the entry's id (the reader adds it from entry_id). */
  data: Record<string, unknown>;
}

const WRITE_EVENTS = `with c as (
    update ledger_event_counter set last_position = last_position + cardinality($1::text[])
    returning last_position - cardinality($1::text[]) as base
  )
  insert into ledger_events (position, id, type, version, occurred_at, app, owner_id, sequence, entry_id, request_id,
                             actor, trace_id, data)
  select c.base + v.ord, v.id::uuid, v.type, v.version, v.occurred_at::timestamptz, v.app, v.owner_id, v.sequence,
         e.id, v.request_id, v.actor, v.trace_id, v.data::jsonb
  from c, unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[],
                 $9::text[], $10::text[], $11::text[], $12::text[]) with ordinality
    as v(id, type, version, occurred_at, app, owner_id, sequence, nonce, request_id, actor, trace_id, data, ord)
  join ledger_entries e on e.app = v.app and e.nonce = v.nonce`;

/** The outbox's writer: its rows go last in a batch's write round trip. */
export const eventWriter: RowWriter<EventWrite> = {
  name: "events",
  statement(rows: readonly EventWrite[]): Statement {
    return {
      text: WRITE_EVENTS,
      params: [
        rows.map((r) => r.id),
        rows.map((r) => r.type),
        rows.map((r) => String(r.version)),
        rows.map((r) => r.occurredAt.toISOString()),
        rows.map((r) => r.app),
        rows.map((r) => r.ownerId),
        rows.map((r) => String(r.sequence)),
        rows.map((r) => r.nonce),
        rows.map((r) => r.requestId),
        rows.map((r) => r.actor),
        rows.map((r) => r.traceId),
        rows.map((r) => JSON.stringify(r.data)),
      ],
    };
  },
};

/** An event as stored. */
export interface StoredEvent {
  position: number;
  id: string;
  type: string;
  version: number;
  occurredAt: string;
  app: string;
  ownerId: string;
  sequence: number;
  entryId: number;
  requestId: string | null;
  actor: string | null;
  traceId: string | null;
  data: Record<string, unknown>;
}

const EVENT_COLUMNS = `position::text as position, id::text as id, type, version, ${UTC_MS("occurred_at")} as occurred_at,
  app, owner_id, sequence::text as sequence, entry_id::text as entry_id, request_id, actor, trace_id, data`;

// "order by v.position", not "position": that would be the text output column.
const EVENTS_AFTER = `select ${EVENT_COLUMNS} from ledger_events v where v.position > $1 order by v.position limit $2`;
const OWNER_EVENTS_AFTER = `select ${EVENT_COLUMNS} from ledger_events v
  where v.owner_id = $1 and v.position > $2 order by v.position limit $3`;

interface RawEvent {
  position: string;
  id: string;
  type: string;
  version: number;
  occurred_at: string;
  app: string;
  owner_id: string;
  sequence: string;
  entry_id: string;
  request_id: string | null;
  actor: string | null;
  trace_id: string | null;
  data: unknown;
}

function toStoredEvents(rows: Rows | undefined): StoredEvent[] {
  return ((rows ?? []) as unknown as RawEvent[]).map((r) => ({
    position: Number(r.position),
    id: r.id,
    type: r.type,
    version: Number(r.version),
    occurredAt: r.occurred_at,
    app: r.app,
    ownerId: r.owner_id,
    sequence: Number(r.sequence),
    entryId: Number(r.entry_id),
    requestId: r.request_id,
    actor: r.actor,
    traceId: r.trace_id,
    data: parseJson<Record<string, unknown>>(r.data),
  }));
}

/** The events after a position, in position order; with ownerId, that owner's only. */
export async function readEvents(
  db: SqlRunner,
  after: number,
  limit: number,
  ownerId?: string,
): Promise<StoredEvent[]> {
  const [rows] = await db.run([
    ownerId === undefined
      ? { text: EVENTS_AFTER, params: [String(after), limit] }
      : { text: OWNER_EVENTS_AFTER, params: [ownerId, String(after), limit] },
  ]);
  return toStoredEvents(rows);
}

/** The position of the newest committed event (0 for none). */
export async function lastEventPosition(db: SqlRunner): Promise<number> {
  const [rows] = await db.run([
    { text: "select last_position::text as p from ledger_event_counter", params: [] },
  ]);
  return Number((rows?.[0] as { p?: string } | undefined)?.p ?? 0);
}

/** A relay's checkpoint (0 before its first delivery). */
export async function relayCheckpoint(db: SqlRunner, name: string): Promise<number> {
  const [rows] = await db.run([
    { text: "select position::text as p from ledger_event_relays where name = $1", params: [name] },
  ]);
  return Number((rows?.[0] as { p?: string } | undefined)?.p ?? 0);
}

/** Moves a relay's checkpoint forward to `position` (never back: a late writer cannot undo a newer one). */
export async function saveRelayCheckpoint(db: SqlRunner, name: string, position: number): Promise<void> {
  await db.run([
    {
      text: `insert into ledger_event_relays as r (name, position, updated_at) values ($1, $2, now())
        on conflict (name) do update set position = greatest(r.position, excluded.position), updated_at = now()`,
      params: [name, String(position)],
    },
  ]);
}

/** How far a relay is behind: events not yet delivered, and when the oldest of them occurred. */
export interface RelayLag {
  checkpoint: number;
  head: number;
  pending: number;
  oldestPendingAt: string | null;
}

export async function relayLag(db: SqlRunner, name: string): Promise<RelayLag> {
  const [rows] = await db.run([
    {
      text: `select c.last_position::text as head, coalesce(r.position, 0)::text as checkpoint,
          (select ${UTC_MS("e.occurred_at")} from ledger_events e where e.position = coalesce(r.position, 0) + 1) as oldest
        from ledger_event_counter c left join ledger_event_relays r on r.name = $1`,
      params: [name],
    },
  ]);
  const row = rows?.[0] as { head: string; checkpoint: string; oldest: string | null } | undefined;
  const head = Number(row?.head ?? 0);
  const checkpoint = Number(row?.checkpoint ?? 0);
  return { head, checkpoint, pending: Math.max(0, head - checkpoint), oldestPendingAt: row?.oldest ?? null };
}

/**
 * Deletes up to `limit` events that occurred before `before` and are at or below `through` (the relay's
 * checkpoint: only delivered events go), oldest first, and records `before` as what retention may have
 * pruned (the audit checks every entry since for its events). Returns how many went.
 */
export async function pruneEvents(
  db: SqlRunner,
  opts: { before: Date; through: number; limit: number },
): Promise<number> {
  const [rows] = await db.run([
    {
      text: `with gone as (
          delete from ledger_events where position in (
            select position from ledger_events where position <= $1 and occurred_at < $2::timestamptz
            order by position limit $3)
          returning 1
        ), n as (select count(*)::int as n from gone), r as (
          update ledger_event_retention set pruned_before = greatest(coalesce(pruned_before, $2::timestamptz), $2::timestamptz)
          where (select n from n) > 0
        )
        select n from n`,
      params: [String(opts.through), opts.before.toISOString(), opts.limit],
    },
  ]);
  return Number((rows?.[0] as { n?: number } | undefined)?.n ?? 0);
}

// Retention may delete only a prefix of positions (readers and the audit rely on the log being gapless
// from its oldest kept event), and only what every relay that moved within the retention period has
// delivered. occurred_at follows the writers' clocks, not commit order, so the prefix ends before the
// first event that is still recent, not at the last old one. A relay whose checkpoint has not moved for the
// whole retention period (a broker since removed) no longer holds retention back.
// Each round looks at the oldest `$2` events only (an index range on the primary key), so its cost does
// not grow with the backlog: a ledger that migrated millions of old entries prunes them chunk by chunk.
const RETENTION_HORIZON = `with oldest as (
    select position, occurred_at from ledger_events order by position limit $2
  )
  select least(
    c.last_position,
    (select min(r.position) from ledger_event_relays r where r.updated_at >= $1::timestamptz),
    coalesce((select min(o.position) - 1 from oldest o where o.occurred_at >= $1::timestamptz),
             (select max(o.position) from oldest o),
             c.last_position)
  )::text as through
  from ledger_event_counter c`;

/** The last position retention may prune through for a cutoff, looking at the oldest `window` events. */
export async function retentionHorizon(db: SqlRunner, before: Date, window: number): Promise<number> {
  const [rows] = await db.run([{ text: RETENTION_HORIZON, params: [before.toISOString(), window] }]);
  return Number((rows?.[0] as { through?: string } | undefined)?.through ?? 0);
}
