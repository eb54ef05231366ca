// The state a batch is decided against, and the draft one command decides in.
//
// A batch loads, under its owners' locks, what its commands declared they need: each owner's row (the
// lock: balance, held, newest sequence, status) with its open grants and its active holds, and the
// limits already used. Commands are then decided one after another, in arrival order. Each decides in a
// Draft: a copy-on-write view of the state that records the effects (entries, allocations, grant and
// hold changes) the command asks for. An accepted command's draft is folded into the state, so the next
// command sees it; a refused one is dropped and leaves no trace. Nothing here does I/O.
//
// The ledger's own rules live here, below every command, so that no kind of write can skip them:
// - an entry chains the owner's running balance, held amount and sequence;
// - any entry for an owner first records what is due: holds past their expiry expire (HOLD_EXPIRY),
//   then grants past theirs lose their unspent, unheld remainder (EXPIRY);
// - a suspended owner takes only what ends or undoes (writableWhileSuspended);
// - a debit takes only available credits (the balance less what is held), spending grants in burn
//   order and recording what it took (allocations).
import { InsufficientBalanceError, OwnerSuspendedError } from "../domain/errors.js";
import {
  byBurnOrder,
  drawInBurnOrder,
  drawKey,
  grantKey,
  isDue,
  ledgerNonce,
  type Draw,
  type OpenGrant,
} from "../domain/grants.js";
import {
  heldByGrant,
  isHoldDue,
  permanentPart,
  standingAt,
  type ActiveHold,
  type HoldStatus,
} from "../domain/holds.js";
import { LEDGER_OPERATIONS, writableWhileSuspended } from "../domain/ledger-operations.js";
import { nextBalance } from "../domain/rules.js";
import type { FactLoader, RowWriter } from "./command.js";

export type OwnerStatus = "active" | "suspended";

/** An owner as loaded under its lock. */
export interface LockedOwner {
  ownerId: string;
  balance: number;
  /** The sum of the owner's holds active in storage. */
  held: number;
  lastSequence: number;
  status: OwnerStatus;
  /** The row was created by this batch's lock (the owner had none): dropped again if nothing is written. */
  created: boolean;
  /** Open grants (something unspent), in burn order. */
  grants: OpenGrant[];
  /** Holds active in storage (some may be past their expiry), with their HOLD entry's sequence. */
  holds: (ActiveHold & { sequence: number })[];
}

export interface LimitKey {
  ownerId: string;
  operation: string;
  period: string;
}

export const limitKeyString = (k: LimitKey) => JSON.stringify([k.ownerId, k.operation, k.period]);

/** What an entry links to, where it applies. */
export interface EntryLinks {
  /** Captures and hold entries: the hold. */
  holdId?: string | null;
  /** Reversals: the entry reversed. */
  reverses?: number | null;
  /** Transfers: the other side. */
  counterpartyOwnerId?: string | null;
  reason?: string | null;
}

/** An entry to append. Its id comes from the database. */
export interface NewEntry extends Required<EntryLinks> {
  app: string;
  operation: string;
  ownerId: string;
  amount: number;
  balanceAfter: number;
  /** The owner's held credits right after it (balance_after - held_after is what was available). */
  heldAfter: number;
  sequence: number;
  nonce: string;
  limitPeriod: string | null;
  createdAt: Date;
  expiresAt: Date | null;
  /** The API key that wrote it: set by group commit from the request's context, after the decision. */
  actor: string | null;
}

/**
 * Credits an entry took from a grant (a debit, an expiry: positive) or gave back to it (a reversal of a
 * debit: negative). A grant's remainder is its amount less the sum of its allocations.
 */
export interface Allocation {
  ownerId: string;
  /** The entry. */
  sequence: number;
  grantSequence: number;
  grantPart: number;
  amount: number;
}

