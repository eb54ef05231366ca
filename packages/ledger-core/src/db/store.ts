// The SQL of the ledger. Each function is one step of a read or a write; the service composes them
// inside one transaction. Constraint violations are turned into domain errors here, with the context
// of the statement that raised them.
import { and, desc, eq, lt } from "drizzle-orm";
import {
  BalanceLimitExceededError,
  DatabaseUnavailableError,
  InsufficientBalanceError,
  LimitReachedError,
  NonceConflictError,
} from "../domain/errors.js";
import { BALANCE_MAX } from "../domain/limits.js";
import type { LedgerEntry } from "../domain/types.js";
import type { LedgerDb } from "./client.js";
import { pgErrorFacts, translateDriverError } from "./errors.js";
import {
  constraints,
  ledgerBalances,
  ledgerEntries,
  ledgerPostings,
  operationAccount,
  ownerAccount,
} from "./schema.js";

export type EntryRow = typeof ledgerEntries.$inferSelect;

export interface LockedBalance {
  balance: number;
  lastSequence: number;
}

export interface NewEntry {
  app: string;
  operation: string;
  ownerId: string;
  /** Signed amount applied to the owner. */
  amount: number;
  nonce: string;
  limitPeriod: string | null;
  limitKind: string | null;
  createdAt: Date;
  balanceAfter: number;
  sequence: number;
}

/** How long one read or write may take, end to end, before its caller is told the database is unavailable. */
export const OPERATION_TIMEOUT_MS_DEFAULT = 5_000;

/**
 * Bounds a database call: past timeoutMs the caller gets DatabaseUnavailableError instead of waiting on
 * a database that stopped answering. The call itself may still complete later, which is why a write's
 * caller is told its outcome is unknown and to retry with the same nonce (a retry never applies twice).
 */
async function withDeadline<T>(work: Promise<T>, timeoutMs: number): Promise<T> {
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

/**
 * Runs fn in one transaction. Lost connections and deadlines surface as DatabaseUnavailableError;
 * domain errors thrown by fn (or translated by the store) roll the transaction back and pass through.
 */
export async function inTransaction<T>(
  db: LedgerDb,
  fn: (tx: LedgerDb) => Promise<T>,
  timeoutMs = OPERATION_TIMEOUT_MS_DEFAULT,
): Promise<T> {
  try {
    return await withDeadline(
      db.transaction((tx) => fn(tx)),
      timeoutMs,
    );
  } catch (error) {
    throw translateDriverError(error);
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

/**
 * Creates the owner's balance row if missing, then locks it for the rest of the transaction. Every
 * write for one owner queues here, so its balance check and its update can never interleave with
 * another write's, in this process or any other.
 */
export async function lockOwnerBalance(tx: LedgerDb, ownerId: string, now: Date): Promise<LockedBalance> {
  await tx
    .insert(ledgerBalances)
    .values({ ownerId, balance: 0n, lastSequence: 0, updatedAt: now })
    .onConflictDoNothing({ target: ledgerBalances.ownerId });
  const rows = await tx
    .select({ balance: ledgerBalances.balance, lastSequence: ledgerBalances.lastSequence })
    .from(ledgerBalances)
    .where(eq(ledgerBalances.ownerId, ownerId))
    .for("update");
  const row = rows[0];
  // The insert above guarantees the row, and nothing deletes balance rows.
  if (!row) throw new Error(`balance row for ${ownerId} vanished inside its own transaction`);
  return { balance: toSafeNumber(row.balance), lastSequence: row.lastSequence };
}

export async function findEntryByNonce(
  db: LedgerDb,
  app: string,
  nonce: string,
): Promise<EntryRow | undefined> {
  const rows = await db
    .select()
    .from(ledgerEntries)
    .where(and(eq(ledgerEntries.app, app), eq(ledgerEntries.nonce, nonce)))
    .limit(1);
  return rows[0];
}

/**
 * Appends the entry, its two balanced postings, and moves the owner's balance projection, all in the
 * caller's transaction (which must hold the owner's lock from lockOwnerBalance).
 * @throws NonceConflictError the app already used this nonce (the caller decides: replay or conflict)
 * @throws LimitReachedError the operation's limit for this owner and period is used up
 * @throws InsufficientBalanceError / BalanceLimitExceededError the database's own balance checks refused
 */
export async function appendEntry(tx: LedgerDb, e: NewEntry): Promise<EntryRow> {
  try {
    const [row] = await tx
      .insert(ledgerEntries)
      .values({
        app: e.app,
        operation: e.operation,
        ownerId: e.ownerId,
        amount: BigInt(e.amount),
        balanceAfter: BigInt(e.balanceAfter),
        sequence: e.sequence,
        nonce: e.nonce,
        limitPeriod: e.limitPeriod,
        createdAt: e.createdAt,
      })
      .returning();
    if (!row) throw new Error("insert into ledger_entries returned no row");
    await tx.insert(ledgerPostings).values([
      { entryId: row.id, account: ownerAccount(e.ownerId), amount: BigInt(e.amount) },
      { entryId: row.id, account: operationAccount(e.operation), amount: BigInt(-e.amount) },
    ]);
    await tx
      .update(ledgerBalances)
      .set({ balance: BigInt(e.balanceAfter), lastSequence: e.sequence, updatedAt: e.createdAt })
      .where(eq(ledgerBalances.ownerId, e.ownerId));
    return row;
  } catch (error) {
    throw translateAppendError(error, e);
  }
}

function translateAppendError(error: unknown, e: NewEntry): unknown {
  const { code, constraint } = pgErrorFacts(error);
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

export async function getBalance(db: LedgerDb, ownerId: string): Promise<number> {
  const rows = await db
    .select({ balance: ledgerBalances.balance })
    .from(ledgerBalances)
    .where(eq(ledgerBalances.ownerId, ownerId));
  return rows[0] ? toSafeNumber(rows[0].balance) : 0;
}

/** The owner's entries, newest first, strictly older than beforeSequence when given. */
export async function listEntries(
  db: LedgerDb,
  ownerId: string,
  beforeSequence: number | undefined,
  limit: number,
): Promise<EntryRow[]> {
  return db
    .select()
    .from(ledgerEntries)
    .where(
      beforeSequence === undefined
        ? eq(ledgerEntries.ownerId, ownerId)
        : and(eq(ledgerEntries.ownerId, ownerId), lt(ledgerEntries.sequence, beforeSequence)),
    )
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
  };
}

/** Storage holds bigint; the CHECK constraints keep every balance within 2^53-1, so this is exact. */
function toSafeNumber(value: bigint): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new RangeError(`stored value ${value} is outside the safe integer range`);
  }
  return Number(value);
}
