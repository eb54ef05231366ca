// Group commit: concurrent posts are gathered and written in one transaction. There is no waiting
// delay: the first request starts a batch at once, and whatever arrives while batches are in flight
// forms the next one, so batches grow with load and stay at one request when the system is idle.
// Within a batch each operation is decided in arrival order, exactly as if the batch's requests had
// come one by one, and gets its own answer: a refused, conflicting or replayed operation never fails
// its neighbours. If the database refuses a batch as a whole (a race with another process on a nonce,
// say), its operations are retried one by one.
import type { LedgerDb } from "../store/client.js";
import {
  findEntriesByNonces,
  findUsedLimits,
  limitKeyString,
  lockOwners,
  writeBatchAndCommit,
  type AcceptedEntry,
  type LimitKey,
  type OwnerState,
} from "../store/write.js";
import { sqlClientOf, type SqlClient } from "../store/sql-client.js";
import { read, toLedgerEntry, withDeadline, type EntryRow } from "../store/reads.js";
import { translateDriverError } from "../store/errors.js";
import {
  DatabaseUnavailableError,
  LedgerError,
  LimitReachedError,
  NonceConflictError,
} from "../domain/errors.js";
import type { PostOperationInput } from "../domain/input.js";
import type { OperationDefinition } from "../domain/operations.js";
import { limitPeriod, nextBalance } from "../domain/rules.js";
import type { PostResult } from "../domain/types.js";

/** A post that passed every check that needs no database. */
export interface ValidatedPost {
  req: PostOperationInput;
  def: OperationDefinition;
  /** The signed amount the operation applies. */
  amount: number;
}

export interface GroupCommitOptions {
  /** Most operations in one transaction. 1 turns batching off: one transaction per request. */
  batchSizeMax: number;
  /** Batches of this process in flight at once, so the database works while the next batch gathers. */
  batchesInFlightMax: number;
  timeoutMs: number;
}

interface Pending extends ValidatedPost {
  resolve: (result: PostResult) => void;
  reject: (error: unknown) => void;
}

type Outcome =
  | { kind: "accepted"; entry: AcceptedEntry }
  | { kind: "replay"; row: EntryRow }
  /** Same nonce as an operation accepted earlier in this batch: its answer, replayed. */
  | { kind: "replay-in-batch"; of: number }
  | { kind: "refused"; error: LedgerError };

/**
 * Decides every operation of a batch, in arrival order, against the locked balances, the nonces and
 * limits already used: the rules of a single post, applied one after another in memory. Pure.
 */
export function decideBatch(
  app: string,
  batch: readonly ValidatedPost[],
  owners: ReadonlyMap<string, OwnerState>,
  existingByNonce: ReadonlyMap<string, EntryRow>,
  usedLimits: ReadonlySet<string>,
  now: Date,
): Outcome[] {
  const state = new Map([...owners].map(([k, v]) => [k, { ...v }]));
  const acceptedByNonce = new Map<string, number>();
  const limitsTaken = new Set(usedLimits);
  return batch.map((p, index): Outcome => {
    const { req, def, amount } = p;
    const same = (o: { ownerId: string; operation: string; amount: number }) =>
      o.ownerId === req.owner_id && o.operation === req.operation && o.amount === amount;

    const existing = existingByNonce.get(req.nonce);
    if (existing) {
      return same({ ...existing, amount: Number(existing.amount) })
        ? { kind: "replay", row: existing }
        : { kind: "refused", error: new NonceConflictError(req.nonce) };
    }
    const earlier = acceptedByNonce.get(req.nonce);
    if (earlier !== undefined) {
      const first = batch[earlier];
      return first &&
        same({ ownerId: first.req.owner_id, operation: first.req.operation, amount: first.amount })
        ? { kind: "replay-in-batch", of: earlier }
        : { kind: "refused", error: new NonceConflictError(req.nonce) };
    }
    const owner = state.get(req.owner_id);
    if (!owner) throw new Error(`owner ${req.owner_id} was not locked for its batch`);
    let balanceAfter: number;
    try {
      balanceAfter = nextBalance(req.owner_id, owner.balance, amount);
    } catch (error) {
      if (error instanceof LedgerError) return { kind: "refused", error };
      throw error;
    }
    const period = limitPeriod(def.limit, now);
    if (period !== null) {
      const key = limitKeyString({ ownerId: req.owner_id, operation: req.operation, period });
      if (limitsTaken.has(key)) {
        return {
          kind: "refused",
          error: new LimitReachedError(req.owner_id, req.operation, def.limit ?? "once", period),
        };
      }
      limitsTaken.add(key);
    }
    owner.balance = balanceAfter;
    owner.lastSequence += 1;
    acceptedByNonce.set(req.nonce, index);
    return {
      kind: "accepted",
      entry: {
        app,
        operation: req.operation,
        ownerId: req.owner_id,
        amount,
        balanceAfter,
        sequence: owner.lastSequence,
        nonce: req.nonce,
        limitPeriod: period,
        limitKind: def.limit ?? null,
        createdAt: now,
      },
    };
  });
}

type Settled = { ok: true; result: PostResult } | { ok: false; error: unknown };

/** What group commit has done so far: batches started and the operations they carried. */
export interface GroupCommitStats {
  batches: number;
  operations: number;
  largestBatch: number;
}

export class GroupCommitter {
  readonly #db: SqlClient;
  readonly #app: string;
  readonly #clock: () => Date;
  readonly #opts: GroupCommitOptions;
  #queue: Pending[] = [];
  #inFlight = 0;
  #stats: GroupCommitStats = { batches: 0, operations: 0, largestBatch: 0 };

  constructor(db: LedgerDb, app: string, clock: () => Date, opts: GroupCommitOptions) {
    this.#db = sqlClientOf(db);
    this.#app = app;
    this.#clock = clock;
    this.#opts = opts;
  }