/** A grant as it stands after the batch: a new one to insert, or a changed remainder to update. */
export interface GrantWrite {
  ownerId: string;
  sequence: number;
  part: number;
  app: string;
  amount: number;
  remaining: number;
  expiresAt: Date;
  createdAt: Date;
  /** The sequence of the newest entry that expired some of it. */
  expiredSequence: number | null;
  isNew: boolean;
}

/** A hold as it stands after the batch: a new one to insert, or one that ended. */
export interface HoldWrite extends ActiveHold {
  status: HoldStatus;
  /** The HOLD entry's sequence. */
  sequence: number;
  capturedAmount: number | null;
  endedAt: Date | null;
  /** The entry that ended it (capture, HOLD_RELEASE, HOLD_EXPIRY). */
  endSequence: number | null;
  isNew: boolean;
}

/** Everything a batch writes, in the order it was decided. */
export interface Effects {
  entries: NewEntry[];
  allocations: Allocation[];
  grants: GrantWrite[];
  holds: HoldWrite[];
  /** Each touched owner's row after the batch. */
  owners: { ownerId: string; balance: number; held: number; lastSequence: number; status: OwnerStatus }[];
  /** Rows the lock created for owners nothing was written for: removed again. */
  unusedOwners: string[];
  /** Features' own rows, by writer, in decision order. */
  rows: Map<RowWriter, unknown[]>;
}

/** Facts loaded for a batch, by loader and key. */
export type LoadedFacts = ReadonlyMap<FactLoader, ReadonlyMap<string, unknown>>;

/** A grant as stored, whether open or not: what a reversal needs to give credits back to it. */
export interface StoredGrant extends OpenGrant {
  createdAt: Date;
  expiredSequence: number | null;
}

interface GrantState extends Omit<OpenGrant, "remaining"> {
  remaining: number;
  createdAt: Date;
  expiredSequence: number | null;
  isNew: boolean;
  /** remaining and expiredSequence as loaded (new grants: undefined), to write only the ones that changed. */
  loadedRemaining: number | undefined;
  loadedExpiredSequence?: number | null;
}

interface HoldState extends ActiveHold {
  status: HoldStatus;
  sequence: number;
  capturedAmount: number | null;
  endedAt: Date | null;
  endSequence: number | null;
  isNew: boolean;
  changed: boolean;
}

interface OwnerState {
  ownerId: string;
  balance: number;
  held: number;
  lastSequence: number;
  status: OwnerStatus;
  created: boolean;
  touched: boolean;
  grants: GrantState[];
  holds: HoldState[];
}

const cloneOwner = (o: OwnerState): OwnerState => ({
  ...o,
  grants: o.grants.map((g) => ({ ...g })),
  holds: o.holds.map((h) => ({ ...h })),
});

/** A hold as a command may read it. */
export interface HoldView extends ActiveHold {
  /** As of the draft's instant: an active hold past its expiry reads "expired". */
  readonly status: HoldStatus;
  readonly sequence: number;
}

/** What a command may read of an owner. */
export interface OwnerView {
  readonly ownerId: string;
  /** Credits that count at the instant: due remainders excluded. */
  readonly balance: number;
  readonly held: number;
  readonly available: number;
  readonly lastSequence: number;
  readonly status: OwnerStatus;
  /** Open grants not yet due, in burn order, with what is left of each (held parts included). */
  readonly grants: readonly OpenGrant[];
  /** Holds live at the instant. */
  readonly holds: readonly HoldView[];
}

/** Where a debit takes its credits from. */
export type DebitSource =
  /** Available credits: unheld grants in burn order, then credits without expiry. */
  | { kind: "available" }
  /** A hold's own draws (a capture), in the order the hold made them. */
  | { kind: "hold"; draws: readonly Draw[] }
  /** One grant's unspent, unheld remainder only (reversing an expiring credit). */
  | { kind: "grant"; sequence: number; part: number }
  /** Available credits without expiry only (reversing a credit without expiry). */
  | { kind: "permanent" };

