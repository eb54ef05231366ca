// Credits that expire: the pure rules of grants. A grant is the unspent remainder of one credit entry
// that carries an expiry. Credits without expiry are not grants: they stay one number, the owner's
// balance less the remainders of its open grants, so a ledger without expiring credits never reads or
// writes a grant row.
//
// Burn order: a debit spends the soonest `expires_at` first, older grants before newer ones on a tie,
// and credits without expiry last (OpenMeter, Orb and Lago spend the same way).
import { LEDGER_OPERATIONS } from "./ledger-operations.js";

/** An open grant: some of it is unspent and it has not been expired yet. */
export interface OpenGrant {
  /** The owner's sequence of the entry that granted it: with the owner id, the grant's identity. */
  readonly sequence: number;
  /**
   * 0 for a credit's grant. A transfer's TRANSFER_IN entry carries the sender's expiring credits over as
   * one grant per expiry instant, numbered 0, 1, 2...: (owner, sequence, part) is the grant's identity.
   */
  readonly part: number;
  /** The app whose entry granted it: its expiry entry is written under that app. */
  readonly app: string;
  readonly amount: number;
  readonly remaining: number;
  readonly expiresAt: Date;
}

/** Credits a debit takes from one grant. */
export interface Draw {
  readonly grantSequence: number;
  readonly grantPart: number;
  readonly amount: number;
}

/** A grant's identity within its owner, as a map key. */
export const grantKey = (g: { sequence: number; part: number }) => `${g.sequence}.${g.part}`;
export const drawKey = (d: Draw) => `${d.grantSequence}.${d.grantPart}`;

/** Burn order: soonest expiry first, then the older grant. */
export function byBurnOrder(a: OpenGrant, b: OpenGrant): number {
  return a.expiresAt.getTime() - b.expiresAt.getTime() || a.sequence - b.sequence || a.part - b.part;
}

/** A grant stops counting from its expiry on: `expires_at <= now` is expired. */
export function isDue(grant: OpenGrant, now: Date): boolean {
  return grant.expiresAt.getTime() <= now.getTime();
}

/**
 * What a debit of `amount` (a magnitude) takes from each grant, in burn order; whatever the grants do
 * not cover comes from the credits without expiry. `grants` must be open and unexpired. Pure.
 */
export function drawInBurnOrder(grants: readonly OpenGrant[], amount: number): Draw[] {
  const draws: Draw[] = [];
  let left = amount;
  for (const grant of [...grants].sort(byBurnOrder)) {
    if (left === 0) break;
    const take = Math.min(grant.remaining, left);
    if (take > 0) draws.push({ grantSequence: grant.sequence, grantPart: grant.part, amount: take });
    left -= take;
  }
  return draws;
}

/** The sum of the grants' remainders. */
export function remainderOf(grants: readonly OpenGrant[]): number {
  return grants.reduce((sum, g) => sum + g.remaining, 0);
}

/** Unexpired remainders summed by expiry instant, soonest first, at most `max` of them. */
export function expiringSummary(
  grants: readonly OpenGrant[],
  now: Date,
  max: number,
): { amount: number; expires_at: string }[] {
  const byInstant = new Map<number, number>();
  for (const g of grants) {
    if (isDue(g, now) || g.remaining === 0) continue;
    const t = g.expiresAt.getTime();
    byInstant.set(t, (byInstant.get(t) ?? 0) + g.remaining);
  }
  return [...byInstant]
    .sort(([a], [b]) => a - b)
    .slice(0, max)
    .map(([t, amount]) => ({ amount, expires_at: new Date(t).toISOString() }));
}

/**
 * The nonce of an entry the ledger writes on its own (an EXPIRY, a HOLD_EXPIRY): the owner's sequence of
 * the entry makes it unique. Client nonces are printable ASCII without spaces, so one with spaces can never
 * collide with a client's. (Entries written before holds existed carry `expiry <grant sequence> <owner>`;
 * a grant could expire only once then.)
 */
export function ledgerNonce(ownerId: string, sequence: number): string {
  return `ledger ${sequence} ${ownerId}`;
}

/** The operation of expiry entries. Reserved: no catalog may define it. */
export const EXPIRY_OPERATION = LEDGER_OPERATIONS.EXPIRY;
