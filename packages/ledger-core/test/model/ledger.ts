// The model of the ledger the model-based tests (test/model.db.test.ts) hold the real one against:
// its state and its rules, written from the documented rules (the README, the issue "Holds, reversals,
// transfers and suspension" and the features' documented order of refusals), not from the code. No I/O.
//
// One write is decided in a Tx: a copy-on-write view of the owners it touches. The Tx records what the
// write appends (entries, grants, holds) and is either committed into the model or dropped (a refusal
// leaves no trace), as the ledger's draft is.
//
// The rules it states, per owner:
// - balance: the stored running balance less the due, unheld remainder of every grant (a credit with an
//   expiry stops counting at its expires_at, its EXPIRY entry written or not); held: the amounts of the
//   holds active and not past their expiry; available = balance - held.
// - before any entry of a write, what is due is recorded: each active hold past its expiry ends
//   (HOLD_EXPIRY, amount 0, soonest expiry first), then each grant past its expiry loses its unspent,
//   unheld remainder (EXPIRY, soonest expiry first, the older grant on a tie), each under the app that
//   made it, with the nonce `ledger <sequence> <owner>`.
// - a debit takes only available credits: unheld, unexpired grants in burn order (soonest expiry first,
//   the older grant on a tie), then credits without expiry.
// - a hold takes its credits from the unheld grants in burn order when it is made; they do not expire
//   while it holds them; when it ends (capture, release, expiry) what it held of due grants expires at once.
// - suspended owners take only EXPIRY, HOLD_RELEASE, HOLD_EXPIRY, REVERSAL and REINSTATEMENT.
import type { LedgerEntry } from "../../src/index.js";

export type HoldStatus = "active" | "captured" | "released" | "expired";
export type OwnerStatus = "active" | "suspended";

/** An entry as the model predicts it: everything but its id (the database's), and its reversed_amount (it changes). */
export type PredictedEntry = Omit<LedgerEntry, "id" | "reversed_amount">;

/** Credits one entry took from (or, negative, gave back to) one grant. */
export interface Draw {
  sequence: number;
  part: number;
  amount: number;
}

/** A credit with an expiry: (owner, sequence, part) is its identity. Kept once spent or expired too. */
export interface Grant {
  sequence: number;
  part: number;
  app: string;
  amount: number;
  remaining: number;
  expiresAtMs: number;
}

export interface Hold {
  id: string;
  app: string;
  ownerId: string;
  operation: string;
  amount: number;
  expiresAtMs: number;
  createdAtMs: number;
  /** Its HOLD entry's sequence. */
  sequence: number;
  /** What it took from each grant when it was made, in burn order. */
  draws: Draw[];
  /** As stored: "active" until an entry ends it (an active hold past its expiry reads "expired"). */
  status: HoldStatus;
  capturedAmount: number | null;
}

export interface OwnerState {
  /** The stored running balance: the last entry's balance_after. */
  balance: number;
  /** The amounts of the holds active in storage. */
  held: number;
  sequence: number;
  status: OwnerStatus;
  grants: Grant[];
  holds: Hold[];
  /** Per debit entry (by sequence): what it took from each grant, in the order it took them. */
  draws: Record<number, Draw[]>;
  /** Per reversed entry (by sequence): what reversals gave back to each grant so far, by grant key. */
  restored: Record<number, Record<string, number>>;
  /** Per reversed entry (by sequence): the credits reversed so far. */
  reversed: Record<number, number>;
}

export const emptyOwner = (): OwnerState => ({
  balance: 0,
  held: 0,
  sequence: 0,
  status: "active",
  grants: [],
  holds: [],
  draws: {},
  restored: {},
  reversed: {},
});

export const iso = (ms: number) => new Date(ms).toISOString();
export const grantKey = (g: { sequence: number; part: number }) => `${g.sequence}.${g.part}`;
/** Burn order: soonest expiry first, then the older grant, then its lower part. */
export const byBurnOrder = (a: Grant, b: Grant) =>
  a.expiresAtMs - b.expiresAtMs || a.sequence - b.sequence || a.part - b.part;
export const ledgerNonce = (owner: string, sequence: number) => `ledger ${sequence} ${owner}`;

export const BALANCE_LIMIT = Number.MAX_SAFE_INTEGER;

/** Holds active at `nowMs`: active in storage and not past their expiry. */
export const liveHolds = (o: OwnerState, nowMs: number) =>
  o.holds.filter((h) => h.status === "active" && h.expiresAtMs > nowMs);