/** What a credit opens or gives back, besides credits without expiry. */
export type CreditTarget =
  /** Credits without expiry (no grant). */
  | { kind: "permanent" }
  /** One grant expiring at the instant. */
  | { kind: "grant"; expiresAt: Date }
  /** One grant per part, numbered 0.. (a transfer carrying the sender's expiries); the rest permanent. */
  | { kind: "grants"; parts: readonly { expiresAt: Date; amount: number }[] }
  /** Back to the grants a debit spent (a reversal), each loaded as stored; the rest permanent. */
  | { kind: "restore"; to: readonly { grant: StoredGrant; amount: number }[] };

/** The spec of an entry a command appends; the draft fills in its sequence, balances and draws. */
export interface EntrySpec extends EntryLinks {
  app: string;
  operation: string;
  ownerId: string;
  /** Signed. */
  amount: number;
  nonce: string;
  limitPeriod?: string | null;
  /** A credit with an expiry becomes a grant (shorthand for credit: { kind: "grant" }). */
  expiresAt?: Date | null;
  debit?: DebitSource;
  credit?: CreditTarget;
}

export interface Appended {
  entry: NewEntry;
  /** What a debit took from each grant, with the grant's expiry. */
  draws: (Draw & { expiresAt: Date })[];
}

export class BatchState {
  #owners = new Map<string, OwnerState>();
  #usedLimits: Set<string>;
  readonly #entries: NewEntry[] = [];
  readonly #allocations: Allocation[] = [];
  #facts = new Map<FactLoader, Map<string, unknown>>();
  #rows = new Map<RowWriter, unknown[]>();

