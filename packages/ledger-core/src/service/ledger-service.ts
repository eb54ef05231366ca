// The one place that owns a write: validation, the owner's row lock, idempotency, the balance rule,
// the audit row. HTTP and the CLI call this; nothing else writes the ledger.
import type { z } from "zod";
import type { LedgerDb } from "../store/client.js";
import { getBalance, listEntries, OPERATION_TIMEOUT_MS_DEFAULT, read, toLedgerEntry } from "../store/reads.js";
import {
  InvalidCursorError,
  UnknownOperationError,
  ValidationError,
  type ValidationIssue,
} from "../domain/errors.js";
import { ownerIdSchema, pageSizeSchema, postOperationInputSchema } from "../domain/input.js";
import { PAGE_SIZE_DEFAULT } from "../domain/limits.js";
import type { OperationCatalogView } from "../domain/operations.js";
import { resolveAmount } from "../domain/rules.js";
import type { Balance, EntryPage, PostResult } from "../domain/types.js";
import { GroupCommitter, type GroupCommitStats } from "../engine/group-commit.js";

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
}

export const BATCH_SIZE_MAX_DEFAULT = 500;
export const BATCHES_IN_FLIGHT_MAX_DEFAULT = 2;

export interface ListEntriesInput {
  owner_id: string;
  cursor?: string | undefined;
  limit?: number | undefined;
}

export class LedgerService {
  readonly app: string;
  readonly catalog: OperationCatalogView;
  readonly #db: LedgerDb;
  readonly #clock: () => Date;
  readonly #timeoutMs: number;
  readonly #committer: GroupCommitter;

  constructor(opts: LedgerServiceOptions) {
    this.#db = opts.db;
    this.app = opts.app;
    this.catalog = opts.catalog;
    this.#clock = opts.clock ?? (() => new Date());
    this.#timeoutMs = opts.operationTimeoutMs ?? OPERATION_TIMEOUT_MS_DEFAULT;
    this.#committer = new GroupCommitter(this.#db, this.app, this.#clock, {
      batchSizeMax: opts.batchSizeMax ?? BATCH_SIZE_MAX_DEFAULT,
      batchesInFlightMax: opts.batchesInFlightMax ?? BATCHES_IN_FLIGHT_MAX_DEFAULT,
      timeoutMs: this.#timeoutMs,
    });
  }

  /**
   * Applies one operation for an owner, exactly once per (app, nonce).
   *
   * Errors, in order of precedence:
   * @throws ValidationError (VALIDATION_FAILED) the input is malformed
   * @throws UnknownOperationError (UNKNOWN_OPERATION) this app's catalog has no such operation
   * @throws AmountMismatchError / AmountRequiredError / AmountOutOfRangeError the amount does not fit the operation
   * @throws NonceConflictError (NONCE_CONFLICT) the nonce was used by this app for a different request
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
    const req = parse(postOperationInputSchema, input);
    const def = this.catalog.get(req.operation);
    if (!def) throw new UnknownOperationError(req.operation, this.catalog.names);
    const amount = resolveAmount(req.operation, def, req.amount);
    return this.#committer.submit({ req, def, amount });
  }

  /** Group commit so far: how many batches carried how many posts. */
  batchStats(): GroupCommitStats {
    return this.#committer.stats();
  }

  /** @throws ValidationError, DatabaseUnavailableError. An owner with no entries has balance 0. */
  async balance(ownerId: string): Promise<Balance> {
    const owner_id = parse(ownerIdSchema, ownerId);
    return { owner_id, balance: await read(() => getBalance(this.#db, owner_id), this.#timeoutMs) };
  }

  /**
   * The owner's entries, newest first, each with the balance right after it.
   * @throws ValidationError, InvalidCursorError, DatabaseUnavailableError
   */
  async entries(input: ListEntriesInput): Promise<EntryPage> {
    const owner_id = parse(ownerIdSchema, input.owner_id);
    const limit = parse(pageSizeSchema, input.limit ?? PAGE_SIZE_DEFAULT, "limit");
    const before = input.cursor === undefined ? undefined : decodeCursor(input.cursor);
    // One extra row tells whether an older page exists without a second query.
    const rows = await read(() => listEntries(this.#db, owner_id, before, limit + 1), this.#timeoutMs);
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return {
      owner_id,
      entries: page.map(toLedgerEntry),
      next_cursor: rows.length > limit && last ? encodeCursor(last.sequence) : null,
    };
  }
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