  submit(post: ValidatedPost): Promise<PostResult> {
    return new Promise<PostResult>((resolve, reject) => {
      this.#queue.push({ ...post, resolve, reject });
      this.#pump();
    });
  }

  stats(): GroupCommitStats {
    return { ...this.#stats };
  }

  #pump(): void {
    while (this.#inFlight < this.#opts.batchesInFlightMax && this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#opts.batchSizeMax);
      this.#inFlight += 1;
      this.#stats.batches += 1;
      this.#stats.operations += batch.length;
      this.#stats.largestBatch = Math.max(this.#stats.largestBatch, batch.length);
      void this.#run(batch).finally(() => {
        this.#inFlight -= 1;
        this.#pump();
      });
    }
  }

  async #run(batch: Pending[]): Promise<void> {
    let settled: Settled[];
    try {
      settled = await this.#commit(batch);
    } catch (error) {
      // #commit answers every failure it knows; anything else still answers every waiting request.
      settled = batch.map(() => ({ ok: false, error }));
    }
    settled.forEach((s, i) => {
      const p = batch[i];
      if (!p) return;
      if (s.ok) p.resolve(s.result);
      else p.reject(s.error);
    });
  }

  async #commit(batch: readonly ValidatedPost[]): Promise<Settled[]> {
    try {
      return await withDeadline(this.#apply(batch), this.#opts.timeoutMs);
    } catch (caught) {
      const error = translateDriverError(caught);
      if (batch.length > 1 && !(error instanceof DatabaseUnavailableError)) {
        // The batch failed as a whole: find out which operation it was by retrying one by one, in order.
        const settled: Settled[] = [];
        for (const post of batch) settled.push(...(await this.#commit([post])));
        return settled;
      }
      const only = batch[0];
      if (only && error instanceof NonceConflictError) {
        // Another process won this nonce at the unique constraint: its answer is a replay, or a conflict.
        try {
          const existing = await read(
            () => findEntriesByNonces(this.#db, this.#app, [only.req.nonce]),
            this.#opts.timeoutMs,
          );
          if (existing.size > 0) {
            const [outcome] = decideBatch(this.#app, [only], new Map(), existing, new Set(), this.#clock());
            if (outcome) return [this.#settle(outcome, 0, [])];
          }
        } catch (readError) {
          return batch.map(() => ({ ok: false, error: readError }));
        }
      }
      return batch.map(() => ({ ok: false, error }));
    }
  }

  async #apply(batch: readonly ValidatedPost[]): Promise<Settled[]> {
    // Nonces first, outside any transaction: an entry never changes once written, so a replay (or a
    // conflict) is answered without any lock, and a batch of nothing but replays writes nothing at all.
    // A duplicate committed by someone else after this read loses at the unique constraint instead,
    // and is then answered one by one.
    const existing = await findEntriesByNonces(
      this.#db,
      this.#app,
      batch.map((p) => p.req.nonce),
    );
    const toWrite = batch.filter((p) => !existing.has(p.req.nonce));
    if (toWrite.length === 0) {
      const outcomes = decideBatch(this.#app, batch, new Map(), existing, new Set(), this.#clock());
      return outcomes.map((o, i) => this.#settle(o, i, []));
    }
    return this.#db.transaction(async (tx) => {
      // The limits are read with the locks, for the period of the clock before them; the entries carry
      // the clock read after them, so an owner's entries carry times that never go back as sequences go
      // up, and a daily limit counts the day the entry is written. Should the day change in between
      // (around midnight UTC), the limits are read again for the new day.
      const limitKeysAt = (at: Date) => {
        const keys: LimitKey[] = [];
        for (const p of toWrite) {
          const period = limitPeriod(p.def.limit, at);
          if (period !== null) keys.push({ ownerId: p.req.owner_id, operation: p.req.operation, period });
        }
        return keys;
      };
      const before = limitKeysAt(this.#clock());
      const locked = await lockOwners(
        tx,
        toWrite.map((p) => p.req.owner_id),
        before,
      );
      const now = this.#clock();
      const keys = limitKeysAt(now);
      const used = keys.every((k, i) => before[i]?.period === k.period)
        ? locked.usedLimits
        : await findUsedLimits(tx, keys);
      const outcomes = decideBatch(this.#app, batch, locked.owners, existing, used, now);
      const accepted = outcomes.flatMap((o) => (o.kind === "accepted" ? [o.entry] : []));
      const touched = new Set(accepted.map((e) => e.ownerId));
      const unused = [...locked.owners]
        .filter(([id, state]) => state.created && !touched.has(id))
        .map(([id]) => id);
      const rows = await writeBatchAndCommit(tx, accepted, unused, now);
      // Rows come back in the order of `accepted`, which is the order of the accepted outcomes.
      const rowByIndex: (EntryRow | undefined)[] = [];
      let next = 0;
      for (const o of outcomes) rowByIndex.push(o.kind === "accepted" ? rows[next++] : undefined);
      return outcomes.map((o, i) => this.#settle(o, i, rowByIndex));
    });
  }

  #settle(outcome: Outcome, index: number, rowByIndex: readonly (EntryRow | undefined)[]): Settled {
    if (outcome.kind === "refused") return { ok: false, error: outcome.error };
    const row =
      outcome.kind === "replay" ? outcome.row : rowByIndex[outcome.kind === "accepted" ? index : outcome.of];
    if (!row) return { ok: false, error: new Error(`no entry row for operation ${index} of its batch`) };
    const entry = toLedgerEntry(row);
    return {
      ok: true,
      result: { entry, balance: entry.balance_after, replayed: outcome.kind !== "accepted" },
    };
  }
}