  constructor(owners: Iterable<LockedOwner>, usedLimits: Iterable<string>, facts: LoadedFacts = new Map()) {
    for (const [loader, byKey] of facts) this.#facts.set(loader, new Map(byKey));
    for (const o of owners) {
      this.#owners.set(o.ownerId, {
        ownerId: o.ownerId,
        balance: o.balance,
        held: o.held,
        lastSequence: o.lastSequence,
        status: o.status,
        created: o.created,
        touched: false,
        grants: [...o.grants].sort(byBurnOrder).map((g) => ({
          ...g,
          createdAt: new Date(0),
          expiredSequence: null,
          isNew: false,
          loadedRemaining: g.remaining,
        })),
        holds: o.holds.map((h) => ({
          ...h,
          status: "active",
          capturedAmount: null,
          endedAt: null,
          endSequence: null,
          isNew: false,
          changed: false,
        })),
      });
    }
    this.#usedLimits = new Set(usedLimits);
  }

  /** A draft over the current state, for one command. */
  draft(): Draft {
    return new Draft(this.#owners, this.#usedLimits, this.#facts);
  }

  /** Folds an accepted draft in. */
  commit(draft: Draft): void {
    const { owners, limits, entries, allocations, facts, rows } = draft.changes();
    for (const [id, owner] of owners) this.#owners.set(id, owner);
    for (const key of limits) this.#usedLimits.add(key);
    this.#entries.push(...entries);
    this.#allocations.push(...allocations);
    for (const [loader, byKey] of facts) {
      const target = this.#facts.get(loader) ?? new Map<string, unknown>();
      for (const [key, value] of byKey) target.set(key, value);
      this.#facts.set(loader, target);
    }
    for (const [writer, list] of rows) this.#rows.set(writer, [...(this.#rows.get(writer) ?? []), ...list]);
  }

  /**
   * Marks the state as it is, for an all-or-nothing group of commands: the returned function puts it back
   * (every draft committed since is undone). Committed owners are replaced, never mutated, so copying the
   * maps is enough.
   */
  mark(): () => void {
    const owners = new Map(this.#owners);
    const limits = new Set(this.#usedLimits);
    const entries = this.#entries.length;
    const allocations = this.#allocations.length;
    const facts = new Map([...this.#facts].map(([loader, byKey]) => [loader, new Map(byKey)] as const));
    const rows = new Map<RowWriter, unknown[]>([...this.#rows].map(([writer, list]) => [writer, [...list]]));
    return () => {
      this.#owners = owners;
      this.#usedLimits = limits;
      this.#entries.length = entries;
      this.#allocations.length = allocations;
      this.#facts = facts;
      this.#rows = rows;
    };
  }

  /**
   * The entries accepted so far at these positions (decision order), each with the hold it belongs to:
   * what a later command of the batch under the same nonce is checked against.
   */
  accepted(positions: readonly number[]): { entry: NewEntry; hold: ActiveHold | null }[] {
    return positions.flatMap((i) => {
      const entry = this.#entries[i];
      if (!entry) return [];
      const hold =
        entry.holdId === null
          ? undefined
          : this.#owners.get(entry.ownerId)?.holds.find((h) => h.id === entry.holdId);
      return [{ entry, hold: hold ?? null }];
    });
  }

  effects(): Effects {
    const owners = [...this.#owners.values()];
    return {
      entries: [...this.#entries],
      allocations: [...this.#allocations],
      grants: owners.flatMap((o) =>
        o.grants
          .filter(
            (g) =>
              g.isNew ||
              g.remaining !== g.loadedRemaining ||
              g.expiredSequence !== (g.loadedExpiredSequence ?? null),
          )
          .map((g) => ({
            ownerId: o.ownerId,
            sequence: g.sequence,
            part: g.part,
            app: g.app,
            amount: g.amount,
            remaining: g.remaining,
            expiresAt: g.expiresAt,
            createdAt: g.createdAt,
            expiredSequence: g.expiredSequence,
            isNew: g.isNew,
          })),
      ),
      holds: owners.flatMap((o) =>
        o.holds.filter((h) => h.isNew || h.changed).map(({ changed: _, ...h }) => ({ ...h })),
      ),
      owners: owners
        .filter((o) => o.touched)
        .map((o) => ({
          ownerId: o.ownerId,
          balance: o.balance,
          held: o.held,
          lastSequence: o.lastSequence,
          status: o.status,
        })),
      unusedOwners: owners.filter((o) => o.created && !o.touched).map((o) => o.ownerId),
      rows: new Map(this.#rows),
    };
  }
}

/** A new hold's spec. */
export interface HoldSpec {
  id: string;
  app: string;
  ownerId: string;
  operation: string;
  amount: number;
  expiresAt: Date;
  nonce: string;
}

export class Draft {
  readonly #base: ReadonlyMap<string, OwnerState>;
  readonly #baseLimits: ReadonlySet<string>;
  readonly #baseFacts: ReadonlyMap<FactLoader, ReadonlyMap<string, unknown>>;
  readonly #owners = new Map<string, OwnerState>();
  readonly #limits = new Set<string>();
  readonly #entries: NewEntry[] = [];
  readonly #allocations: Allocation[] = [];
  readonly #facts = new Map<FactLoader, Map<string, unknown>>();
  readonly #rows = new Map<RowWriter, unknown[]>();

  constructor(
    base: ReadonlyMap<string, OwnerState>,
    baseLimits: ReadonlySet<string>,
    baseFacts: ReadonlyMap<FactLoader, ReadonlyMap<string, unknown>>,
  ) {
    this.#base = base;
    this.#baseLimits = baseLimits;
    this.#baseFacts = baseFacts;
  }

  /** A feature's fact as the batch so far left it (undefined: none under that key). */
  fact<F>(loader: FactLoader<F>, key: string): F | undefined {
    const mine = this.#facts.get(loader);
    if (mine?.has(key)) return mine.get(key) as F | undefined;
    return this.#baseFacts.get(loader)?.get(key) as F | undefined;
  }

  /** Changes a fact for the commands decided after this one (with the row that makes it so, emitted). */
  setFact<F>(loader: FactLoader<F>, key: string, value: F): void {
    const mine = this.#facts.get(loader) ?? new Map<string, unknown>();
    mine.set(key, value);
    this.#facts.set(loader, mine);
  }

  /** A feature's row to write with the batch. */
  emit<R>(writer: RowWriter<R>, row: R): void {
    const list = this.#rows.get(writer) ?? [];
    list.push(row);
    this.#rows.set(writer, list);
  }

  #owner(ownerId: string): OwnerState {
    let owner = this.#owners.get(ownerId);
    if (!owner) {
      const base = this.#base.get(ownerId);
      if (!base) throw new Error(`owner ${ownerId} was not locked for its batch`);
      owner = cloneOwner(base);
      this.#owners.set(ownerId, owner);
    }
    return owner;
  }

  /** The owner as this draft sees it at `now`, whether or not what is due has been written yet. */
  owner(ownerId: string, now: Date): OwnerView {
    const o = this.#owner(ownerId);
    const active = o.holds.filter((h) => h.status === "active");
    const open = o.grants.filter((g) => g.remaining > 0);
    return {
      ownerId,
      ...standingAt(o.balance, open, active, now),
      lastSequence: o.lastSequence,
      status: o.status,
      grants: open.filter((g) => !isDue(g, now)),
      holds: active.filter((h) => !isHoldDue(h, now)),
    };
  }

  /**
   * One of the owner's holds that is active in storage or was made or ended in this batch, as it stands
   * at `now` (an active one past its expiry reads "expired"); undefined if it has no such hold (one that
   * ended before the batch: its stored status is final).
   */
  hold(ownerId: string, holdId: string, now: Date): HoldView | undefined {
    const h = this.#owner(ownerId).holds.find((x) => x.id === holdId);
    if (!h) return undefined;
    const status = h.status === "active" && isHoldDue(h, now) ? "expired" : h.status;
    return { ...h, status };
  }

  /** Whether a limit key is used up, by the database or by an earlier command of the batch. */
  limitUsed(key: LimitKey): boolean {
    const k = limitKeyString(key);
    return this.#baseLimits.has(k) || this.#limits.has(k);
  }

  takeLimit(key: LimitKey): void {
    this.#limits.add(limitKeyString(key));
  }

  /**
   * Records what is due at `now` for the owner: a HOLD_EXPIRY entry for each active hold past its expiry
   * (under the hold's app), then an EXPIRY entry for each grant past its expiry with an unspent, unheld
   * remainder (under the app that granted it), soonest first. Returns how many entries it wrote.
   */
  expireDue(ownerId: string, now: Date): number {
    const o = this.#owner(ownerId);
    let written = 0;
    // Soonest expiry first, then the older hold: the order the holds were loaded in is the database's,
    // which no query fixes, so the entries' order would not be a function of the ledger's state.
    const due = o.holds
      .filter((h) => h.status === "active" && isHoldDue(h, now))
      .sort((a, b) => a.expiresAt.getTime() - b.expiresAt.getTime() || a.sequence - b.sequence);
    for (const h of due) {
      this.#endHold(o, h, "expired", now);
      this.#push(o, {
        app: h.app,
        operation: LEDGER_OPERATIONS.HOLD_EXPIRY,
        ownerId,
        amount: 0,
        nonce: ledgerNonce(ownerId, o.lastSequence + 1),
        holdId: h.id,
        now,
      });
      h.endSequence = o.lastSequence;
      written += 1;
    }
    const heldOf = this.#heldOf(o, now);
    for (const g of o.grants) {
      if (g.remaining === 0 || !isDue(g, now)) continue;
      const expiring = g.remaining - (heldOf.get(grantKey(g)) ?? 0);
      if (expiring <= 0) continue;
      const entry = this.#push(o, {
        app: g.app,
        operation: LEDGER_OPERATIONS.EXPIRY,
        ownerId,
        amount: -expiring,
        nonce: ledgerNonce(ownerId, o.lastSequence + 1),
        expiresAt: g.expiresAt,
        now,
      });
      this.#allocations.push({
        ownerId,
        sequence: entry.sequence,
        grantSequence: g.sequence,
        grantPart: g.part,
        amount: expiring,
      });
      g.remaining -= expiring;
      g.expiredSequence = entry.sequence;
      written += 1;
    }
    return written;
  }

  #heldOf(o: OwnerState, now: Date): Map<string, number> {
    return heldByGrant(
      o.holds.filter((h) => h.status === "active"),
      now,
    );
  }

  #refuseIfSuspended(o: OwnerState, operation: string): void {
    if (o.status === "suspended" && !writableWhileSuspended(operation)) {
      throw new OwnerSuspendedError(o.ownerId);
    }
  }

  /**
   * Appends an entry for its owner, after recording what is due: refuses a suspended owner what it may
   * not take; chains its sequence, running balance and held amount; a debit takes from its source
   * (available credits unless said otherwise), a credit opens or gives back grants as its target says.
   * A credit that gives back to a grant past its expiry has it expire again at once.
   * @throws OwnerSuspendedError, InsufficientBalanceError, BalanceLimitExceededError (draft dropped)
   */
  append(spec: EntrySpec, now: Date): Appended {
    const o = this.#owner(spec.ownerId);
    this.expireDue(spec.ownerId, now);
    this.#refuseIfSuspended(o, spec.operation);
    const appended = this.#appendNow(o, spec, now);
    if (spec.credit?.kind === "restore") this.expireDue(spec.ownerId, now);
    return appended;
  }

  #appendNow(o: OwnerState, spec: EntrySpec, now: Date): Appended {
    const draws: (Draw & { expiresAt: Date })[] = [];
    if (spec.amount < 0) {
      const need = -spec.amount;
      const source = spec.debit ?? { kind: "available" };
      const heldOf = this.#heldOf(o, now);
      const unheld = (g: GrantState) => g.remaining - (heldOf.get(grantKey(g)) ?? 0);
      const open = o.grants.filter((g) => g.remaining > 0 && !isDue(g, now));
      let planned: Draw[] = [];
      if (source.kind === "available") {
        const available = o.balance - o.held;
        if (need > available) throw new InsufficientBalanceError(o.ownerId, available, spec.amount);
        planned = drawInBurnOrder(
          open.map((g) => ({ ...g, remaining: unheld(g) })),
          need,
        );
      } else if (source.kind === "hold") {
        let left = need;
        for (const d of source.draws) {
          if (left === 0) break;
          const take = Math.min(d.amount, left);
          planned.push({ ...d, amount: take });
          left -= take;
        }
      } else if (source.kind === "grant") {
        const g = o.grants.find((x) => x.sequence === source.sequence && x.part === source.part);
        const left = g && !isDue(g, now) ? unheld(g) : 0;
        if (need > left) throw new InsufficientBalanceError(o.ownerId, left, spec.amount);
        planned = [{ grantSequence: source.sequence, grantPart: source.part, amount: need }];
      } else {
        const permanentHeld = o.holds
          .filter((h) => h.status === "active")
          .reduce((sum, h) => sum + permanentPart(h), 0);
        const grantsLeft = o.grants.reduce((sum, g) => sum + g.remaining, 0);
        const available = o.balance - grantsLeft - permanentHeld;
        if (need > available) throw new InsufficientBalanceError(o.ownerId, available, spec.amount);
      }
      const entry = this.#push(o, { ...spec, now });
      for (const draw of planned) {
        const grant = o.grants.find((g) => g.sequence === draw.grantSequence && g.part === draw.grantPart);
        if (!grant || grant.remaining < draw.amount) {
          throw new Error(`grant ${drawKey(draw)} of ${o.ownerId} cannot give ${draw.amount}`);
        }
        grant.remaining -= draw.amount;
        this.#allocations.push({ ownerId: o.ownerId, sequence: entry.sequence, ...draw });
        draws.push({ ...draw, expiresAt: grant.expiresAt });
      }
      return { entry, draws };
    }

    const entry = this.#push(o, { ...spec, now });
    const target: CreditTarget =
      spec.credit ?? (spec.expiresAt ? { kind: "grant", expiresAt: spec.expiresAt } : { kind: "permanent" });
    if (spec.amount > 0 && target.kind === "grant") {
      this.#openGrant(o, spec.app, entry.sequence, 0, spec.amount, target.expiresAt, now);
    } else if (spec.amount > 0 && target.kind === "grants") {
      target.parts.forEach((p, part) =>
        this.#openGrant(o, spec.app, entry.sequence, part, p.amount, p.expiresAt, now),
      );
    } else if (target.kind === "restore") {
      for (const { grant: stored, amount } of target.to) {
        let grant = o.grants.find((g) => g.sequence === stored.sequence && g.part === stored.part);
        if (!grant) {
          grant = {
            ...stored,
            remaining: stored.remaining,
            isNew: false,
            loadedRemaining: stored.remaining,
            loadedExpiredSequence: stored.expiredSequence,
          };
          o.grants.push(grant);
        }
        if (grant.remaining + amount > grant.amount) {
          throw new Error(`grant ${grantKey(grant)} of ${o.ownerId} cannot take ${amount} back`);
        }
        grant.remaining += amount;
        this.#allocations.push({
          ownerId: o.ownerId,
          sequence: entry.sequence,
          grantSequence: grant.sequence,
          grantPart: grant.part,
          amount: -amount,
        });
      }
      o.grants.sort(byBurnOrder);
    }
    return { entry, draws };
  }

  #openGrant(
    o: OwnerState,
    app: string,
    sequence: number,
    part: number,
    amount: number,
    expiresAt: Date,
    now: Date,
  ): void {
    o.grants.push({
      sequence,
      part,
      app,
      amount,
      remaining: amount,
      expiresAt,
      createdAt: now,
      expiredSequence: null,
      isNew: true,
      loadedRemaining: undefined,
    });
    o.grants.sort(byBurnOrder);
  }

  /**
   * Places a hold: a HOLD entry (amount 0) for the owner, reserving `amount` of its available credits,
   * taken from its unheld grants in burn order, then from credits without expiry.
   * @throws OwnerSuspendedError, InsufficientBalanceError
   */
  placeHold(spec: HoldSpec, now: Date): { entry: NewEntry; hold: HoldView } {
    const o = this.#owner(spec.ownerId);
    this.expireDue(spec.ownerId, now);
    this.#refuseIfSuspended(o, LEDGER_OPERATIONS.HOLD);
    const available = o.balance - o.held;
    if (spec.amount > available) throw new InsufficientBalanceError(o.ownerId, available, -spec.amount);
    const heldOf = this.#heldOf(o, now);
    const open = o.grants
      .filter((g) => g.remaining > 0 && !isDue(g, now))
      .map((g) => ({ ...g, remaining: g.remaining - (heldOf.get(grantKey(g)) ?? 0) }));
    const draws = drawInBurnOrder(open, spec.amount);
    o.held += spec.amount;
    const entry = this.#push(o, {
      app: spec.app,
      operation: LEDGER_OPERATIONS.HOLD,
      ownerId: spec.ownerId,
      amount: 0,
      nonce: spec.nonce,
      holdId: spec.id,
      expiresAt: spec.expiresAt,
      now,
    });
    const hold: HoldState = {
      id: spec.id,
      app: spec.app,
      ownerId: spec.ownerId,
      operation: spec.operation,
      amount: spec.amount,
      expiresAt: spec.expiresAt,
      createdAt: now,
      draws,
      status: "active",
      sequence: entry.sequence,
      capturedAmount: null,
      endedAt: null,
      endSequence: null,
      isNew: true,
      changed: false,
    };
    o.holds.push(hold);
    return { entry, hold: { ...hold } };
  }

  #endHold(o: OwnerState, h: HoldState, status: Exclude<HoldStatus, "active">, now: Date): void {
    h.status = status;
    h.endedAt = now;
    h.changed = true;
    o.held -= h.amount;
  }

  #liveHold(o: OwnerState, holdId: string, now: Date): HoldState {
    const h = o.holds.find((x) => x.id === holdId);
    if (!h || h.status !== "active" || isHoldDue(h, now)) {
      throw new Error(`hold ${holdId} of ${o.ownerId} is not live: the command checks first`);
    }
    return h;
  }

  /**
   * Releases a live hold (the command has checked it is one): a HOLD_RELEASE entry (amount 0); what it
   * held of grants past their expiry expires at once.
   */
  releaseHold(ownerId: string, holdId: string, spec: { nonce: string; now: Date }): NewEntry {
    const o = this.#owner(ownerId);
    const h = this.#liveHold(o, holdId, spec.now);
    this.expireDue(ownerId, spec.now);
    this.#endHold(o, h, "released", spec.now);
    const entry = this.#push(o, {
      app: h.app,
      operation: LEDGER_OPERATIONS.HOLD_RELEASE,
      ownerId,
      amount: 0,
      nonce: spec.nonce,
      holdId,
      now: spec.now,
    });
    h.endSequence = entry.sequence;
    this.expireDue(ownerId, spec.now);
    return entry;
  }

  /**
   * Captures `amount` (1..held) of a live hold: one entry of the hold's operation spending the hold's own
   * draws first; the rest is released, and what it held of grants past their expiry expires at once.
   * @throws OwnerSuspendedError
   */
  captureHold(ownerId: string, holdId: string, spec: { amount: number; nonce: string; now: Date }): NewEntry {
    const o = this.#owner(ownerId);
    const h = this.#liveHold(o, holdId, spec.now);
    this.expireDue(ownerId, spec.now);
    this.#refuseIfSuspended(o, h.operation);
    this.#endHold(o, h, "captured", spec.now);
    h.capturedAmount = spec.amount;
    const { entry } = this.#appendNow(
      o,
      {
        app: h.app,
        operation: h.operation,
        ownerId,
        amount: -spec.amount,
        nonce: spec.nonce,
        holdId,
        debit: { kind: "hold", draws: h.draws },
      },
      spec.now,
    );
    h.endSequence = entry.sequence;
    this.expireDue(ownerId, spec.now);
    return entry;
  }

  /** Suspends or reinstates the owner with a SUSPENSION or REINSTATEMENT entry (amount 0). */
  setStatus(
    ownerId: string,
    status: OwnerStatus,
    spec: Omit<EntrySpec, "ownerId" | "amount">,
    now: Date,
  ): NewEntry {
    const { entry } = this.append({ ...spec, ownerId, amount: 0 }, now);
    this.#owner(ownerId).status = status;
    return entry;
  }

  #push(
    o: OwnerState,
    spec: EntrySpec & { now: Date },
    balanceAfter = nextBalance(o.ownerId, o.balance, spec.amount),
  ): NewEntry {
    const entry: NewEntry = {
      app: spec.app,
      operation: spec.operation,
      ownerId: o.ownerId,
      amount: spec.amount,
      balanceAfter,
      heldAfter: o.held,
      sequence: o.lastSequence + 1,
      nonce: spec.nonce,
      limitPeriod: spec.limitPeriod ?? null,
      createdAt: spec.now,
      expiresAt: spec.expiresAt ?? null,
      holdId: spec.holdId ?? null,
      reverses: spec.reverses ?? null,
      counterpartyOwnerId: spec.counterpartyOwnerId ?? null,
      reason: spec.reason ?? null,
      actor: null,
    };
    o.balance = balanceAfter;
    o.lastSequence = entry.sequence;
    o.touched = true;
    this.#entries.push(entry);
    return entry;
  }

  /** The entries this draft appended, in order. */
  entries(): readonly NewEntry[] {
    return this.#entries;
  }

  changes() {
    return {
      owners: this.#owners,
      limits: this.#limits,
      entries: this.#entries,
      allocations: this.#allocations,
      facts: this.#facts,
      rows: this.#rows,
    };
  }
}
