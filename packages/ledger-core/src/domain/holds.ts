// Holds (two-phase spending): the pure rules. A hold reserves credits for one of its app's debit
// operations; while active they are `held`: they still count in the balance but not in `available`,
// and no debit, hold or transfer may take them. A hold takes its credits from the owner's grants in burn
// order when it is made (its draws); credits under an active hold do not expire until the hold ends.
import { drawKey, grantKey, isDue, type Draw, type OpenGrant } from "./grants.js";
import type { HoldStatus } from "./errors.js";

export type { HoldStatus };

export const HOLD_EXPIRES_IN_S_DEFAULT = 900;
export const HOLD_EXPIRES_IN_S_MAX = 604_800;

/** A hold that is active in storage (it may be past its expiry, not yet recorded). */
export interface ActiveHold {
  readonly id: string;
  readonly app: string;
  readonly ownerId: string;
  readonly operation: string;
  readonly amount: number;
  readonly expiresAt: Date;
  readonly createdAt: Date;
  /** What it took from each grant, in burn order; the rest of its amount is credits without expiry. */
  readonly draws: readonly Draw[];
}

/** A hold stops counting from its expiry on: `expires_at <= now` is expired. */
export function isHoldDue(hold: { expiresAt: Date }, now: Date): boolean {
  return hold.expiresAt.getTime() <= now.getTime();
}

/** The part of a hold that is credits without expiry. */
export function permanentPart(hold: ActiveHold): number {
  return hold.amount - hold.draws.reduce((sum, d) => sum + d.amount, 0);
}

/** What the live holds (active, not due) hold of each grant, by grant key. */
export function heldByGrant(holds: readonly ActiveHold[], now: Date): Map<string, number> {
  const held = new Map<string, number>();
  for (const h of holds) {
    if (isHoldDue(h, now)) continue;
    for (const d of h.draws) held.set(drawKey(d), (held.get(drawKey(d)) ?? 0) + d.amount);
  }
  return held;
}

/** An owner as it stands at an instant, whether or not the ledger has written its expiries yet. */
export interface Standing {
  /** Credits that count: less every due grant's unheld remainder. */
  balance: number;
  /** Credits under live holds. */
  held: number;
  /** balance - held: what a debit, hold or transfer may take. */
  available: number;
}

/**
 * The owner's standing at `now` from its stored balance, open grants and holds active in storage:
 * holds past their expiry no longer hold, and a due grant's remainder stops counting but for what a
 * live hold still holds of it. Pure; the reads and the engine both use it.
 */
export function standingAt(
  storedBalance: number,
  grants: readonly OpenGrant[],
  holds: readonly ActiveHold[],
  now: Date,
): Standing {
  const heldOf = heldByGrant(holds, now);
  let expiring = 0;
  for (const g of grants) {
    if (g.remaining > 0 && isDue(g, now)) {
      expiring += Math.max(0, g.remaining - (heldOf.get(grantKey(g)) ?? 0));
    }
  }
  const held = holds.filter((h) => !isHoldDue(h, now)).reduce((sum, h) => sum + h.amount, 0);
  const balance = storedBalance - expiring;
  return { balance, held, available: balance - held };
}
