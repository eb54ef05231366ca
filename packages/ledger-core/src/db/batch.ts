// The SQL of group commit: one transaction writes a whole batch of operations with a fixed number of
// statements, whatever the batch's size. Every statement takes its rows as arrays (unnest), so its text
// never changes and postgres.js prepares it once. Arrays go over the wire as text[] or bigint[] and are
// cast in SQL: drizzle replaces postgres.js's serializers for date and time types, which then cannot
// serialize arrays of them.
import { sql } from "drizzle-orm";
import {
  BalanceLimitExceededError,
  InsufficientBalanceError,
  LimitReachedError,
  NonceConflictError,
} from "../domain/errors.js";
import { BALANCE_MAX } from "../domain/limits.js";
import { queryRows, type LedgerDb } from "./client.js";
import { pgErrorFacts, translateDriverError } from "./errors.js";
import { constraints, operationAccount, ownerAccount } from "./schema.js";
import type { EntryRow } from "./store.js";

export interface OwnerState {
  balance: number;
  lastSequence: number;
  /** The row was created by this transaction (the owner had no balance row before). */
  created: boolean;
}

/**
 * Creates the missing balance rows and locks every owner's row, in one statement and in sorted order,
 * so two batches (in this process or any other) always take their locks in the same order and cannot
 * deadlock. Returns each owner's balance and newest sequence as of the lock.
 */
export async function lockOwners(
  tx: LedgerDb,
  ownerIds: readonly string[],
): Promise<Map<string, OwnerState>> {
  const sorted = [...new Set(ownerIds)].sort();
  const rows = await queryRows<{
    owner_id: string;
    balance: string;
    last_sequence: string;
    created: boolean;
  }>(
    tx,
    sql`insert into ledger_balances as b (owner_id, balance, last_sequence, updated_at)
        select o, 0, 0, now() from unnest(${sql.param(sorted)}::text[]) as o order by o
        on conflict (owner_id) do update set owner_id = b.owner_id
        returning owner_id, balance::text as balance, last_sequence::text as last_sequence, (xmax = 0) as created`,
  );
  return new Map(
    rows.map((r) => [
      r.owner_id,
      { balance: Number(r.balance), lastSequence: Number(r.last_sequence), created: r.created },
    ]),
  );
}

/**
 * Removes balance rows this transaction created for owners none of whose operations was accepted: a
 * refused request leaves nothing behind, not even an empty balance row.
 */
export async function dropUnusedOwners(tx: LedgerDb, ownerIds: readonly string[]): Promise<void> {
  if (ownerIds.length === 0) return;
  await tx.execute(
    sql`delete from ledger_balances where owner_id = any(${sql.param([...ownerIds])}::text[]) and last_sequence = 0`,
  );
}

interface RawEntry {
  id: string;
  app: string;
  operation: string;
  owner_id: string;
  amount: string;
  balance_after: string;
  sequence: string;
  nonce: string;
  limit_period: string | null;
  created_at: string | Date;
}

function toEntryRow(r: RawEntry): EntryRow {
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
  };
}

const ENTRY_COLUMNS = sql`id::text as id, app, operation, owner_id, amount::text as amount,
  balance_after::text as balance_after, sequence::text as sequence, nonce, limit_period,
  to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as created_at`;

/** The entries this app already wrote under any of these nonces. */
export async function findEntriesByNonces(
  tx: LedgerDb,
  app: string,
  nonces: readonly string[],
): Promise<Map<string, EntryRow>> {
  if (nonces.length === 0) return new Map();
  const rows = await queryRows<RawEntry>(
    tx,
    sql`select ${ENTRY_COLUMNS} from ledger_entries
        where app = ${app} and nonce = any(${sql.param([...new Set(nonces)])}::text[])`,
  );
  return new Map(rows.map((r) => [r.nonce, toEntryRow(r)]));
}

export interface LimitKey {
  ownerId: string;
  operation: string;
  period: string;
}

export const limitKeyString = (k: LimitKey) => JSON.stringify([k.ownerId, k.operation, k.period]);

/** Which of these (owner, operation, period) limits are already used up. */
export async function findUsedLimits(tx: LedgerDb, keys: readonly LimitKey[]): Promise<Set<string>> {
  if (keys.length === 0) return new Set();
  const rows = await queryRows<{ owner_id: string; operation: string; limit_period: string }>(
    tx,
    sql`select e.owner_id, e.operation, e.limit_period from ledger_entries e
        join unnest(${sql.param(keys.map((k) => k.ownerId))}::text[], ${sql.param(keys.map((k) => k.operation))}::text[],
                    ${sql.param(keys.map((k) => k.period))}::text[]) as k(owner_id, operation, limit_period)
          on e.owner_id = k.owner_id and e.operation = k.operation and e.limit_period = k.limit_period
        where e.limit_period is not null`,
  );
  return new Set(
    rows.map((r) => limitKeyString({ ownerId: r.owner_id, operation: r.operation, period: r.limit_period })),
  );
}

