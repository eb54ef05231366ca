// Group commit: concurrent writes of any kind are gathered and written in one transaction. The first
// write starts a batch at once; while a batch is in flight the next one gathers, and a second batch is
// started beside it only when the queue is long, so batches grow with load (the fixed cost of a batch
// is paid once for many writes) and stay at one write when the system is idle.
//
// The runner knows no rule. For each batch it: looks the nonces up (replays are answered from their
// recorded entries, without a lock); locks and loads what the commands declared they need; decides
// each command in arrival order against the state so far (each gets its own answer: a refused,
// conflicting or replayed one never fails its neighbours); writes every accepted command's effects
// with one statement, sent with COMMIT. If the database refuses a batch as a whole (a race with another
// process on a nonce), its commands are retried one by one.
import { DatabaseUnavailableError, LedgerError, NonceConflictError } from "../domain/errors.js";
import type { LedgerDb } from "../store/client.js";
import { translateDriverError } from "../store/errors.js";
import { findEntriesByNonces, findUsedLimits, lockOwners } from "../store/load.js";
import { read, withDeadline, type EntryRow } from "../store/reads.js";
import { sqlClientOf, type SqlClient } from "../store/sql-client.js";
import { writeAndCommit } from "../store/write.js";
import type { Command, FactLoader } from "./command.js";
import { BatchState, type LimitKey } from "./state.js";

export interface GroupCommitOptions {
  /** Most commands in one transaction. 1 turns batching off: one transaction per request. */
  batchSizeMax: number;
  /** Batches of this process in flight at once, so the database works while the next batch gathers. */
  batchesInFlightMax: number;
  /**
   * With a batch already in flight, another is started only once this many commands wait: a short
   * queue waits for the batch in flight and joins the next, larger one.
   */
  queueLongMin: number;
  timeoutMs: number;
}

interface Pending {
  command: Command<unknown>;
  resolve: (answer: unknown) => void;
  reject: (error: unknown) => void;
}

type Settled = { ok: true; answer: unknown } | { ok: false; error: unknown };

/** What group commit has done so far: batches started and the commands they carried. */
export interface GroupCommitStats {
  batches: number;
  operations: number;
  largestBatch: number;
}

