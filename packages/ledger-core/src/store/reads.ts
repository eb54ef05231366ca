// The ledger's reads, the bounds every database call runs under, and the mapping of stored rows to the
// ledger's entries. Writes are in write.ts (group commit).
import { and, desc, eq, getTableColumns, gte, lt, lte, sql, type SQL } from "drizzle-orm";
import { DatabaseUnavailableError } from "../domain/errors.js";
import type { EntrySummary, LedgerEntry } from "../domain/types.js";
import type { LedgerDb } from "./client.js";
import { translateDriverError } from "./errors.js";
import { ledgerEntries } from "./schema.js";
import type { Draw, OpenGrant } from "../domain/grants.js";
import type { ActiveHold } from "../domain/holds.js";
import type { NewEntry, OwnerStatus } from "../engine/state.js";
import { sqlClientOf } from "./sql-client.js";

export type EntryRow = typeof ledgerEntries.$inferSelect;

export const UTC_MS = (column: string) =>
  `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/** An active hold's columns as json_build_object arguments (table alias h). */
export const HOLD_JSON_FIELDS = `'id', h.id, 'app', h.app, 'owner_id', h.owner_id, 'operation', h.operation,
  'amount', h.amount::text, 'expires_at', ${UTC_MS("h.expires_at")}, 'created_at', ${UTC_MS("h.created_at")},
  'sequence', h.sequence::text, 'draws', h.draws`;

/** The entry columns as the write path reads them back: numbers as text, times in UTC to the millisecond. */
export const entryColumns = (t = "") =>
  `${t}id::text as id, ${t}app, ${t}operation, ${t}owner_id, ${t}amount::text as amount,
  ${t}balance_after::text as balance_after, ${t}held_after::text as held_after, ${t}sequence::text as sequence,
  ${t}nonce, ${t}limit_period, ${UTC_MS(`${t}created_at`)} as created_at, ${UTC_MS(`${t}expires_at`)} as expires_at,
  ${t}hold_id, ${t}reverses::text as reverses, ${t}counterparty_owner_id, ${t}reason, ${t}actor`;
export const ENTRY_COLUMNS = entryColumns();

export interface RawEntry {
  id: string;
  app: string;
  operation: string;
  owner_id: string;
  amount: string;
  balance_after: string;
  sequence: string;
  nonce: string;
  limit_period: string | null;
  created_at: string;
  expires_at: string | null;
  held_after: string;
  hold_id: string | null;
  reverses: string | null;
  counterparty_owner_id: string | null;
  reason: string | null;
  actor: string | null;
}

export function toEntryRow(r: RawEntry): EntryRow {
  return {
    id: Number(r.id),
    app: r.app,
    operation: r.operation,
    ownerId: r.owner_id,
    amount: BigInt(r.amount),
    balanceAfter: BigInt(r.balance_after),
    sequence: Number(r.sequence),
    nonce: r.nonce,
    limitPeriod: r.limit_period,
    createdAt: new Date(r.created_at),
    expiresAt: r.expires_at === null ? null : new Date(r.expires_at),
    heldAfter: BigInt(r.held_after),
    holdId: r.hold_id,
    reverses: r.reverses === null ? null : Number(r.reverses),
    counterpartyOwnerId: r.counterparty_owner_id,
    reason: r.reason,
    actor: r.actor,
  };
}

/** What a hold was made as: the columns of its row that never change. */
export interface HoldFacts {
  id: string;
  ownerId: string;
  operation: string;
  amount: number;
  expiresAt: Date;
  createdAt: Date;
}

/** An entry found under a nonce, with the hold it belongs to (its facts as made), if any. */
export type RecordedEntry = EntryRow & { hold: HoldFacts | null };

/** The hold columns read beside an entry (null without a hold). */
export const HOLD_FACT_COLUMNS = (
  t: string,
) => `${t}owner_id as hold_owner_id, ${t}operation as hold_operation,
  ${t}amount::text as hold_amount, ${UTC_MS(`${t}expires_at`)} as hold_expires_at,
  ${UTC_MS(`${t}created_at`)} as hold_created_at`;

export interface RawHoldFacts {
  hold_owner_id: string | null;
  hold_operation: string | null;
  hold_amount: string | null;
  hold_expires_at: string | null;
  hold_created_at: string | null;
}

export function toRecordedEntry(r: RawEntry & RawHoldFacts): RecordedEntry {
  const row = toEntryRow(r);
  const hold =
    row.holdId !== null && r.hold_operation !== null
      ? {
          id: row.holdId,
          ownerId: r.hold_owner_id ?? row.ownerId,
          operation: r.hold_operation,
          amount: Number(r.hold_amount),
          expiresAt: new Date(r.hold_expires_at ?? 0),
          createdAt: new Date(r.hold_created_at ?? 0),
        }
      : null;
  return { ...row, hold };
}

/** How long one read or write may take, end to end, before its caller is told the database is unavailable. */
export const OPERATION_TIMEOUT_MS_DEFAULT = 5_000;

/**
 * Bounds a database call: past timeoutMs the caller gets DatabaseUnavailableError instead of waiting on
 * a database that stopped answering. The call itself may still complete later, which is why a write's
 * caller is told its outcome is unknown and to retry with the same nonce (a retry never applies twice).
 */
export async function withDeadline<T>(work: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new DatabaseUnavailableError(new Error(`no answer within ${timeoutMs} ms`))),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs a read, bounded like a write, with lost connections surfacing as DatabaseUnavailableError. */
export async function read<T>(fn: () => Promise<T>, timeoutMs = OPERATION_TIMEOUT_MS_DEFAULT): Promise<T> {
  try {
    return await withDeadline(fn(), timeoutMs);
  } catch (error) {
    throw translateDriverError(error);
  }
}

export interface OwnerRecord {
  balance: number;
  /** The sum of its holds active in storage. */
  held: number;
  status: OwnerStatus;
  /** Open grants: something left (some may be past their expiry, not yet recorded). */
  grants: OpenGrant[];
  /** Holds active in storage (some may be past their expiry, not yet recorded). */
  holds: ActiveHold[];
}

// One statement, so the owner's row, its grants and its holds come from one snapshot: read apart, an
// expiry or a capture committed between two reads would count credits twice, or not at all.
const OWNER_STATE = `select o.balance::text as balance, o.held::text as held, o.status,
    coalesce((select json_agg(json_build_object('sequence', g.sequence::text, 'part', g.part, 'app', g.app,
        'amount', g.amount::text, 'remaining', g.remaining::text, 'expires_at', ${UTC_MS("g.expires_at")})
        order by g.expires_at, g.sequence, g.part)
      from ledger_grants g where g.owner_id = k.owner_id and g.remaining > 0), '[]') as grants,
    coalesce((select json_agg(json_build_object(${HOLD_JSON_FIELDS})) from ledger_holds h
      where h.owner_id = k.owner_id and h.status = 'active'), '[]') as holds
  from (values ($1::text)) as k(owner_id)
  left join ledger_owners o on o.owner_id = k.owner_id`;

/** A grant as the write path and the reads select it: numbers as text, the expiry in UTC. */
export interface RawGrant {
  sequence: string;
  part: number | string;
  app: string;
  amount: string;
  remaining: string;
  expires_at: string;
}

export function toOpenGrant(g: RawGrant): OpenGrant {
  return {
    sequence: Number(g.sequence),
    part: Number(g.part),
    app: g.app,
    amount: Number(g.amount),
    remaining: Number(g.remaining),
    expiresAt: new Date(g.expires_at),
  };
}

/** An active hold as the write path and the reads select it. */
export interface RawHold {
  id: string;
  app: string;
  owner_id: string;
  operation: string;
  amount: string;
  expires_at: string;
  created_at: string;
  sequence: string;
  draws: RawDraws | string;
}

/** A json/jsonb value as the drivers give it: parsed already (postgres.js) or as text (json columns). */
export const parseJson = <T>(v: unknown): T => (typeof v === "string" ? (JSON.parse(v) as T) : (v as T));

/** Draws stored or aggregated as [grant sequence, grant part, amount] triples (numbers or their text). */
export type RawDraws = [number | string, number | string, number | string][];

export function toDraws(raw: unknown): Draw[] {
  return parseJson<RawDraws>(raw).map(([seq, part, amount]) => ({
    grantSequence: Number(seq),
    grantPart: Number(part),
    amount: Number(amount),
  }));
}

export function toActiveHold(h: RawHold): ActiveHold & { sequence: number } {
  return {
    id: h.id,
    app: h.app,
    ownerId: h.owner_id,
    operation: h.operation,
    amount: Number(h.amount),
    expiresAt: new Date(h.expires_at),
    createdAt: new Date(h.created_at),
    sequence: Number(h.sequence),
    draws: toDraws(h.draws),
  };
}

/** The owner's row, open grants and active holds, read in one snapshot; an owner with no entries has balance 0. */
export async function getOwner(db: LedgerDb, ownerId: string): Promise<OwnerRecord> {
  const [rows = []] = await sqlClientOf(db).run([{ text: OWNER_STATE, params: [ownerId] }]);
  const row = rows[0] as
    | {
        balance: string | null;
        held: string | null;
        status: OwnerStatus | null;
        grants: unknown;
        holds: unknown;
      }
    | undefined;
  return {
    balance: row?.balance == null ? 0 : Number(row.balance),
    held: row?.held == null ? 0 : Number(row.held),
    status: row?.status ?? "active",
    grants: parseJson<RawGrant[]>(row?.grants ?? []).map(toOpenGrant),
    holds: parseJson<RawHold[]>(row?.holds ?? []).map(toActiveHold),
  };
}

// The running balance of the owner's last entry at or before the instant, less what had expired by then
// without an EXPIRY entry at or before that entry saying so (a remainder stops counting at its expiry,
// in history as now): each grant made by then and due by the instant, less what entries up to that one
// took from it (its EXPIRY among them, once written), less what holds live at the instant held of it.
const BALANCE_AT = `with last as (
    select sequence, balance_after from ledger_entries
    where owner_id = $1 and created_at <= $2::text::timestamptz
    order by sequence desc limit 1)
  select (coalesce((select balance_after from last), 0) - coalesce((
    select sum(greatest(0, g.amount
      - coalesce((select sum(a.amount) from ledger_allocations a
                  where a.owner_id = g.owner_id and a.grant_sequence = g.sequence and a.grant_part = g.part
                    and a.sequence <= l.sequence), 0)
      - coalesce((select sum((d->>2)::bigint) from ledger_holds h, jsonb_array_elements(h.draws) d
                  where h.owner_id = g.owner_id and h.sequence <= l.sequence
                    and (h.end_sequence is null or h.end_sequence > l.sequence)
                    and h.expires_at > $2::text::timestamptz
                    and (d->>0)::bigint = g.sequence and (d->>1)::int = g.part), 0)))
    from ledger_grants g, last l
    where g.owner_id = $1 and g.sequence <= l.sequence and g.expires_at <= $2::text::timestamptz), 0))::text as balance`;

/** The balance at an instant: what counted right after the owner's last entry at or before it. */
export async function getBalanceAt(db: LedgerDb, ownerId: string, at: Date): Promise<number> {
  const [rows = []] = await sqlClientOf(db).run([{ text: BALANCE_AT, params: [ownerId, at.toISOString()] }]);
  const row = rows[0] as { balance: string } | undefined;
  return row ? Number(row.balance) : 0;
}

// Two running balances and what lies between them. Each instant is resolved to the owner's last entry at or
// before it, as BALANCE_AT does (by sequence, the order balances ran in), and the groups are the entries
// after the first of those up to the second: so their amounts add up to the difference of the two
// balances exactly, with no entry counted on both sides or on neither. One statement: one snapshot.
// Groups are ordered by code point (collate "C"), the same on every server whatever its locale.
const SUMMARY = `with bounds as (
    select
      coalesce((select sequence from ledger_entries where owner_id = $1 and created_at <= $2::text::timestamptz
                order by sequence desc limit 1), 0) as s_from,
      coalesce((select sequence from ledger_entries where owner_id = $1 and created_at <= $3::text::timestamptz
                order by sequence desc limit 1), 0) as s_to)
  select
    (select balance_after::text from ledger_entries e, bounds b where e.owner_id = $1 and e.sequence = b.s_from)
      as balance_from,
    (select balance_after::text from ledger_entries e, bounds b where e.owner_id = $1 and e.sequence = b.s_to)
      as balance_to,
    (select coalesce(json_agg(json_build_object('app', g.app, 'operation', g.operation, 'entries', g.n::text,
                                                'amount', g.amount::text) order by g.app collate "C", g.operation collate "C"), '[]')
       from (select e.app, e.operation, count(*) as n, sum(e.amount) as amount
               from ledger_entries e, bounds b
              where e.owner_id = $1 and e.sequence > b.s_from and e.sequence <= b.s_to
              group by e.app, e.operation) g) as groups`;

/** The running balances at `from` and `to` (`from` not after `to`) and the entries between, by app and operation. */
export async function getEntrySummary(
  db: LedgerDb,
  ownerId: string,
  from: Date,
  to: Date,
): Promise<{ balanceFrom: number; balanceTo: number; groups: EntrySummary["groups"] }> {
  const [rows = []] = await sqlClientOf(db).run([
    { text: SUMMARY, params: [ownerId, from.toISOString(), to.toISOString()] },
  ]);
  const row = rows[0] as
    { balance_from: string | null; balance_to: string | null; groups: unknown } | undefined;
  const groups = parseJson<{ app: string; operation: string; entries: string; amount: string }[]>(
    row?.groups ?? [],
  );
  return {
    balanceFrom: Number(row?.balance_from ?? 0),
    balanceTo: Number(row?.balance_to ?? 0),
    groups: groups.map((g) => ({
      app: g.app,
      operation: g.operation,
      entries: Number(g.entries),
      amount: Number(g.amount),
    })),
  };
}

export interface EntryFilter {
  /** Entries created at or after this instant. */
  from?: Date | undefined;
  /** Entries created at or before this instant. */
  to?: Date | undefined;
  app?: string | undefined;
  operation?: string | undefined;
}

/** The owner's entries, newest first, strictly older than beforeSequence when given, matching the filter. */
export async function listEntries(
  db: LedgerDb,
  ownerId: string,
  beforeSequence: number | undefined,
  limit: number,
  filter: EntryFilter = {},
): Promise<(EntryRow & { reversedAmount: number })[]> {
  const conditions: (SQL | undefined)[] = [
    eq(ledgerEntries.ownerId, ownerId),
    beforeSequence === undefined ? undefined : lt(ledgerEntries.sequence, beforeSequence),
    filter.from ? gte(ledgerEntries.createdAt, filter.from) : undefined,
    filter.to ? lte(ledgerEntries.createdAt, filter.to) : undefined,
    filter.app === undefined ? undefined : eq(ledgerEntries.app, filter.app),
    filter.operation === undefined ? undefined : eq(ledgerEntries.operation, filter.operation),
  ];
  const rows = await db
    .select({
      ...getTableColumns(ledgerEntries),
      // Served by ledger_entries_reverses; an entry never reversed costs one probe of an index of reversals.
      // The outer row's id is named with its table: drizzle writes ${ledgerEntries.id} as a bare "id" in a
      // one-table select, which inside the subquery would be r's own.
      reversedAmount: sql<string>`(select coalesce(abs(sum(r.amount)), 0)::text from ledger_entries r where r.reverses = ledger_entries.id)`,
    })
    .from(ledgerEntries)
    .where(and(...conditions))
    .orderBy(desc(ledgerEntries.sequence))
    .limit(limit);
  return rows.map((r) => ({ ...r, reversedAmount: Number(r.reversedAmount) }));
}

/** An entry a batch decided, as its row will read once written (`id`: the database's, 0 until then). */
export function entryRowOf(entry: NewEntry, id = 0): EntryRow {
  return {
    id,
    app: entry.app,
    operation: entry.operation,
    ownerId: entry.ownerId,
    amount: BigInt(entry.amount),
    balanceAfter: BigInt(entry.balanceAfter),
    heldAfter: BigInt(entry.heldAfter),
    sequence: entry.sequence,
    nonce: entry.nonce,
    limitPeriod: entry.limitPeriod,
    createdAt: entry.createdAt,
    expiresAt: entry.expiresAt,
    holdId: entry.holdId,
    reverses: entry.reverses,
    counterpartyOwnerId: entry.counterpartyOwnerId,
    reason: entry.reason,
    actor: entry.actor,
  };
}

/** An entry as the ledger reports it; `reversedAmount`: what reversals of it have given back so far. */
export function toLedgerEntry(row: EntryRow, reversedAmount = 0): LedgerEntry {
  return {
    id: row.id,
    app: row.app,
    operation: row.operation,
    owner_id: row.ownerId,
    amount: toSafeNumber(row.amount),
    balance_after: toSafeNumber(row.balanceAfter),
    sequence: row.sequence,
    nonce: row.nonce,
    created_at: row.createdAt.toISOString(),
    ...(row.expiresAt ? { expires_at: row.expiresAt.toISOString() } : {}),
    ...(row.holdId !== null ? { hold_id: row.holdId } : {}),
    ...(row.reverses !== null ? { reverses: row.reverses } : {}),
    ...(reversedAmount > 0 ? { reversed_amount: reversedAmount } : {}),
    ...(row.counterpartyOwnerId !== null ? { counterparty_owner_id: row.counterpartyOwnerId } : {}),
    ...(row.reason !== null ? { reason: row.reason } : {}),
    ...(row.actor !== null ? { actor: row.actor } : {}),
  };
}

/** The available credits right after an entry. */
export const availableAfter = (row: EntryRow) => toSafeNumber(row.balanceAfter - row.heldAfter);

/** Storage holds bigint; the CHECK constraints keep every balance within 2^53-1, so this is exact. */
export function toSafeNumber(value: bigint): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new RangeError(`stored value ${value} is outside the safe integer range`);
  }
  return Number(value);
}