/** What the live holds hold of each grant, by grant key. */
export function heldByGrant(o: OwnerState, nowMs: number): Map<string, number> {
  const held = new Map<string, number>();
  for (const h of liveHolds(o, nowMs)) {
    for (const d of h.draws) held.set(grantKey(d), (held.get(grantKey(d)) ?? 0) + d.amount);
  }
  return held;
}

export interface Standing {
  balance: number;
  held: number;
  available: number;
  status: OwnerStatus;
}

/** The owner at `nowMs`, whether or not what is due has been written. */
export function standing(o: OwnerState, nowMs: number): Standing {
  const heldOf = heldByGrant(o, nowMs);
  let due = 0;
  for (const g of o.grants) {
    if (g.remaining > 0 && g.expiresAtMs <= nowMs)
      due += Math.max(0, g.remaining - (heldOf.get(grantKey(g)) ?? 0));
  }
  const held = liveHolds(o, nowMs).reduce((sum, h) => sum + h.amount, 0);
  const balance = o.balance - due;
  return { balance, held, available: balance - held, status: o.status };
}

/** GET /ledger/{owner}'s `expiring`: unexpired remainders (held ones too) summed by instant, soonest first. */
export function expiringOf(o: OwnerState, nowMs: number): { amount: number; expires_at: string }[] {
  const by = new Map<number, number>();
  for (const g of o.grants) {
    if (g.remaining > 0 && g.expiresAtMs > nowMs)
      by.set(g.expiresAtMs, (by.get(g.expiresAtMs) ?? 0) + g.remaining);
  }
  return [...by]
    .sort(([a], [b]) => a - b)
    .slice(0, 50)
    .map(([t, amount]) => ({ amount, expires_at: iso(t) }));
}

/** The credits without expiry an owner has, less what holds hold of them. */
export function permanentAvailable(o: OwnerState, nowMs: number): number {
  const inGrants = o.grants.reduce((sum, g) => sum + g.remaining, 0);
  const heldPermanent = liveHolds(o, nowMs).reduce(
    (sum, h) => sum + h.amount - h.draws.reduce((s, d) => s + d.amount, 0),
    0,
  );
  return o.balance - inGrants - heldPermanent;
}

/** What a debit of `need` takes from the unheld, unexpired grants in burn order; the rest is credits without expiry. */
export function planDraws(o: OwnerState, nowMs: number, need: number): Draw[] {
  const heldOf = heldByGrant(o, nowMs);
  const draws: Draw[] = [];
  let left = need;
  for (const g of [...o.grants].sort(byBurnOrder)) {
    if (left === 0) break;
    if (g.expiresAtMs <= nowMs) continue;
    const take = Math.min(left, g.remaining - (heldOf.get(grantKey(g)) ?? 0));
    if (take <= 0) continue;
    draws.push({ sequence: g.sequence, part: g.part, amount: take });
    left -= take;
  }
  return draws;
}

export interface Written {
  entry: PredictedEntry;
  heldAfter: number;
}

/** The links and extras an entry may carry. */
export interface EntryExtras {
  expiresAtMs?: number | null;
  holdId?: string;
  reverses?: number;
  counterparty?: string;
  reason?: string;
  limitKey?: string;
}

export interface EntrySpec extends EntryExtras {
  app: string;
  operation: string;
  amount: number;
  nonce: string;
}

/** What the Tx reads of the model it decides against. */
export interface ModelView {
  owner(id: string): OwnerState | undefined;
  limitUsed(key: string): boolean;
}

/** A refusal, by code: thrown from inside a Tx, caught by whoever decides the write. */
export class Refusal extends Error {
  constructor(readonly code: string) {
    super(code);
  }
}

/** One write (or one all-or-nothing group of them), decided against the model. */
export class Tx {
  readonly owners = new Map<string, OwnerState>();
  readonly written: { owner: string; w: Written }[] = [];
  readonly limits = new Set<string>();

  constructor(
    readonly view: ModelView,
    readonly nowMs: number,
  ) {}

  /** The owner as this Tx has it (copied from the model on first use). */
  state(owner: string): OwnerState {
    let o = this.owners.get(owner);
    if (!o) {
      o = structuredClone(this.view.owner(owner) ?? emptyOwner());
      this.owners.set(owner, o);
    }
    return o;
  }

  standing(owner: string): Standing {
    return standing(this.state(owner), this.nowMs);
  }

  limitUsed(key: string): boolean {
    return this.limits.has(key) || this.view.limitUsed(key);
  }

