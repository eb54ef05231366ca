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
import {
  entriesByNoncesStatement,
  findEntriesByNonces,
  findUsedLimits,
  lockOwners,
  toRecordedEntries,
} from "../store/load.js";
import {
  entryRowOf,
  read,
  withDeadline,
  type EntryRow,
  type HoldFacts,
  type RecordedEntry,
} from "../store/reads.js";
import { sqlClientOf, type SqlClient } from "../store/sql-client.js";
import { writeReadAndCommit } from "../store/write.js";
import type { Command, FactLoader, Outbox } from "./command.js";
import { currentRequest, type RequestOrigin } from "./request-context.js";
import type { ActiveHold } from "../domain/holds.js";
import { BatchState, type LimitKey, type NewEntry } from "./state.js";

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
  /** Where each batch's events go (the events feature's outbox); none: no events are written. */
  outbox?: Outbox | undefined;
  /** Told the size of each batch as it starts (the batch-size histogram of /metrics). */
  onBatch?: ((size: number) => void) | undefined;
}

/**
 * What was submitted together: one command, or a group (a batch request) that always goes into one
 * transaction; an atomic group is written in full or not at all.
 */
interface Pending extends Unit {
  /** The request that submitted it, read when it was submitted. */
  origin: RequestOrigin | null;
  settle: (settled: Settled[]) => void;
}

export type Settled = { ok: true; answer: unknown } | { ok: false; error: unknown };

/** Why an atomic group wrote nothing: the first of its commands that was refused. */
export class GroupRefused extends Error {
  readonly index: number;
  readonly error: LedgerError;
  constructor(index: number, error: LedgerError) {
    super(`command ${index} of an atomic group was refused: ${error.code}`);
    this.index = index;
    this.error = error;
  }
}

/** What group commit has done so far: batches started and the commands they carried. */
export interface GroupCommitStats {
  batches: number;
  operations: number;
  largestBatch: number;
}