export type Plan =
  | { kind: "replay"; row: EntryRow }
  /** Same nonce as a command accepted earlier in this batch: that one's entry, replayed. */
  | { kind: "replay-in-batch"; of: number }
  | { kind: "refused"; error: LedgerError }
  | { kind: "accepted"; answer: (rows: readonly EntryRow[]) => unknown; entries: number[] };

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

  submit<A>(command: Command<A>): Promise<A> {
    return new Promise<A>((resolve, reject) => {
      this.#queue.push({ command, resolve: resolve as (a: unknown) => void, reject });
      this.#pump();
    });
  }

  stats(): GroupCommitStats {
    return { ...this.#stats };
  }

  #pump(): void {
    while (
      this.#queue.length > 0 &&
      (this.#inFlight === 0 ||
        (this.#inFlight < this.#opts.batchesInFlightMax && this.#queue.length >= this.#opts.queueLongMin))
    ) {
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
      settled = await this.#commit(batch.map((p) => p.command));
    } catch (error) {
      // #commit answers every failure it knows; anything else still answers every waiting request.
      settled = batch.map(() => ({ ok: false, error }));
    }
    settled.forEach((s, i) => {
      const p = batch[i];
      if (!p) return;
      if (s.ok) p.resolve(s.answer);
      else p.reject(s.error);
    });
  }

  async #commit(batch: readonly Command<unknown>[], again = true): Promise<Settled[]> {
    try {
      return await withDeadline(this.#apply(batch), this.#opts.timeoutMs);
    } catch (caught) {
      const error = translateDriverError(caught);
      if (batch.length > 1 && again && error instanceof NonceConflictError) {
        // Another process (or this one's other batch) committed one of these nonces after the lookup:
        // decide the whole batch once more, when the lookup will find it, before going one by one.
        return this.#commit(batch, false);
      }
      if (batch.length > 1 && !(error instanceof DatabaseUnavailableError)) {
        // The batch failed as a whole: find out which command it was by retrying one by one, in order.
        const settled: Settled[] = [];
        for (const command of batch) settled.push(...(await this.#commit([command], false)));
        return settled;
      }
      const only = batch[0];
      if (only?.nonce !== undefined && error instanceof NonceConflictError) {
        // Another process won this nonce at the unique constraint: its answer is a replay, or a conflict.
        try {
          const existing = await read(
            () => findEntriesByNonces(this.#db, this.#app, [only.nonce ?? ""]),
            this.#opts.timeoutMs,
          );
          const row = existing.get(only.nonce);
          if (row) return [replayOf(only, row)];
        } catch (readError) {
          return [{ ok: false, error: readError }];
        }
      }
      return batch.map(() => ({ ok: false, error }));
    }
  }

  async #apply(batch: readonly Command<unknown>[]): Promise<Settled[]> {
    const nonces = batch.flatMap((c) => (c.nonce === undefined ? [] : [c.nonce]));
    // Nonces first, outside any transaction: an entry never changes once written, so a replay (or a
    // conflict) is answered without any lock, and a batch of nothing but replays writes nothing at all.
    // A duplicate committed by someone else after this read loses at the unique constraint instead,
    // and is then answered one by one. (Looking them up beside the locks, on another connection, saved
    // no time: the transaction then held its locks while it waited for the lookup. docs/BENCHMARKS.md.)
    const existing = await findEntriesByNonces(this.#db, this.#app, nonces);
    const toWrite = batch.filter((c) => c.nonce === undefined || !existing.has(c.nonce));
    if (toWrite.length === 0) return batch.map((c) => replayOf(c, existing.get(c.nonce ?? "")));

    return this.#db.transaction(async (tx) => {
      // The limits are read with the locks, for the clock before them; the entries carry the clock read
      // after them, so an owner's entries carry times that never go back as sequences go up, and a daily
      // limit counts the day the entry is written. Should the day change in between (around midnight
      // UTC), the limits are read again for the new day.
      const needsAt = (at: Date) => {
        const owners: string[] = [];
        const limits: LimitKey[] = [];
        const facts = new Map<FactLoader, Set<string>>();
        for (const c of toWrite) {
          const needs = c.needs(at);
          owners.push(...needs.owners);
          limits.push(...(needs.limits ?? []));
          for (const { loader, keys } of needs.facts ?? []) {
            const set = facts.get(loader) ?? new Set<string>();
            for (const k of keys) set.add(k);
            facts.set(loader, set);
          }
        }
        return { owners, limits, facts };
      };
      const before = needsAt(this.#clock());
      const locked = await lockOwners(tx, before.owners, before.limits, before.facts);
      const now = this.#clock();
      const after = needsAt(now);
      const samePeriods =
        after.limits.length === before.limits.length &&
        after.limits.every((k, i) => before.limits[i]?.period === k.period);
      const used = samePeriods ? locked.usedLimits : await findUsedLimits(tx, after.limits);

      const state = new BatchState(locked.owners, used, locked.facts);
      const plans = decideBatch(batch, existing, state, now);
      const rows = await writeAndCommit(tx, state.effects(), now);
      const rowsOf = (plan: Plan) =>
        plan.kind === "accepted" ? plan.entries.map((i) => rows[i]).filter((r) => r !== undefined) : [];
      return plans.map((plan, index): Settled => {
        const command = batch[index];
        if (!command) return { ok: false, error: new Error(`no command ${index} in its batch`) };
        switch (plan.kind) {
          case "refused":
            return { ok: false, error: plan.error };
          case "replay":
            return replayOf(command, plan.row);
          case "replay-in-batch": {
            const first = plans[plan.of];
            const row = first ? rowsOf(first).find((r) => r.nonce === command.nonce) : undefined;
            return replayOf(command, row);
          }
          case "accepted":
            return { ok: true, answer: plan.answer(rowsOf(plan)) };
        }
      });
    });
  }
}

/**
 * Decides every command of a batch, in arrival order, against the state loaded under the locks and the
 * entries already recorded under their nonces; folds each accepted command's effects into the state.
 * Pure but for `state`, which ends holding the batch's effects.
 */
export function decideBatch(
  batch: readonly Command<unknown>[],
  existing: ReadonlyMap<string, EntryRow>,
  state: BatchState,
  now: Date,
): Plan[] {
  const acceptedByNonce = new Map<string, number>();
  let entryCount = 0;
  return batch.map((command, index): Plan => {
    const nonce = command.nonce;
    const recorded = nonce === undefined ? undefined : existing.get(nonce);
    if (recorded) return { kind: "replay", row: recorded };
    const earlier = nonce === undefined ? undefined : acceptedByNonce.get(nonce);
    if (earlier !== undefined) return { kind: "replay-in-batch", of: earlier };
    const draft = state.draft();
    let decision;
    try {
      decision = command.decide(draft, now);
    } catch (error) {
      // The ledger's own rules (a balance out of bounds) refuse by throwing from the draft.
      if (error instanceof LedgerError) return { kind: "refused", error };
      throw error;
    }
    if (!decision.ok) return { kind: "refused", error: decision.error };
    state.commit(draft);
    if (nonce !== undefined) acceptedByNonce.set(nonce, index);
    const count = draft.entries().length;
    const entries = Array.from({ length: count }, (_, i) => entryCount + i);
    entryCount += count;
    return { kind: "accepted", answer: decision.answer, entries };
  });
}

function replayOf(command: Command<unknown>, row: EntryRow | undefined): Settled {
  if (!row || command.nonce === undefined) {
    return { ok: false, error: new Error("a replay without the entry its nonce recorded") };
  }
  const answer = command.replay(row);
  return answer === null ? { ok: false, error: new NonceConflictError(command.nonce) } : { ok: true, answer };
}
