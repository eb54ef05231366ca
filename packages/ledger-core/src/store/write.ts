// The SQL of group commit: a batch of operations is written with a fixed number of statements and round
// trips, whatever its size. Every statement takes its rows as arrays (unnest), so its text never changes
// and is prepared once per connection. Arrays go over the wire as text[] or bigint[] and are cast in SQL,
// which reads the same on postgres.js and on PGlite.
//
// A batch is, on postgres.js:
//   1. the nonce lookup (no transaction: entries never change once written);
//   2. BEGIN + lock the owners + read the limits already used, sent together;
//   3. one statement writing entries, postings, balances (and dropping unused rows) + COMMIT, together.
import {
  BalanceLimitExceededError,
  InsufficientBalanceError,
  LimitReachedError,
  NonceConflictError,
} from "../domain/errors.js";
import { BALANCE_MAX } from "../domain/limits.js";
import { pgErrorFacts, translateDriverError } from "./errors.js";
import { constraints, operationAccount, ownerAccount } from "./schema.js";
import type { Rows, SqlRunner, SqlTransaction, Statement } from "./sql-client.js";
import type { EntryRow } from "./reads.js";

export interface OwnerState {
  balance: number;
  lastSequence: number;
  /** The row was created by this transaction (the owner had no balance row before). */
  created: boolean;
}

export interface LimitKey {
  ownerId: string;
  operation: string;
  period: string;
}

export const limitKeyString = (k: LimitKey) => JSON.stringify([k.ownerId, k.operation, k.period]);

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

const ENTRY_COLUMNS = `id::text as id, app, operation, owner_id, amount::text as amount,
  balance_after::text as balance_after, sequence::text as sequence, nonce, limit_period,
  to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as created_at`;

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
  created_at: string;
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

const FIND_BY_NONCES = `select ${ENTRY_COLUMNS} from ledger_entries where app = $1 and nonce = any($2::text[])`;

/** The entries this app already wrote under any of these nonces. */
export async function findEntriesByNonces(
  db: SqlRunner,
  app: string,
  nonces: readonly string[],
): Promise<Map<string, EntryRow>> {
  if (nonces.length === 0) return new Map();
  const [rows = []] = await db.run([{ text: FIND_BY_NONCES, params: [app, [...new Set(nonces)]] }]);
  return new Map((rows as unknown as RawEntry[]).map((r) => [r.nonce, toEntryRow(r)]));
}

// Creates the missing balance rows and locks every owner's row, in one statement and in sorted order,
// so two batches (in this process or any other) always take their locks in the same order and cannot
// deadlock. Returns each owner's balance and newest sequence as of the lock.
const LOCK_OWNERS = `insert into ledger_balances as b (owner_id, balance, last_sequence, updated_at)
  select o, 0, 0, now() from unnest($1::text[]) as o order by o
  on conflict (owner_id) do update set owner_id = b.owner_id
  returning owner_id, balance::text as balance, last_sequence::text as last_sequence, (xmax = 0) as created`;

const USED_LIMITS = `select e.owner_id, e.operation, e.limit_period from ledger_entries e
  join unnest($1::text[], $2::text[], $3::text[]) as k(owner_id, operation, limit_period)
    on e.owner_id = k.owner_id and e.operation = k.operation and e.limit_period = k.limit_period
  where e.limit_period is not null`;

function usedLimitsStatement(keys: readonly LimitKey[]): Statement {
  return {
    text: USED_LIMITS,
    params: [keys.map((k) => k.ownerId), keys.map((k) => k.operation), keys.map((k) => k.period)],
  };
}

function toUsedLimits(rows: Rows): Set<string> {
  return new Set(
    (rows as { owner_id: string; operation: string; limit_period: string }[]).map((r) =>
      limitKeyString({ ownerId: r.owner_id, operation: r.operation, period: r.limit_period }),
    ),
  );
}

/** Which of these (owner, operation, period) limits are already used up. */
export async function findUsedLimits(db: SqlRunner, keys: readonly LimitKey[]): Promise<Set<string>> {
  if (keys.length === 0) return new Set();
  const [rows = []] = await db.run([usedLimitsStatement(keys)]);
  return toUsedLimits(rows);
}

/**
 * Locks every owner (creating missing balance rows) and, sent with it, reads which of the limit keys
 * are already used up: one round trip. The limits are read after the locks are held.
 */