  /** Appends one entry, chaining the owner's sequence and balance. */
  push(owner: string, spec: EntrySpec): PredictedEntry {
    const o = this.state(owner);
    o.sequence += 1;
    o.balance += spec.amount;
    const entry: PredictedEntry = {
      app: spec.app,
      operation: spec.operation,
      owner_id: owner,
      amount: spec.amount,
      balance_after: o.balance,
      sequence: o.sequence,
      nonce: spec.nonce,
      created_at: iso(this.nowMs),
      ...(spec.expiresAtMs == null ? {} : { expires_at: iso(spec.expiresAtMs) }),
      ...(spec.holdId === undefined ? {} : { hold_id: spec.holdId }),
      ...(spec.reverses === undefined ? {} : { reverses: spec.reverses }),
      ...(spec.counterparty === undefined ? {} : { counterparty_owner_id: spec.counterparty }),
      ...(spec.reason === undefined ? {} : { reason: spec.reason }),
    };
    if (spec.limitKey !== undefined) this.limits.add(spec.limitKey);
    this.written.push({ owner, w: { entry, heldAfter: o.held } });
    return entry;
  }

  /**
   * Records what is due for the owner: HOLD_EXPIRY for each active hold past its expiry (soonest first),
   * then EXPIRY for each due grant's unspent, unheld remainder (burn order).
   */
  expireDue(owner: string): void {
    const o = this.state(owner);
    const due = o.holds
      .filter((h) => h.status === "active" && h.expiresAtMs <= this.nowMs)
      .sort((a, b) => a.expiresAtMs - b.expiresAtMs || a.sequence - b.sequence);
    for (const h of due) {
      h.status = "expired";
      o.held -= h.amount;
      this.push(owner, {
        app: h.app,
        operation: "HOLD_EXPIRY",
        amount: 0,
        nonce: ledgerNonce(owner, o.sequence + 1),
        holdId: h.id,
      });
    }
    const heldOf = heldByGrant(o, this.nowMs);
    for (const g of [...o.grants].sort(byBurnOrder)) {
      if (g.remaining === 0 || g.expiresAtMs > this.nowMs) continue;
      const expiring = g.remaining - (heldOf.get(grantKey(g)) ?? 0);
      if (expiring <= 0) continue;
      g.remaining -= expiring;
      this.push(owner, {
        app: g.app,
        operation: "EXPIRY",
        amount: -expiring,
        nonce: ledgerNonce(owner, o.sequence + 1),
        expiresAtMs: g.expiresAtMs,
      });
    }
  }

  /** Refuses a suspended owner what it may not take. */
  refuseIfSuspended(owner: string, operation: string): void {
    const allowed = ["EXPIRY", "HOLD_RELEASE", "HOLD_EXPIRY", "REVERSAL", "REINSTATEMENT"];
    if (this.state(owner).status === "suspended" && !allowed.includes(operation)) {
      throw new Refusal("OWNER_SUSPENDED");
    }
  }

  /** Takes the draws from their grants and records them as the debit's (by its sequence). */
  #spend(o: OwnerState, sequence: number, draws: readonly Draw[]): void {
    for (const d of draws) {
      const g = o.grants.find((x) => x.sequence === d.sequence && x.part === d.part);
      if (!g || g.remaining < d.amount)
        throw new Error(`model: grant ${grantKey(d)} cannot give ${d.amount}`);
      g.remaining -= d.amount;
    }
    if (draws.length > 0) o.draws[sequence] = draws.map((d) => ({ ...d }));
  }

  /**
   * A debit of the owner's available credits (an operation, a transfer's TRANSFER_OUT): after what is
   * due, refused while suspended or short of available credits. Returns the entry and what it took.
   */
  debitAvailable(owner: string, spec: EntrySpec): { entry: PredictedEntry; draws: Draw[] } {
    this.expireDue(owner);
    this.refuseIfSuspended(owner, spec.operation);
    const need = -spec.amount;
    if (need > this.standing(owner).available) throw new Refusal("INSUFFICIENT_BALANCE");
    const o = this.state(owner);
    const draws = planDraws(o, this.nowMs, need);
    const entry = this.push(owner, spec);
    this.#spend(o, entry.sequence, draws);
    return { entry, draws };
  }

  /** A credit: credits without expiry, or one grant (part 0) when it expires, or one grant per part. */
  credit(
    owner: string,
    spec: EntrySpec,
    parts: readonly { expiresAtMs: number; amount: number }[] = [],
  ): PredictedEntry {
    this.expireDue(owner);
    this.refuseIfSuspended(owner, spec.operation);
    if (this.state(owner).balance > BALANCE_LIMIT - spec.amount) throw new Refusal("BALANCE_LIMIT_EXCEEDED");
    const entry = this.push(owner, spec);
    const o = this.state(owner);
    const open =
      spec.expiresAtMs != null && spec.amount > 0
        ? [{ expiresAtMs: spec.expiresAtMs, amount: spec.amount }]
        : parts;
    open.forEach((p, part) =>
      o.grants.push({
        sequence: entry.sequence,
        part,
        app: spec.app,
        amount: p.amount,
        remaining: p.amount,
        expiresAtMs: p.expiresAtMs,
      }),
    );
    return entry;
  }

  /** Folds the Tx into the model's owners. */
  commitTo(owners: Map<string, OwnerState>): void {
    for (const [id, o] of this.owners) owners.set(id, o);
  }
}

