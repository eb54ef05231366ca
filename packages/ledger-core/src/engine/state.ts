// The state a batch is decided against, and the draft one command decides in.
//
// A batch loads, under its owners' locks, what its commands declared they need: each owner's row (the
// lock: balance, newest sequence, status) with its open grants, and the limits already used. Commands
// are then decided one after another, in arrival order. Each decides in a Draft: a copy-on-write view
// of the state that records the effects (entries, allocations, grant changes) the command asks for.
// An accepted command's draft is folded into the state, so the next command sees it; a refused one is
// dropped and leaves no trace. Nothing here does I/O.
//
// The ledger's own rules live here, below every command, so that no kind of write can skip them:
// an entry chains the owner's running balance and sequence; any entry for an owner first expires its
// grants that are due; a debit spends grants in burn order and records what it took (allocations).
import {
  EXPIRY_OPERATION,
  byBurnOrder,
  drawInBurnOrder,
  expiryNonce,
  isDue,
  remainderOf,
  type OpenGrant,
} from "../domain/grants.js";
import { nextBalance } from "../domain/rules.js";
import type { FactLoader, RowWriter } from "./command.js";

export type OwnerStatus = "active" | "suspended";

/** An owner as loaded under its lock. */
export interface LockedOwner {
  ownerId: string;
  balance: number;
  lastSequence: number;
  status: OwnerStatus;
  /** The row was created by this batch's lock (the owner had none): dropped again if nothing is written. */
  created: boolean;
  /** Open grants (unspent remainder, not yet expired), in burn order. */
  grants: OpenGrant[];
}

export interface LimitKey {
  ownerId: string;
  operation: string;
  period: string;
}

export const limitKeyString = (k: LimitKey) => JSON.stringify([k.ownerId, k.operation, k.period]);

/** An entry to append. Its id comes from the database. */
export interface NewEntry {
  app: string;
  operation: string;
  ownerId: string;
  amount: number;
  balanceAfter: number;
  sequence: number;
  nonce: string;
  limitPeriod: string | null;
  createdAt: Date;
  expiresAt: Date | null;
}

/** Credits an entry (a debit, or an expiry) took from a grant. */
export interface Allocation {
  ownerId: string;
  /** The entry that took them. */
  sequence: number;
  grantSequence: number;
  amount: number;
}

/** A grant as it stands after the batch: a new one to insert, or a changed remainder to update. */
export interface GrantWrite {
  ownerId: string;
  sequence: number;
  app: string;
  amount: number;
  remaining: number;
  expiresAt: Date;
  createdAt: Date;
  /** The sequence of the entry that expired it, once expired. */
  expiredSequence: number | null;
  isNew: boolean;
}

/** Everything a batch writes, in the order it was decided. */
export interface Effects {
  entries: NewEntry[];
  allocations: Allocation[];
  grants: GrantWrite[];
  /** Each touched owner's row after the batch. */
  owners: { ownerId: string; balance: number; lastSequence: number; status: OwnerStatus }[];
  /** Rows the lock created for owners nothing was written for: removed again. */
  unusedOwners: string[];
  /** Features' own rows, by writer, in decision order. */
  rows: Map<RowWriter, unknown[]>;
}

/** Facts loaded for a batch, by loader and key. */
export type LoadedFacts = ReadonlyMap<FactLoader, ReadonlyMap<string, unknown>>;

interface GrantState extends Omit<OpenGrant, "remaining"> {
  remaining: number;
  createdAt: Date;
  expiredSequence: number | null;
  isNew: boolean;
  /** remaining as loaded (new grants: undefined), to write only the ones that changed. */
  loadedRemaining: number | undefined;
}

interface OwnerState {
  ownerId: string;
  balance: number;
  lastSequence: number;
  status: OwnerStatus;
  created: boolean;
  touched: boolean;
  grants: GrantState[];
}

const cloneOwner = (o: OwnerState): OwnerState => ({ ...o, grants: o.grants.map((g) => ({ ...g })) });

/** What a command may read of an owner. */
export interface OwnerView {
  readonly ownerId: string;
  readonly balance: number;
  readonly lastSequence: number;
  readonly status: OwnerStatus;
  /** Open grants in burn order, with what is left of each. */
  readonly grants: readonly OpenGrant[];
}

export class BatchState {
  readonly #owners = new Map<string, OwnerState>();
  readonly #usedLimits: Set<string>;
  readonly #entries: NewEntry[] = [];
  readonly #allocations: Allocation[] = [];
  readonly #facts = new Map<FactLoader, Map<string, unknown>>();
  readonly #rows = new Map<RowWriter, unknown[]>();