export type Plan =
  | { kind: "replay"; row: RecordedEntry }
  /** Same nonce as a command accepted earlier in this batch: that one's entry, replayed. */
  | { kind: "replay-in-batch"; of: number }
  | { kind: "refused"; error: LedgerError }
  /** A command of an atomic group whose other command was refused: nothing of the group is written. */
  | { kind: "group-refused"; refusal: GroupRefused }
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
      this.#queue.push({
        commands: [command],
        atomic: false,
        origin: currentRequest(),
        settle: ([s]) => {
          if (s?.ok) resolve(s.answer as A);
          else reject(s?.error instanceof Error ? s.error : new Error(s ? String(s.error) : "no answer"));
        },
      });
      this.#pump();
    });
  }

  /**
   * Submits commands that go into one transaction together, each answered in order as if it had come
   * alone; with `atomic`, either every command is accepted (or replayed) and written, or none is and
   * each answers GroupRefused, naming the first refused.
   */
  submitGroup(commands: readonly Command<unknown>[], atomic: boolean): Promise<Settled[]> {
    if (commands.length === 0) return Promise.resolve([]);
    return new Promise<Settled[]>((settle) => {
      this.#queue.push({ commands, atomic, origin: currentRequest(), settle });
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
      // Whole submissions only: a group is never split between transactions.
      let size = 0;
      let take = 0;
      for (const p of this.#queue) {
        if (take > 0 && size + p.commands.length > this.#opts.batchSizeMax) break;
        size += p.commands.length;
        take += 1;
      }
      const batch = this.#queue.splice(0, take);
      this.#inFlight += 1;
      this.#stats.batches += 1;
      this.#stats.operations += size;
      this.#stats.largestBatch = Math.max(this.#stats.largestBatch, size);
      this.#opts.onBatch?.(size);
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
      settled = batch.flatMap((p) => p.commands.map(() => ({ ok: false as const, error })));
    }
    let at = 0;
    for (const p of batch) {
      p.settle(settled.slice(at, at + p.commands.length));
      at += p.commands.length;
    }
  }

  async #commit(units: readonly Unit[], again = true): Promise<Settled[]> {
    const batch = units.flatMap((u) => u.commands);
    try {
      return await withDeadline(this.#apply(units), this.#opts.timeoutMs);
    } catch (caught) {
      const error = translateDriverError(caught);
      if (batch.length > 1 && again && error instanceof NonceConflictError) {
        // Another process (or this one's other batch) committed one of these nonces after the lookup:
        // decide the whole batch once more, when the lookup will find it, before going one by one.
        return this.#commit(units, false);
      }
      // A non-atomic group's commands stand alone: retried one by one like separate submissions.
      const singles = units.flatMap((u) =>
        u.atomic ? [u] : u.commands.map((c) => ({ commands: [c], atomic: false, origin: u.origin ?? null })),
      );
      if (singles.length > 1 && !(error instanceof DatabaseUnavailableError)) {
        // The batch failed as a whole: find out which submission it was by retrying one by one, in order.
        const settled: Settled[] = [];
        for (const unit of singles) settled.push(...(await this.#commit([unit], false)));
        return settled;
      }
      const only = batch.length === 1 ? batch[0] : undefined;
      if (only?.nonce !== undefined && error instanceof NonceConflictError) {
        // Another process won this nonce at the unique constraint: its answer is a replay, or a conflict.
        try {
          const existing = await read(
            () => findEntriesByNonces(this.#db, this.#app, [only.nonce ?? "", ...(only.linkedNonces ?? [])]),
            this.#opts.timeoutMs,
          );
          const row = existing.get(only.nonce);
          if (row) return [replayOf(only, row, existing)];
        } catch (readError) {
          return [{ ok: false, error: readError }];
        }
      }
      return batch.map(() => ({ ok: false, error }));
    }
  }

  async #apply(units: readonly Unit[]): Promise<Settled[]> {
    const batch = units.flatMap((u) => u.commands);
    const nonces = batch.flatMap((c) => (c.nonce === undefined ? [] : [c.nonce, ...(c.linkedNonces ?? [])]));
    // Nonces first, outside any transaction: an entry never changes once written, so a replay (or a
    // conflict) is answered without any lock, and a batch of nothing but replays writes nothing at all.
    // A duplicate committed by someone else after this read loses at the unique constraint instead,
    // and is then answered one by one. (Looking them up beside the locks, on another connection, saved
    // no time: the transaction then held its locks while it waited for the lookup. docs/BENCHMARKS.md.)
    const existing = await findEntriesByNonces(this.#db, this.#app, nonces);
    const toWrite = batch.filter((c) => c.nonce === undefined || !existing.has(c.nonce));
    if (toWrite.length === 0) {
      return refuseAtomicUnits(
        units,
        batch.map((c) => replayOf(c, existing.get(c.nonce ?? ""), existing)),
      );
    }

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
      const plans = decideBatch(units, existing, state, now);
      // A command refused by a rule may be the copy of a request another batch committed after this
      // batch's nonce lookup (a retry racing its original, on another connection): under the locks now
      // held, that entry is visible. Its nonce is looked up again in the write round trip (before the
      // write, so the lookup sees only what others committed), and the copy is answered as the replay
      // it is. Only batches with such a refusal send it. (An atomic group's refusal is "group-refused"
      // and stands: nothing of it was written, and sent again it is answered from its entries.)
      const recheck = plans.flatMap((plan, i) => {
        const nonce = batch[i]?.nonce;
        return plan.kind === "refused" && nonce !== undefined && !(plan.error instanceof NonceConflictError)
          ? [nonce, ...(batch[i]?.linkedNonces ?? [])]
          : [];
      });
      const effects = state.effects();
      const origins = originsOf(units, plans, effects.entries.length);
      effects.entries.forEach((e, i) => {
        e.actor = origins[i]?.actor ?? null;
      });
      const outbox = this.#opts.outbox;
      if (outbox && effects.entries.length > 0) {
        effects.rows.set(outbox.writer, outbox.rowsOf(effects, origins));
      }
      const written = await writeReadAndCommit(
        tx,
        effects,
        now,
        recheck.length > 0 ? [entriesByNoncesStatement(this.#app, recheck)] : [],
      );
      const rows = written.entries;
      if (rows.length > 0) outbox?.committed?.();
      const committedMeanwhile = toRecordedEntries(written.reads[0] ?? []);
      const holdsMade = new Map(effects.holds.map((h) => [h.id, h] as const));
      const rowsOf = (plan: Plan) =>
        plan.kind === "accepted" ? plan.entries.map((i) => rows[i]).filter((r) => r !== undefined) : [];
      return plans.map((plan, index): Settled => {
        const command = batch[index];
        if (!command) return { ok: false, error: new Error(`no command ${index} in its batch`) };
        switch (plan.kind) {
          case "refused": {
            const meanwhile = committedMeanwhile.get(command.nonce ?? "");
            return meanwhile
              ? replayOf(command, meanwhile, committedMeanwhile)
              : { ok: false, error: plan.error };
          }
          case "group-refused":
            return { ok: false, error: plan.refusal };
          case "replay":
            return replayOf(command, plan.row, existing);
          case "replay-in-batch": {
            const first = plans[plan.of];
            // What the lookup would have joined: the facts of the hold the first command made or ended.
            const written = (first ? rowsOf(first) : []).map((r) => {
              const h = r.holdId === null ? undefined : holdsMade.get(r.holdId);
              const hold: HoldFacts | null = h
                ? {
                    id: h.id,
                    ownerId: h.ownerId,
                    operation: h.operation,
                    amount: h.amount,
                    expiresAt: h.expiresAt,
                    createdAt: h.createdAt,
                  }
                : null;
              return { ...r, hold };
            });
            const byNonce = new Map(written.map((r) => [r.nonce, r] as const));
            return replayOf(command, byNonce.get(command.nonce ?? ""), byNonce);
          }
          case "accepted":
            return { ok: true, answer: plan.answer(rowsOf(plan)) };
        }
      });
    });
  }
}

/** Commands submitted together, decided together. */
export interface Unit {
  commands: readonly Command<unknown>[];
  atomic: boolean;
  /** The request that submitted it (none: the ledger's own writes). */
  origin?: RequestOrigin | null;
}

/** For each entry the batch decided, the request whose command wrote it (null: the ledger's own). */
function originsOf(
  units: readonly Unit[],
  plans: readonly Plan[],
  entryCount: number,
): (RequestOrigin | null)[] {
  const origins = new Array<RequestOrigin | null>(entryCount).fill(null);
  let at = 0;
  for (const unit of units) {
    for (let i = 0; i < unit.commands.length; i += 1) {
      const plan = plans[at + i];
      if (plan?.kind === "accepted") for (const e of plan.entries) origins[e] = unit.origin ?? null;
    }
    at += unit.commands.length;
  }
  return origins;
}

/**
 * Decides every command of a batch, in arrival order, against the state loaded under the locks and the
 * entries already recorded under their nonces; folds each accepted command's effects into the state. An
 * atomic unit with a refused command is undone as a whole. Pure but for `state`, which ends holding
 * the batch's effects.
 */
export function decideBatch(
  units: readonly Unit[],
  existing: ReadonlyMap<string, RecordedEntry>,
  state: BatchState,
  now: Date,
): Plan[] {
  const acceptedByNonce = new Map<string, number>();
  const plans: Plan[] = [];
  let entryCount = 0;
  for (const unit of units) {
    const undo = unit.atomic ? state.mark() : undefined;
    const first = plans.length;
    const entriesBefore = entryCount;
    const noncesBefore = new Map(acceptedByNonce);
    let refused: GroupRefused | undefined;
    unit.commands.forEach((command, i) => {
      if (refused) return;
      const plan = decideOne(command, plans.length);
      plans.push(plan);
      if (plan.kind === "refused" && unit.atomic) refused = new GroupRefused(i, plan.error);
    });
    if (refused && undo) {
      undo();
      entryCount = entriesBefore;
      acceptedByNonce.clear();
      for (const [k, v] of noncesBefore) acceptedByNonce.set(k, v);
      plans.length = first;
      for (let i = 0; i < unit.commands.length; i += 1)
        plans.push({ kind: "group-refused", refusal: refused });
    }
  }
  return plans;

  function decideOne(command: Command<unknown>, index: number): Plan {
    const nonce = command.nonce;
    const recorded = nonce === undefined ? undefined : existing.get(nonce);
    // A nonce used for a different request is refused here, before anything is written, and not only
    // answered so after the write: an atomic group must not be written around it.
    if (recorded) {
      if (command.replay(recorded, existing) === null) {
        return { kind: "refused", error: new NonceConflictError(recorded.nonce) };
      }
      return { kind: "replay", row: recorded };
    }
    const earlier = nonce === undefined ? undefined : acceptedByNonce.get(nonce);
    if (earlier !== undefined) {
      const first = plans[earlier];
      if (nonce !== undefined && first?.kind === "accepted") {
        // What the lookup would find once the first is written (its id aside, unknown until then).
        const written = new Map(
          state
            .accepted(first.entries)
            .map(({ entry, hold }) => [entry.nonce, recordedOf(entry, hold)] as const),
        );
        const row = written.get(nonce);
        if (!row || command.replay(row, written) === null) {
          return { kind: "refused", error: new NonceConflictError(nonce) };
        }
      }
      return { kind: "replay-in-batch", of: earlier };
    }
    const draft = state.draft();
    let decision;
    try {
      decision = command.decide(draft, now);
    } catch (error) {
      // The ledger's own rules (a balance out of bounds, a suspended owner) refuse by throwing from the draft.
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
  }
}

/** An entry this batch accepted, as the nonce lookup will read it once written (its id is not known yet). */
function recordedOf(entry: NewEntry, hold: ActiveHold | null): RecordedEntry {
  return {
    ...entryRowOf(entry),
    hold: hold
      ? {
          id: hold.id,
          ownerId: hold.ownerId,
          operation: hold.operation,
          amount: hold.amount,
          expiresAt: hold.expiresAt,
          createdAt: hold.createdAt,
        }
      : null,
  };
}

/**
 * Answers without a write (every nonce recorded) are all or nothing too: an atomic unit with a refusal
 * among them (a nonce used for a different request) answers GroupRefused for each of its commands.
 */
function refuseAtomicUnits(units: readonly Unit[], settled: Settled[]): Settled[] {
  let at = 0;
  for (const unit of units) {
    const mine = settled.slice(at, at + unit.commands.length);
    const first = mine.findIndex((s) => !s.ok && s.error instanceof LedgerError);
    const refused = mine[first];
    if (unit.atomic && refused && !refused.ok && refused.error instanceof LedgerError) {
      const refusal = new GroupRefused(first, refused.error);
      for (let i = 0; i < mine.length; i += 1) settled[at + i] = { ok: false, error: refusal };
    }
    at += unit.commands.length;
  }
  return settled;
}

function replayOf(
  command: Command<unknown>,
  row: RecordedEntry | undefined,
  linked: ReadonlyMap<string, RecordedEntry>,
): Settled {
  if (!row || command.nonce === undefined) {
    return { ok: false, error: new Error("a replay without the entry its nonce recorded") };
  }
  const answer = command.replay(row, linked);
  return answer === null ? { ok: false, error: new NonceConflictError(command.nonce) } : { ok: true, answer };
}