export interface AcceptedEntry {
  app: string;
  operation: string;
  ownerId: string;
  amount: number;
  balanceAfter: number;
  sequence: number;
  nonce: string;
  limitPeriod: string | null;
  limitKind: string | null;
  createdAt: Date;
}

/**
 * Appends the batch's accepted entries with their postings (two each, summing to zero) and moves each
 * touched owner's balance once, to its last entry's running balance. The caller holds every owner's lock.
 * @throws NonceConflictError / LimitReachedError / InsufficientBalanceError / BalanceLimitExceededError
 *   when the database's own constraints refuse the batch: the caller then retries its operations one by one.
 */
export async function writeEntries(
  tx: LedgerDb,
  entries: readonly AcceptedEntry[],
  now: Date,
): Promise<EntryRow[]> {
  if (entries.length === 0) return [];
  try {
    const col = <K extends keyof AcceptedEntry>(k: K) => sql.param(entries.map((e) => e[k]));
    const rows = await queryRows<RawEntry>(
      tx,
      sql`insert into ledger_entries (app, operation, owner_id, amount, balance_after, sequence, nonce, limit_period, created_at)
          select * from unnest(${col("app")}::text[], ${col("operation")}::text[], ${col("ownerId")}::text[],
                               ${sql.param(entries.map((e) => String(e.amount)))}::bigint[],
                               ${sql.param(entries.map((e) => String(e.balanceAfter)))}::bigint[],
                               ${sql.param(entries.map((e) => String(e.sequence)))}::bigint[],
                               ${col("nonce")}::text[], ${col("limitPeriod")}::text[],
                               ${sql.param(entries.map((e) => e.createdAt.toISOString()))}::text[]::timestamptz[])
          returning ${ENTRY_COLUMNS}`,
    );
    const byNonce = new Map(rows.map((r) => [r.nonce, toEntryRow(r)]));
    const inserted = entries.map((e) => {
      const row = byNonce.get(e.nonce);
      if (!row) throw new Error(`insert into ledger_entries returned no row for nonce ${e.nonce}`);
      return row;
    });
    await tx.execute(
      sql`insert into ledger_postings (entry_id, account, amount)
          select * from unnest(${sql.param(inserted.flatMap((r) => [String(r.id), String(r.id)]))}::bigint[],
                               ${sql.param(inserted.flatMap((r) => [ownerAccount(r.ownerId), operationAccount(r.operation)]))}::text[],
                               ${sql.param(inserted.flatMap((r) => [String(r.amount), String(-r.amount)]))}::bigint[])`,
    );
    // Each owner's last entry in the batch carries its final running balance.
    const last = new Map<string, AcceptedEntry>();
    for (const e of entries) last.set(e.ownerId, e);
    const finals = [...last.values()];
    await tx.execute(
      sql`update ledger_balances as b
          set balance = v.balance, last_sequence = v.last_sequence, updated_at = ${now.toISOString()}::timestamptz
          from unnest(${sql.param(finals.map((e) => e.ownerId))}::text[],
                      ${sql.param(finals.map((e) => String(e.balanceAfter)))}::bigint[],
                      ${sql.param(finals.map((e) => String(e.sequence)))}::bigint[]) as v(owner_id, balance, last_sequence)
          where b.owner_id = v.owner_id`,
    );
    return inserted;
  } catch (error) {
    throw translateBatchError(error, entries);
  }
}

function translateBatchError(error: unknown, entries: readonly AcceptedEntry[]): unknown {
  const { code, constraint } = pgErrorFacts(error);
  // With one entry the error is that entry's; with more, any of them may be the cause, and the caller
  // retries one by one to find out. The first entry stands in for the message.
  const e = entries[0];
  if (!e) return translateDriverError(error);
  if (code === "23505" && constraint === constraints.appNonce) return new NonceConflictError(e.nonce);
  if (code === "23505" && constraint === constraints.limitPeriod) {
    return new LimitReachedError(e.ownerId, e.operation, e.limitKind ?? "once", e.limitPeriod ?? "");
  }
  if (code === "23514" && constraint === constraints.balanceNonNegative) {
    return new InsufficientBalanceError(e.ownerId, e.balanceAfter - e.amount, e.amount);
  }
  if (code === "23514" && constraint === constraints.balanceMax) {
    return new BalanceLimitExceededError(e.ownerId, e.balanceAfter - e.amount, e.amount, BALANCE_MAX);
  }
  return translateDriverError(error);
}