  constructor(owners: Iterable<LockedOwner>, usedLimits: Iterable<string>, facts: LoadedFacts = new Map()) {
    for (const [loader, byKey] of facts) this.#facts.set(loader, new Map(byKey));
    for (const o of owners) {
      this.#owners.set(o.ownerId, {
        ownerId: o.ownerId,
        balance: o.balance,
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

  effects(): Effects {
    const owners = [...this.#owners.values()];
    return {
      entries: [...this.#entries],
      allocations: [...this.#allocations],
      grants: owners.flatMap((o) =>
        o.grants
          .filter((g) => g.isNew || g.remaining !== g.loadedRemaining)
          .map((g) => ({
            ownerId: o.ownerId,
            sequence: g.sequence,
            app: g.app,
            amount: g.amount,
            remaining: g.remaining,
            expiresAt: g.expiresAt,
            createdAt: g.createdAt,
            expiredSequence: g.expiredSequence,
            isNew: g.isNew,
          })),
      ),
      owners: owners
        .filter((o) => o.touched)
        .map((o) => ({
          ownerId: o.ownerId,
          balance: o.balance,
          lastSequence: o.lastSequence,
          status: o.status,
        })),
      unusedOwners: owners.filter((o) => o.created && !o.touched).map((o) => o.ownerId),
      rows: new Map(this.#rows),
    };
  }
}

/** The spec of an entry a command appends; the draft fills in its sequence and running balance. */
export interface EntrySpec {
  app: string;
  operation: string;
  ownerId: string;
  /** Signed. */
  amount: number;
  nonce: string;
  limitPeriod?: string | null;
  /** A credit with an expiry becomes a grant. */
  expiresAt?: Date | null;
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

  /** The owner as this draft sees it. Grants that are due at `now` are not counted. */
  owner(ownerId: string, now: Date): OwnerView {
    const o = this.#owner(ownerId);
    const open = o.grants.filter((g) => g.remaining > 0 && g.expiredSequence === null);
    const due = open.filter((g) => isDue(g, now));
    return {
      ownerId,
      balance: o.balance - remainderOf(due),
      lastSequence: o.lastSequence,
      status: o.status,
      grants: open.filter((g) => !isDue(g, now)),
    };
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
   * Writes an EXPIRY entry for each of the owner's grants that is due at `now`, soonest first, each
   * under the app that granted it. Returns how many expired.
   */
  expireDue(ownerId: string, now: Date): number {
    const o = this.#owner(ownerId);
    let expired = 0;
    for (const g of o.grants) {
      if (g.remaining === 0 || g.expiredSequence !== null || !isDue(g, now)) continue;
      const entry = this.#push(o, {
        app: g.app,
        operation: EXPIRY_OPERATION,
        ownerId,
        amount: -g.remaining,
        nonce: expiryNonce(ownerId, g.sequence),
        expiresAt: g.expiresAt,
        now,
      });
      this.#allocations.push({
        ownerId,
        sequence: entry.sequence,
        grantSequence: g.sequence,
        amount: g.remaining,
      });
      g.remaining = 0;
      g.expiredSequence = entry.sequence;
      expired += 1;
    }
    return expired;
  }

  /**
   * Appends an entry for its owner, after expiring the owner's due grants: chains its sequence and
   * running balance; a credit with an expiry opens a grant; a debit spends grants in burn order.
   * @throws InsufficientBalanceError / BalanceLimitExceededError, leaving the draft to be dropped
   */
  append(spec: EntrySpec, now: Date): NewEntry {
    const o = this.#owner(spec.ownerId);
    this.expireDue(spec.ownerId, now);
    const balanceAfter = nextBalance(spec.ownerId, o.balance, spec.amount);
    const entry = this.#push(o, { ...spec, now }, balanceAfter);
    if (spec.amount > 0 && spec.expiresAt) {
      o.grants.push({
        sequence: entry.sequence,
        app: spec.app,
        amount: spec.amount,
        remaining: spec.amount,
        expiresAt: spec.expiresAt,
        createdAt: now,
        expiredSequence: null,
        isNew: true,
        loadedRemaining: undefined,
      });
      o.grants.sort(byBurnOrder);
    } else if (spec.amount < 0) {
      const open = o.grants.filter((g) => g.remaining > 0 && g.expiredSequence === null);
      for (const draw of drawInBurnOrder(open, -spec.amount)) {
        const grant = open.find((g) => g.sequence === draw.grantSequence);
        if (!grant) throw new Error(`grant ${draw.grantSequence} vanished while drawing`);
        grant.remaining -= draw.amount;
        this.#allocations.push({
          ownerId: spec.ownerId,
          sequence: entry.sequence,
          grantSequence: draw.grantSequence,
          amount: draw.amount,
        });
      }
    }
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
      sequence: o.lastSequence + 1,
      nonce: spec.nonce,
      limitPeriod: spec.limitPeriod ?? null,
      createdAt: spec.now,
      expiresAt: spec.expiresAt ?? null,
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
