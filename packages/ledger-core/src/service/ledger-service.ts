// The ledger of one app: its features' commands submitted to the engine (group commit), and its reads.
// HTTP and the CLI call this; nothing else writes the ledger.
import type { Logger } from "pino";
import type { z } from "zod";
import type { LedgerDb } from "../store/client.js";
import {
  getBalanceAt,
  getEntrySummary,
  getOwner,
  listEntries,
  OPERATION_TIMEOUT_MS_DEFAULT,
  read,
  toLedgerEntry,
  type EntryFilter,
} from "../store/reads.js";
import { sqlClientOf, type SqlRunner } from "../store/sql-client.js";
import {
  DatabaseUnavailableError,
  InvalidCursorError,
  LedgerError,
  ValidationError,
  type LedgerErrorCode,
  type ValidationIssue,
} from "../domain/errors.js";
import { expiringSummary } from "../domain/grants.js";
import { standingAt } from "../domain/holds.js";
import { parseInstant } from "../domain/instant.js";
import {
  ownerIdSchema,
  pageSizeSchema,
  postOperationInputSchema,
  type PostOperationInput,
} from "../domain/input.js";
import { EXPIRING_SUMMARY_MAX, PAGE_SIZE_DEFAULT } from "../domain/limits.js";
import type { OperationCatalogView } from "../domain/operations.js";
import type { Balance, BalanceAt, EntryPage, EntrySummary, PostResult } from "../domain/types.js";
import type { Command } from "../engine/command.js";
import { GroupCommitter, GroupRefused, type GroupCommitStats, type Settled } from "../engine/group-commit.js";
import { postOperation, validatePost } from "../features/operations/command.js";
import { createOutbox } from "../features/events/outbox.js";
import { eventFeedFor, type EventFeed } from "../features/events/feed.js";
import { eventSignalFor } from "../features/events/signal.js";
import {
  newSweepProgress,
  startSweeper,
  sweepOnce,
  type SweepProgress,
  type SweepReport,
} from "../features/grants/sweeper.js";

export interface LedgerServiceOptions {
  db: LedgerDb;
  /** The app writing: recorded on every entry, and the scope of its nonces. */
  app: string;
  catalog: OperationCatalogView;
  /** Injectable for tests of daily limits; defaults to the wall clock. */
  clock?: () => Date;
  /** Longest a read or write may wait on the database before answering DATABASE_UNAVAILABLE. */
  operationTimeoutMs?: number;
  /** Most posts written in one transaction (group commit); 1 writes each post in its own. */
  batchSizeMax?: number;
  /** Batches in flight at once per service. */
  batchesInFlightMax?: number;
  /** With a batch in flight, another starts only once this many writes wait. */
  queueLongMin?: number;
  /** Told what the service does, as it does it (the /metrics counters); none: nothing is told. */
  observer?: ServiceObserver | undefined;
}

/**
 * How a command the service answered came out: written, answered from its recorded entry, refused by a
 * rule (with the refusal's code), or failed with its outcome unknown (DATABASE_UNAVAILABLE, a bug).
 */
export type OperationOutcome = "applied" | "replayed" | `refused:${LedgerErrorCode}` | "error";

export interface ServiceObserver {
  /** A command of this kind ("operations.post") was answered. */
  operation?(kind: string, outcome: OperationOutcome): void;
  /** A group-commit batch of this many commands started. */
  batch?(size: number): void;
}

export const BATCH_SIZE_MAX_DEFAULT = 500;
export const BATCHES_IN_FLIGHT_MAX_DEFAULT = 2;
/**
 * A second batch starts beside the one in flight only once this many writes wait: below it, they wait
 * for the next batch, which is then larger. With 25 connections per worker, batches of 8 left the
 * fixed cost of a batch dominating; 32 measured 8-14% more ops/s (docs/BENCHMARKS.md).
 */
export const QUEUE_LONG_MIN_DEFAULT = 32;

/** The span of GET /ledger/{owner_id}/summary when `from` is left out: 30 days before `to`. */
export const SUMMARY_SPAN_DEFAULT_MS = 30 * 24 * 3_600_000;

export interface ListEntriesInput {
  owner_id: string;
  cursor?: string | undefined;
  limit?: number | undefined;
  /** RFC 3339 instants, inclusive. */
  from?: string | undefined;
  to?: string | undefined;
  app?: string | undefined;
  operation?: string | undefined;
}

