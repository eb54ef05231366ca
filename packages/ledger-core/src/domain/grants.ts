// Credits that expire: the pure rules of grants. A grant is the unspent remainder of one credit entry
// that carries an expiry. Credits without expiry are not grants: they stay one number, the owner's
// balance less the remainders of its open grants, so a ledger without expiring credits never reads or
// writes a grant row.
//
// Burn order: a debit spends the soonest `expires_at` first, older grants before newer ones on a tie,
// and credits without expiry last (OpenMeter, Orb and Lago spend the same way).

/** An open grant: some of it is unspent and it has not been expired yet. */
export interface OpenGrant {
  /** The owner's sequence of the entry that granted it: with the owner id, the grant's identity. */
  readonly sequence: number;
  /** The app whose entry granted it: its expiry entry is written under that app. */
  readonly app: string;
  readonly amount: number;
  readonly remaining: number;
  readonly expiresAt: Date;
}

/** Credits a debit takes from one grant. */
export interface Draw {
  readonly grantSequence: number;
  readonly amount: number;
}

/** Burn order: soonest expiry first, then the older grant. */
export function byBurnOrder(a: OpenGrant, b: OpenGrant): number {
  return a.expiresAt.getTime() - b.expiresAt.getTime() || a.sequence - b.sequence;
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
    if (take > 0) draws.push({ grantSequence: grant.sequence, amount: take });
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
 * The nonce of the entry that expires a grant. Client nonces are printable ASCII without spaces, so one
 * with spaces can never collide with a client's, and (app, nonce) being unique makes a second expiry of
 * the same grant impossible even if every other guard failed.
 */
export function expiryNonce(ownerId: string, grantSequence: number): string {
  return `expiry ${grantSequence} ${ownerId}`;
}

/** The operation of expiry entries. Reserved: no catalog may define it. */
export const EXPIRY_OPERATION = "EXPIRY";
