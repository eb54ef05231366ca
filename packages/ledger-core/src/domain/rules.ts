// The pure rules of a write: which signed amount an operation moves, which limit period it falls in,
// and whether a balance may take it. No I/O here; the service applies these under a row lock.
import {
  AmountMismatchError,
  AmountOutOfRangeError,
  AmountRequiredError,
  BalanceLimitExceededError,
  InsufficientBalanceError,
} from "./errors.js";
import { BALANCE_MAX } from "./limits.js";
import type { OperationDefinition, OperationLimit } from "./operations.js";

/**
 * The signed amount an operation applies to the owner's balance.
 * `requested` is the magnitude the caller sent (already validated as a non-negative integer).
 * @throws AmountMismatchError  a fixed operation was sent a different magnitude
 * @throws AmountRequiredError  a variable operation was sent no amount
 * @throws AmountOutOfRangeError a variable operation was sent an amount outside its bounds
 */
export function resolveAmount(name: string, def: OperationDefinition, requested: number | undefined): number {
  if (def.kind === "fixed") {
    if (requested !== undefined && requested !== Math.abs(def.amount)) {
      throw new AmountMismatchError(name, Math.abs(def.amount), requested);
    }
    return def.amount;
  }
  if (requested === undefined) throw new AmountRequiredError(name, def.min, def.max);
  if (requested < def.min || requested > def.max) {
    throw new AmountOutOfRangeError(name, def.min, def.max, requested);
  }
  return def.direction === "debit" ? -requested : requested;
}

/** The period a limited operation is counted in: "once" for once-per-owner, the UTC date for daily. */
export function limitPeriod(limit: OperationLimit | undefined, now: Date): string | null {
  if (limit === undefined) return null;
  return limit === "once" ? "once" : now.toISOString().slice(0, 10);
}

/**
 * The balance after applying `amount`. Bounds are checked before the arithmetic, so no intermediate
 * value ever leaves the safe-integer range.
 * @throws InsufficientBalanceError the balance would go below zero
 * @throws BalanceLimitExceededError the balance would pass BALANCE_MAX
 */
export function nextBalance(ownerId: string, balance: number, amount: number): number {
  if (amount < 0 && balance < -amount) throw new InsufficientBalanceError(ownerId, balance, amount);
  if (amount > 0 && balance > BALANCE_MAX - amount) {
    throw new BalanceLimitExceededError(ownerId, balance, amount, BALANCE_MAX);
  }
  return balance + amount;
}