// ---------------------------------------------------------------------------------------------------
// The writes, each decided in a Tx after the checks that need no lock (validation, the nonce) have
// passed. Each throws a Refusal in its documented order of precedence, or leaves its effects in the Tx.

/** POST /ledger, under the owner's lock: OWNER_SUSPENDED, INSUFFICIENT_BALANCE, BALANCE_LIMIT_EXCEEDED, LIMIT_REACHED. */
export function decidePost(tx: Tx, owner: string, spec: EntrySpec & { limitKey?: string }): PredictedEntry {
  const s = tx.standing(owner);
  if (s.status === "suspended") throw new Refusal("OWNER_SUSPENDED");
  if (spec.amount < 0 && s.available < -spec.amount) throw new Refusal("INSUFFICIENT_BALANCE");
  if (spec.amount > 0 && s.balance > BALANCE_LIMIT - spec.amount) throw new Refusal("BALANCE_LIMIT_EXCEEDED");
  if (spec.limitKey !== undefined && tx.limitUsed(spec.limitKey)) throw new Refusal("LIMIT_REACHED");
  return spec.amount < 0 ? tx.debitAvailable(owner, spec).entry : tx.credit(owner, spec);
}

/** The entry a reversal reverses, as the model knows it. */
export interface Original {
  id: number;
  owner: string;
  sequence: number;
  amount: number;
  expiresAtMs: number | null;
}

/**
 * A reversal of an entry found and reversible, under its owner's lock: ALREADY_REVERSED,
 * REVERSAL_EXCEEDS_ORIGINAL, INSUFFICIENT_BALANCE, BALANCE_LIMIT_EXCEEDED. Reversing a debit gives back
 * first the credits without expiry it took, then its grants from the latest expiry to the soonest (what
 * goes back to a grant past its expiry expires at once); reversing a credit takes from its own grant's
 * unspent, unheld remainder if it expires (none once past its expiry), else from the available credits
 * without expiry. Returns the REVERSAL entry and the original's reversed total after it.
 */
export function decideReversal(
  tx: Tx,
  app: string,
  original: Original,
  req: { nonce: string; amount?: number; reason?: string },
): { entry: PredictedEntry; reversedAmount: number } {
  const o = tx.state(original.owner);
  const magnitude = Math.abs(original.amount);
  const soFar = o.reversed[original.sequence] ?? 0;
  const left = magnitude - soFar;
  if (left <= 0) throw new Refusal("ALREADY_REVERSED");
  const amount = req.amount ?? left;
  if (amount > left) throw new Refusal("REVERSAL_EXCEEDS_ORIGINAL");
  const spec = {
    app,
    operation: "REVERSAL",
    nonce: req.nonce,
    reverses: original.id,
    ...(req.reason === undefined ? {} : { reason: req.reason }),
  };
  let entry: PredictedEntry;
  if (original.amount < 0) {
    const draws = [...(o.draws[original.sequence] ?? [])];
    const restored = o.restored[original.sequence] ?? {};
    const fromGrants = draws.reduce((sum, d) => sum + d.amount, 0);
    const toGrantsSoFar = Object.values(restored).reduce((sum, n) => sum + n, 0);
    const permanentLeft = magnitude - fromGrants - (soFar - toGrantsSoFar);
    let toGive = amount - Math.min(amount, Math.max(0, permanentLeft));
    const grantOf = (d: Draw) => {
      const g = o.grants.find((x) => x.sequence === d.sequence && x.part === d.part);
      if (!g) throw new Error(`model: no grant ${grantKey(d)}`);
      return g;
    };
    const latestFirst = draws.sort((a, b) => byBurnOrder(grantOf(a), grantOf(b))).reverse();
    const gifts: Draw[] = [];
    for (const d of latestFirst) {
      if (toGive === 0) break;
      const give = Math.min(toGive, d.amount - (restored[grantKey(d)] ?? 0));
      if (give > 0) gifts.push({ ...d, amount: give });
      toGive -= give;
    }
    tx.expireDue(original.owner);
    if (o.balance > BALANCE_LIMIT - amount) throw new Refusal("BALANCE_LIMIT_EXCEEDED");
    entry = tx.push(original.owner, { ...spec, amount });
    const after = { ...restored };
    for (const g of gifts) {
      grantOf(g).remaining += g.amount;
      after[grantKey(g)] = (after[grantKey(g)] ?? 0) + g.amount;
    }
    o.restored[original.sequence] = after;
    tx.expireDue(original.owner);
  } else {
    tx.expireDue(original.owner);
    if (original.expiresAtMs !== null) {
      const g = o.grants.find((x) => x.sequence === original.sequence && x.part === 0);
      const heldOf = heldByGrant(o, tx.nowMs);
      const unheld = g && g.expiresAtMs > tx.nowMs ? g.remaining - (heldOf.get(grantKey(g)) ?? 0) : 0;
      if (amount > unheld) throw new Refusal("INSUFFICIENT_BALANCE");
      entry = tx.push(original.owner, { ...spec, amount: -amount });
      if (g) g.remaining -= amount;
    } else {
      if (amount > permanentAvailable(o, tx.nowMs)) throw new Refusal("INSUFFICIENT_BALANCE");
      entry = tx.push(original.owner, { ...spec, amount: -amount });
    }
  }
  o.reversed[original.sequence] = soFar + amount;
  return { entry, reversedAmount: soFar + amount };
}

