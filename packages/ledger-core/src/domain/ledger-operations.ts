// The operations the ledger writes itself. No catalog may define them, so an entry's operation always
// says who wrote it: an app (its catalog's operations, and captures of its holds) or the ledger.
export const LEDGER_OPERATIONS = {
  /** A grant's unspent, unheld remainder stops counting at its expiry. */
  EXPIRY: "EXPIRY",
  /** Credits reserved by a hold (amount 0: the balance is unchanged, `held` grows). */
  HOLD: "HOLD",
  /** A hold released by its app (amount 0). */
  HOLD_RELEASE: "HOLD_RELEASE",
  /** A hold that reached its expiry while active (amount 0). */
  HOLD_EXPIRY: "HOLD_EXPIRY",
  REVERSAL: "REVERSAL",
  TRANSFER_OUT: "TRANSFER_OUT",
  TRANSFER_IN: "TRANSFER_IN",
  SUSPENSION: "SUSPENSION",
  REINSTATEMENT: "REINSTATEMENT",
} as const;

export type LedgerOperation = (typeof LEDGER_OPERATIONS)[keyof typeof LEDGER_OPERATIONS];

export const RESERVED_OPERATIONS: readonly string[] = Object.values(LEDGER_OPERATIONS);

/**
 * What may still be written for a suspended owner: what ends or undoes (releases, expiries, reversals)
 * and the reinstatement. Operations, holds, captures and transfers on either side are refused.
 */
const WRITABLE_WHILE_SUSPENDED: ReadonlySet<string> = new Set([
  LEDGER_OPERATIONS.EXPIRY,
  LEDGER_OPERATIONS.HOLD_RELEASE,
  LEDGER_OPERATIONS.HOLD_EXPIRY,
  LEDGER_OPERATIONS.REVERSAL,
  LEDGER_OPERATIONS.REINSTATEMENT,
]);

export function writableWhileSuspended(operation: string): boolean {
  return WRITABLE_WHILE_SUSPENDED.has(operation);
}

/** Entries no reversal may undo: the ledger's own, whatever undoes or moves, and status changes. */
const NOT_REVERSIBLE: ReadonlySet<string> = new Set([
  LEDGER_OPERATIONS.EXPIRY,
  LEDGER_OPERATIONS.HOLD,
  LEDGER_OPERATIONS.HOLD_RELEASE,
  LEDGER_OPERATIONS.HOLD_EXPIRY,
  LEDGER_OPERATIONS.REVERSAL,
  LEDGER_OPERATIONS.TRANSFER_OUT,
  LEDGER_OPERATIONS.TRANSFER_IN,
  LEDGER_OPERATIONS.SUSPENSION,
  LEDGER_OPERATIONS.REINSTATEMENT,
]);

/** Why an entry of this operation and amount cannot be reversed, or null when it can. */
export function whyNotReversible(operation: string, amount: number): string | null {
  if (NOT_REVERSIBLE.has(operation)) return `${operation} entries are not reversible`;
  if (amount === 0) return "it moved no credits";
  return null;
}
