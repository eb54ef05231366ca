// A kind of write. The engine (group commit) runs any mix of commands in one batch and knows no rule of
// its own: each command says what it must lock and load, how its nonce is recorded, and decides, purely,
// against the state loaded under the locks (formance/ledger's log processor is the model: one runner
// owning transaction, locks and idempotency for every command).
import type { RequestOrigin } from "./request-context.js";
import type { LedgerError, LedgerErrorCode } from "../domain/errors.js";
import type { EntryRow, RecordedEntry } from "../store/reads.js";
import type { Rows, Statement } from "../store/sql-client.js";
import type { Draft, Effects, LimitKey } from "./state.js";

/**
 * A feature's own facts, read under the batch's locks in the same round trip as the locks (a hold by
 * its id, say). One statement for all the keys of a batch; the facts come back keyed by string.
 */
export interface FactLoader<F = unknown> {
  readonly name: string;
  statement(keys: readonly string[]): Statement;
  parse(rows: Rows): Map<string, F>;
}

/**
 * A feature's own rows, written in the batch's write round trip, after the ledger's statement and
 * before COMMIT. One statement for all the rows of a batch (arrays, so its text never changes).
 */
export interface RowWriter<R = unknown> {
  readonly name: string;
  statement(rows: readonly R[]): Statement;
}

/**
 * Where a batch's events go: rows derived from its effects, written by `writer` last in the write round
 * trip (so they commit if and only if the entries do). `origins` names, for each entry, the request
 * whose command wrote it (null for the ledger's own writes). `committed` is told after each batch that
 * wrote entries has committed.
 */
export interface Outbox<R = unknown> {
  readonly writer: RowWriter<R>;
  rowsOf(effects: Effects, origins: readonly (RequestOrigin | null)[]): R[];
  committed?(): void;
}

/** What a command needs loaded (and locked) before it can be decided. */
export interface Needs {
  /** Owners whose rows are locked (in one global order) and loaded with their open grants. */
  owners: readonly string[];
  /** Limit periods whose use is read under the locks. */
  limits?: readonly LimitKey[];
  /** A feature's facts, by key. */
  facts?: readonly { loader: FactLoader; keys: readonly string[] }[];
}

export type Decision<A> =
  | {
      ok: true;
      /** The answer, from the rows the database gave the entries this command appended, in order. */
      answer: (rows: readonly EntryRow[]) => A;
    }
  | { ok: false; error: LedgerError };

/**
 * A command instance: one request of one kind, already validated against everything that needs no
 * database. Built by its feature; submitted to group commit.
 */
export interface Command<A> {
  /** The feature and kind, for logs and metrics: "operations.post". */
  readonly kind: string;
  /**
   * The client's nonce. Its record is the entry written under it (unique per app across every kind of
   * write): a later request with it is a replay or a conflict, decided by `replay`. Undefined for the
   * ledger's own writes (the expiry sweeper), which need no idempotency record of their own.
   */
  readonly nonce: string | undefined;
  /**
   * Nonces of the other entries this command writes besides the one under `nonce` (a transfer's
   * TRANSFER_IN): looked up with it, so a replay can answer with every entry it wrote.
   */
  readonly linkedNonces?: readonly string[];
  /** What to lock and load. `now` is the clock read before the locks (limit periods depend on it). */
  needs(now: Date): Needs;
  /**
   * Decides against the batch so far, appending its effects to the draft. Pure: the same state, input
   * and instant give the same effects and answer; a refusal's draft is dropped.
   */
  decide(draft: Draft, now: Date): Decision<A>;
  /**
   * The answer to a request whose nonce already has this entry: the original answer, or null (conflict).
   * `linked` holds the entries found under `linkedNonces`.
   */
  replay(recorded: RecordedEntry, linked: ReadonlyMap<string, RecordedEntry>): A | null;
}

/** How a feature documents what its command can refuse with, in order of precedence. */
export type ErrorList = readonly LedgerErrorCode[];