export class LedgerService {
  readonly app: string;
  readonly catalog: OperationCatalogView;
  readonly #db: LedgerDb;
  readonly #clock: () => Date;
  readonly #timeoutMs: number;
  readonly #committer: GroupCommitter;
  readonly #observer: ServiceObserver | undefined;
  readonly #sweepProgress = newSweepProgress();

  constructor(opts: LedgerServiceOptions) {
    this.#db = opts.db;
    this.app = opts.app;
    this.catalog = opts.catalog;
    this.#clock = opts.clock ?? (() => new Date());
    this.#timeoutMs = opts.operationTimeoutMs ?? OPERATION_TIMEOUT_MS_DEFAULT;
    this.#observer = opts.observer;
    // Every committed write appends its events (the outbox, in its own transaction).
    const signal = eventSignalFor(this.#db);
    this.#committer = new GroupCommitter(this.#db, this.app, this.#clock, {
      batchSizeMax: opts.batchSizeMax ?? BATCH_SIZE_MAX_DEFAULT,
      batchesInFlightMax: opts.batchesInFlightMax ?? BATCHES_IN_FLIGHT_MAX_DEFAULT,
      queueLongMin: opts.queueLongMin ?? QUEUE_LONG_MIN_DEFAULT,
      timeoutMs: this.#timeoutMs,
      outbox: createOutbox(() => signal.wake()),
      onBatch: opts.observer?.batch?.bind(opts.observer),
    });
  }

  /**
   * Applies one operation for an owner, exactly once per (app, nonce).
   *
   * Errors, in order of precedence:
   * @throws ValidationError (VALIDATION_FAILED) the input is malformed
   * @throws UnknownOperationError (UNKNOWN_OPERATION) this app's catalog has no such operation
   * @throws ExpiryNotAllowedError (EXPIRY_NOT_ALLOWED) expires_at on an operation that does not take it
   * @throws AmountMismatchError / AmountRequiredError / AmountOutOfRangeError the amount does not fit the operation
   * @throws NonceConflictError (NONCE_CONFLICT) the nonce was used by this app for a different request
   * @throws ValidationError (VALIDATION_FAILED) expires_at is past, or more than ten years ahead
   * @throws InsufficientBalanceError (INSUFFICIENT_BALANCE) the owner's balance would go below zero
   * @throws BalanceLimitExceededError (BALANCE_LIMIT_EXCEEDED) the balance would pass 2^53-1
   * @throws LimitReachedError (LIMIT_REACHED) the operation's once / daily limit is used up
   * @throws DatabaseUnavailableError (DATABASE_UNAVAILABLE) the outcome is unknown; retry with the same nonce
   *
   * The same nonce with the same request returns the original answer with `replayed: true` and
   * writes nothing. Refused requests write nothing and do not use up their nonce.
   *
   * Concurrent posts are written together (group commit, see group-commit.ts): each is decided in
   * arrival order under its owner's lock and gets its own answer, exactly as if it had come alone.
   */
  async post(input: unknown): Promise<PostResult> {
    return this.postParsed(parse(postOperationInputSchema, input));
  }

  /** post() for a request its caller has already validated against the schema (the HTTP route). */
  postParsed(req: PostOperationInput): Promise<PostResult> {
    // The catalog's refusals (an unknown operation, a wrong amount) are answers to the command too.
    return this.#observed("operations.post", () =>
      this.#committer.submit(postOperation(this.app, validatePost(this.catalog, req))),
    );
  }

  /**
   * Runs a command of any kind through group commit: the one way a feature writes the ledger. Its
   * answer, or its refusal (a LedgerError), or DatabaseUnavailableError when the outcome is unknown.
   */
  submit<A>(command: Command<A>): Promise<A> {
    return this.#observed(command.kind, () => this.#committer.submit(command));
  }

  /**
   * Runs commands that go into one transaction together (a batch request): each answered as if alone;
   * with `atomic`, all are written or none (each then answers GroupRefused naming the first refusal).
   */
  async submitGroup(commands: readonly Command<unknown>[], atomic: boolean): Promise<Settled[]> {
    const settled = await this.#committer.submitGroup(commands, atomic);
    const observer = this.#observer;
    if (observer?.operation) {
      settled.forEach((s, i) => {
        const kind = commands[i]?.kind ?? "unknown";
        observer.operation?.(kind, s.ok ? answeredOutcome(s.answer) : refusedOutcome(s.error));
      });
    }
    return settled;
  }

  /** Runs a command's submission, telling the observer how it came out. */
  #observed<A>(kind: string, submit: () => Promise<A>): Promise<A> {
    const observer = this.#observer;
    if (!observer?.operation) return submit();
    const tell = (outcome: OperationOutcome) => observer.operation?.(kind, outcome);
    let answer: Promise<A>;
    try {
      answer = submit();
    } catch (error) {
      tell(refusedOutcome(error));
      throw error;
    }
    return answer.then(
      (a) => {
        tell(answeredOutcome(a));
        return a;
      },
      (error: unknown) => {
        tell(refusedOutcome(error));
        throw error;
      },
    );
  }

  /** The service's clock (injectable in tests): what "now" means for its reads and writes. */
  now(): Date {
    return this.#clock();
  }

  /** A feature's read, bounded and translated like the service's own. */
  query<T>(fn: (db: SqlRunner) => Promise<T>): Promise<T> {
    return read(() => fn(sqlClientOf(this.#db)), this.#timeoutMs);
  }

  /** This database's event feed in this process: what the streams follow (one tailer for all of them). */
  eventFeed(): EventFeed {
    return eventFeedFor(this.#db);
  }

  /** Expires every grant that is due now, of any app (the sweeper's work, on demand). */
  sweepExpired(): Promise<SweepReport> {
    return sweepOnce(this.#sweeperOptions());
  }

  /** Sweeps due grants every intervalS seconds; returns the function that stops it. */
  startExpirySweeper(intervalS: number, logger: Logger): () => Promise<void> {
    return startSweeper({ ...this.#sweeperOptions(), intervalS, logger });
  }

  /** The expiry sweeps of this service so far, on demand and periodic alike. */
  sweepProgress(): SweepProgress {
    return { ...this.#sweepProgress };
  }

  #sweeperOptions() {
    return {
      db: sqlClientOf(this.#db),
      app: this.app,
      committer: this.#committer,
      clock: this.#clock,
      timeoutMs: this.#timeoutMs,
      progress: this.#sweepProgress,
    };
  }

  /** Group commit so far: how many batches carried how many posts. */
  batchStats(): GroupCommitStats {
    return this.#committer.stats();
  }

  /**
   * The owner's balance now: expired remainders never count, whether their EXPIRY entry is written yet
   * or not. An owner with no entries has balance 0.
   * @throws ValidationError, DatabaseUnavailableError
   */
  async balance(ownerId: string): Promise<Balance> {
    const owner_id = parse(ownerIdSchema, ownerId);
    const owner = await read(() => getOwner(this.#db, owner_id), this.#timeoutMs);
    const now = this.#clock();
    const standing = standingAt(owner.balance, owner.grants, owner.holds, now);
    return {
      owner_id,
      balance: standing.balance,
      available: standing.available,
      held: standing.held,
      status: owner.status,
      expiring: expiringSummary(owner.grants, now, EXPIRING_SUMMARY_MAX),
    };
  }

  /**
   * The running balance right after the owner's last entry at or before `at` (RFC 3339, not in the future).
   * @throws ValidationError, DatabaseUnavailableError
   */
  async balanceAt(ownerId: string, at: string): Promise<BalanceAt> {
    const owner_id = parse(ownerIdSchema, ownerId);
    const instant = parseInstantParam(at, "at");
    if (instant.getTime() > this.#clock().getTime()) {
      throw new ValidationError([{ path: "at", message: "at must not be in the future" }]);
    }
    const balance = await read(() => getBalanceAt(this.#db, owner_id, instant), this.#timeoutMs);
    return { owner_id, balance, at: instant.toISOString() };
  }

  /**
   * What explains the change of an owner's balance between two instants (RFC 3339, not in the future;
   * `to` defaults to now, `from` to SUMMARY_SPAN_DEFAULT_MS before `to`): the running balances at both
   * and the entries between, summed by app and operation, which add up to the change exactly.
   * @throws ValidationError, DatabaseUnavailableError
   */
  async summary(input: {
    owner_id: string;
    from?: string | undefined;
    to?: string | undefined;
  }): Promise<EntrySummary> {
    const owner_id = parse(ownerIdSchema, input.owner_id);
    const now = this.#clock();
    const to = input.to === undefined ? now : parseInstantParam(input.to, "to");
    const from =
      input.from === undefined
        ? new Date(to.getTime() - SUMMARY_SPAN_DEFAULT_MS)
        : parseInstantParam(input.from, "from");
    if (to.getTime() > now.getTime()) {
      throw new ValidationError([{ path: "to", message: "to must not be in the future" }]);
    }
    if (from.getTime() > to.getTime()) {
      throw new ValidationError([{ path: "from", message: "from must not be after to" }]);
    }
    const found = await read(() => getEntrySummary(this.#db, owner_id, from, to), this.#timeoutMs);
    return {
      owner_id,
      from: from.toISOString(),
      to: to.toISOString(),
      balance_from: found.balanceFrom,
      balance_to: found.balanceTo,
      change: found.balanceTo - found.balanceFrom,
      groups: found.groups,
    };
  }

  /**
   * The owner's entries, newest first, each with the balance right after it.
   * @throws ValidationError, InvalidCursorError, DatabaseUnavailableError
   */
  async entries(input: ListEntriesInput): Promise<EntryPage> {
    const owner_id = parse(ownerIdSchema, input.owner_id);
    const limit = parse(pageSizeSchema, input.limit ?? PAGE_SIZE_DEFAULT, "limit");
    const before = input.cursor === undefined ? undefined : decodeCursor(input.cursor);
    const filter: EntryFilter = {
      from: input.from === undefined ? undefined : parseInstantParam(input.from, "from"),
      to: input.to === undefined ? undefined : parseInstantParam(input.to, "to"),
      app: input.app,
      operation: input.operation,
    };
    if (filter.from && filter.to && filter.from.getTime() > filter.to.getTime()) {
      throw new ValidationError([{ path: "from", message: "from must not be after to" }]);
    }
    // One extra row tells whether an older page exists without a second query.
    const rows = await read(
      () => listEntries(this.#db, owner_id, before, limit + 1, filter),
      this.#timeoutMs,
    );
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return {
      owner_id,
      entries: page.map((r) => toLedgerEntry(r, r.reversedAmount)),
      next_cursor: rows.length > limit && last ? encodeCursor(last.sequence) : null,
    };
  }
}

/** Every command's answer says whether it was a replay (`replayed`); one that does not was written. */
function answeredOutcome(answer: unknown): OperationOutcome {
  const replayed = typeof answer === "object" && answer !== null && "replayed" in answer && answer.replayed;
  return replayed === true ? "replayed" : "applied";
}

/**
 * A refusal by a rule, with its code; an atomic group refused as a whole counts every command of it as
 * refused with the code of the first refusal (none of them was written). DATABASE_UNAVAILABLE and
 * anything unexpected are errors: their outcome is unknown.
 */
function refusedOutcome(error: unknown): OperationOutcome {
  const refusal = error instanceof GroupRefused ? error.error : error;
  if (refusal instanceof DatabaseUnavailableError || !(refusal instanceof LedgerError)) return "error";
  return `refused:${refusal.code}`;
}

function parse<S extends z.ZodType>(schema: S, value: unknown, path = ""): z.infer<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues: ValidationIssue[] = result.error.issues.map((i) => ({
    path: [path, ...i.path.map(String)].filter(Boolean).join("."),
    message: i.message,
  }));
  throw new ValidationError(issues);
}

function parseInstantParam(text: string, path: string): Date {
  const parsed = parseInstant(text);
  if (typeof parsed === "string") throw new ValidationError([{ path, message: parsed }]);
  return parsed;
}

/** Cursors are opaque to callers: the base64url of "s:<sequence>". */
export function encodeCursor(sequence: number): string {
  return Buffer.from(`s:${sequence}`).toString("base64url");
}

export function decodeCursor(cursor: string): number {
  if (cursor.length > 64 || !/^[A-Za-z0-9_-]+$/.test(cursor)) throw new InvalidCursorError();
  const match = /^s:([1-9][0-9]{0,15})$/.exec(Buffer.from(cursor, "base64url").toString("utf8"));
  const sequence = match?.[1] === undefined ? NaN : Number(match[1]);
  if (!Number.isSafeInteger(sequence)) throw new InvalidCursorError();
  return sequence;
}
