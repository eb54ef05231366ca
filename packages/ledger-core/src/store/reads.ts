// The ledger's reads, the bounds every database call runs under, and the mapping of stored rows to the
// ledger's entries. Writes are in batch.ts (group commit).
import { and, desc, eq, lt } from "drizzle-orm";
import { DatabaseUnavailableError } from "../domain/errors.js";
import type { LedgerEntry } from "../domain/types.js";
import type { LedgerDb } from "./client.js";
import { translateDriverError } from "./errors.js";
import { ledgerBalances, ledgerEntries } from "./schema.js";

export type EntryRow = typeof ledgerEntries.$inferSelect;

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