export async function lockOwners(
  tx: SqlRunner,
  ownerIds: readonly string[],
  limitKeys: readonly LimitKey[] = [],
): Promise<{ owners: Map<string, OwnerState>; usedLimits: Set<string> }> {
  const sorted = [...new Set(ownerIds)].sort();
  const [locked = [], used = []] = await tx.run([
    { text: LOCK_OWNERS, params: [sorted] },
    ...(limitKeys.length > 0 ? [usedLimitsStatement(limitKeys)] : []),
  ]);
  const owners = new Map(
    (locked as { owner_id: string; balance: string; last_sequence: string; created: boolean }[]).map((r) => [
      r.owner_id,
      { balance: Number(r.balance), lastSequence: Number(r.last_sequence), created: r.created },
    ]),
  );
  return { owners, usedLimits: toUsedLimits(used) };
}

// One statement for the whole write. Data-modifying WITH clauses all run to completion; the postings
// join the inserted entries by nonce (unique per app, and a batch is one app's).
const WRITE_BATCH = `with e as (
    insert into ledger_entries (app, operation, owner_id, amount, balance_after, sequence, nonce, limit_period, created_at)
    select * from unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[],
                         $7::text[], $8::text[], $9::text[]::timestamptz[])
    returning ${ENTRY_COLUMNS}
  ), p as (
    insert into ledger_postings (entry_id, account, amount)
    select e.id::bigint, x.account, x.amount
    from e join unnest($7::text[], $10::text[], $11::text[]) as a(nonce, owner_account, operation_account)
      on a.nonce = e.nonce
    cross join lateral (values (a.owner_account, e.amount::bigint), (a.operation_account, -(e.amount::bigint)))
      as x(account, amount)
  ), b as (
    update ledger_balances as b
    set balance = v.balance, last_sequence = v.last_sequence, updated_at = $12::text::timestamptz
    from unnest($13::text[], $14::bigint[], $15::bigint[]) as v(owner_id, balance, last_sequence)
    where b.owner_id = v.owner_id
  ), d as (
    delete from ledger_balances where owner_id = any($16::text[]) and last_sequence = 0
  )
  select * from e`;

/**
 * Appends the batch's accepted entries with their postings (two each, summing to zero), moves each
 * touched owner's balance once, to its last entry's running balance, removes the balance rows this
 * transaction created for owners none of whose operations was accepted (a refused request leaves
 * nothing behind), and commits: one round trip. The caller holds every owner's lock.
 * Returns the written rows in the order of `entries`.
 * @throws NonceConflictError / LimitReachedError / InsufficientBalanceError / BalanceLimitExceededError
 *   when the database's own constraints refuse the batch: the caller then retries its operations one by one.
 */
export async function writeBatchAndCommit(
  tx: SqlTransaction,
  entries: readonly AcceptedEntry[],
  unusedOwners: readonly string[],
  now: Date,
): Promise<EntryRow[]> {
  if (entries.length === 0 && unusedOwners.length === 0) {
    await tx.runAndCommit([]);
    return [];
  }
  // Each owner's last entry in the batch carries its final running balance.
  const last = new Map<string, AcceptedEntry>();
  for (const e of entries) last.set(e.ownerId, e);
  const finals = [...last.values()];
  const str = (k: "amount" | "balanceAfter" | "sequence") => entries.map((e) => String(e[k]));
  let rows: Rows;
  try {
    [rows = []] = await tx.runAndCommit([
      {
        text: WRITE_BATCH,
        params: [
          entries.map((e) => e.app),
          entries.map((e) => e.operation),
          entries.map((e) => e.ownerId),
          str("amount"),
          str("balanceAfter"),
          str("sequence"),
          entries.map((e) => e.nonce),
          entries.map((e) => e.limitPeriod),
          entries.map((e) => e.createdAt.toISOString()),
          entries.map((e) => ownerAccount(e.ownerId)),
          entries.map((e) => operationAccount(e.operation)),
          now.toISOString(),
          finals.map((e) => e.ownerId),
          finals.map((e) => String(e.balanceAfter)),
          finals.map((e) => String(e.sequence)),
          [...unusedOwners],
        ],
      },
    ]);
  } catch (error) {
    throw translateBatchError(error, entries);
  }
  const byNonce = new Map((rows as unknown as RawEntry[]).map((r) => [r.nonce, toEntryRow(r)]));
  return entries.map((e) => {
    const row = byNonce.get(e.nonce);
    if (!row) throw new Error(`insert into ledger_entries returned no row for nonce ${e.nonce}`);
    return row;
  });
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