/**
 * A transfer between two owners (validated: different, 1..1e9), under both locks: OWNER_SUSPENDED (the
 * sender first), INSUFFICIENT_BALANCE (the sender's available credits), BALANCE_LIMIT_EXCEEDED. The
 * receiver gets one grant per expiry instant the sender's spent grants had (part 0 the soonest), under
 * the transferring app; what came from credits without expiry stays without.
 */
export function decideTransfer(
  tx: Tx,
  app: string,
  req: { from: string; to: string; amount: number; nonce: string },
): { out: PredictedEntry; in: PredictedEntry } {
  const sender = tx.standing(req.from);
  const receiver = tx.standing(req.to);
  if (sender.status === "suspended" || receiver.status === "suspended") throw new Refusal("OWNER_SUSPENDED");
  if (sender.available < req.amount) throw new Refusal("INSUFFICIENT_BALANCE");
  const out = tx.debitAvailable(req.from, {
    app,
    operation: "TRANSFER_OUT",
    amount: -req.amount,
    nonce: req.nonce,
    counterparty: req.to,
  });
  const from = tx.state(req.from);
  const byInstant = new Map<number, number>();
  for (const d of out.draws) {
    const g = from.grants.find((x) => x.sequence === d.sequence && x.part === d.part);
    if (!g) throw new Error(`model: no grant ${grantKey(d)}`);
    byInstant.set(g.expiresAtMs, (byInstant.get(g.expiresAtMs) ?? 0) + d.amount);
  }
  const parts = [...byInstant]
    .sort(([a], [b]) => a - b)
    .map(([expiresAtMs, amount]) => ({ expiresAtMs, amount }));
  const entryIn = tx.credit(
    req.to,
    {
      app,
      operation: "TRANSFER_IN",
      amount: req.amount,
      nonce: `transfer-in ${req.nonce}`,
      counterparty: req.from,
    },
    parts,
  );
  return { out: out.entry, in: entryIn };
}

/** Suspension (OWNER_ALREADY_SUSPENDED) or reinstatement (OWNER_NOT_SUSPENDED): a zero-amount entry with the reason. */
export function decideStatus(
  tx: Tx,
  app: string,
  owner: string,
  to: OwnerStatus,
  req: { nonce: string; reason?: string },
): PredictedEntry {
  const s = tx.standing(owner);
  if (to === "suspended" && s.status === "suspended") throw new Refusal("OWNER_ALREADY_SUSPENDED");
  if (to === "active" && s.status !== "suspended") throw new Refusal("OWNER_NOT_SUSPENDED");
  tx.expireDue(owner);
  const entry = tx.push(owner, {
    app,
    operation: to === "suspended" ? "SUSPENSION" : "REINSTATEMENT",
    amount: 0,
    nonce: req.nonce,
    ...(req.reason === undefined ? {} : { reason: req.reason }),
  });
  tx.state(owner).status = to;
  return entry;
}
