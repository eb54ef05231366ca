// The ledger's reads, the bounds every database call runs under, and the mapping of stored rows to the
// ledger's entries. Writes are in write.ts (group commit).
import { and, desc, eq, gte, lt, lte, type SQL } from "drizzle-orm";
import { DatabaseUnavailableError } from "../domain/errors.js";
import type { LedgerEntry } from "../domain/types.js";
import type { LedgerDb } from "./client.js";
import { translateDriverError } from "./errors.js";
import { ledgerEntries } from "./schema.js";
import type { OpenGrant } from "../domain/grants.js";
import type { OwnerStatus } from "../engine/state.js";
import { sqlClientOf } from "./sql-client.js";

export type EntryRow = typeof ledgerEntries.$inferSelect;

const UTC_MS = (column: string) => `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/** The entry columns as the write path reads them back: numbers as text, times in UTC to the millisecond. */
export const ENTRY_COLUMNS = `id::text as id, app, operation, owner_id, amount::text as amount,
  balance_after::text as balance_after, sequence::text as sequence, nonce, limit_period,
  ${UTC_MS("created_at")} as created_at, ${UTC_MS("expires_at")} as expires_at`;

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
  };
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
  status: OwnerStatus;
  /** Open grants: something left and not expired by an entry yet (some may be past their expiry). */
  grants: OpenGrant[];
}

// One statement, so the owner's row and its grants come from one snapshot: read apart, an expiry
// committed between the two reads would count a remainder twice, or not at all.
const OWNER_WITH_GRANTS = `select o.balance::text as balance, o.status, g.sequence::text as sequence, g.app,
    g.amount::text as amount, g.remaining::text as remaining, ${UTC_MS("g.expires_at")} as expires_at
  from (values ($1::text)) as k(owner_id)
  left join ledger_owners o on o.owner_id = k.owner_id
  left join ledger_grants g on g.owner_id = k.owner_id and g.remaining > 0
  order by g.expires_at, g.sequence`;

/** A grant as the write path and the reads select it: numbers as text, the expiry in UTC. */
export interface RawGrant {
  sequence: string;
  app: string;
  amount: string;
  remaining: string;
  expires_at: string;
}

export function toOpenGrant(g: RawGrant): OpenGrant {
  return {
    sequence: Number(g.sequence),
    app: g.app,
    amount: Number(g.amount),
    remaining: Number(g.remaining),
    expiresAt: new Date(g.expires_at),
  };
}

/** A row of OWNER_WITH_GRANTS: the owner's columns, and a grant's, null when it has none. */
type RawOwnerGrant = { balance: string | null; status: OwnerStatus | null } & (
  RawGrant | { [K in keyof RawGrant]: null }
);

/** The owner's row and open grants, read in one snapshot; an owner with no entries has balance 0. */
export async function getOwner(db: LedgerDb, ownerId: string): Promise<OwnerRecord> {
  const [rows = []] = await sqlClientOf(db).run([{ text: OWNER_WITH_GRANTS, params: [ownerId] }]);
  const raw = rows as unknown as RawOwnerGrant[];
  const first = raw[0];
  return {
    balance: first?.balance == null ? 0 : Number(first.balance),
    status: first?.status ?? "active",
    grants: raw.flatMap((g) => (g.sequence === null ? [] : [toOpenGrant(g)])),
  };
}

// The running balance of the owner's last entry at or before the instant, less what had expired by then
// without an EXPIRY entry at or before that entry saying so (a remainder stops counting at its expiry,
// in history as now): each grant made by then and due by the instant, less what entries up to that one
// took from it (its EXPIRY among them, once written).
const BALANCE_AT = `with last as (
    select sequence, balance_after from ledger_entries
    where owner_id = $1 and created_at <= $2::text::timestamptz
    order by sequence desc limit 1)
  select (coalesce((select balance_after from last), 0) - coalesce((
    select sum(g.amount - coalesce((select sum(a.amount) from ledger_allocations a
                                    where a.owner_id = g.owner_id and a.grant_sequence = g.sequence
                                      and a.sequence <= l.sequence), 0))
    from ledger_grants g, last l
    where g.owner_id = $1 and g.sequence <= l.sequence and g.expires_at <= $2::text::timestamptz), 0))::text as balance`;

/** The balance at an instant: what counted right after the owner's last entry at or before it. */
export async function getBalanceAt(db: LedgerDb, ownerId: string, at: Date): Promise<number> {
  const [rows = []] = await sqlClientOf(db).run([{ text: BALANCE_AT, params: [ownerId, at.toISOString()] }]);
  const row = rows[0] as { balance: string } | undefined;
  return row ? Number(row.balance) : 0;
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
): Promise<EntryRow[]> {
  const conditions: (SQL | undefined)[] = [
    eq(ledgerEntries.ownerId, ownerId),
    beforeSequence === undefined ? undefined : lt(ledgerEntries.sequence, beforeSequence),
    filter.from ? gte(ledgerEntries.createdAt, filter.from) : undefined,
    filter.to ? lte(ledgerEntries.createdAt, filter.to) : undefined,
    filter.app === undefined ? undefined : eq(ledgerEntries.app, filter.app),
    filter.operation === undefined ? undefined : eq(ledgerEntries.operation, filter.operation),
  ];
  return db
    .select()
    .from(ledgerEntries)
    .where(and(...conditions))
    .orderBy(desc(ledgerEntries.sequence))
    .limit(limit);
}

export function toLedgerEntry(row: EntryRow): LedgerEntry {
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
  };
}

/** Storage holds bigint; the CHECK constraints keep every balance within 2^53-1, so this is exact. */
export function toSafeNumber(value: bigint): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new RangeError(`stored value ${value} is outside the safe integer range`);
  }
  return Number(value);
}
