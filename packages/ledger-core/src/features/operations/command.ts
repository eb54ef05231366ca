// Posting an operation: the first kind of write. It adds or takes an operation's amount for one owner,
// once per nonce, within the owner's balance and the operation's once or daily limit; a credit may
// grant credits that expire.
import {
  ExpiryNotAllowedError,
  InsufficientBalanceError,
  OwnerSuspendedError,
  LimitReachedError,
  UnknownOperationError,
  ValidationError,
} from "../../domain/errors.js";
import { parseInstant } from "../../domain/instant.js";
import type { PostOperationInput } from "../../domain/input.js";
import {
  expiryHorizon,
  type OperationCatalogView,
  type OperationDefinition,
} from "../../domain/operations.js";
import { limitPeriod, nextBalance, resolveAmount } from "../../domain/rules.js";
import type { PostResult } from "../../domain/types.js";
import type { Command, ErrorList } from "../../engine/command.js";
import { availableAfter, toLedgerEntry, type EntryRow } from "../../store/reads.js";

/**
 * What posting an operation can refuse with, in order of precedence. The first five need no database;
 * the rest are decided under the owner's lock.
 */
export const POST_OPERATION_ERRORS: ErrorList = [
  "VALIDATION_FAILED",
  "UNKNOWN_OPERATION",
  "EXPIRY_NOT_ALLOWED",
  "AMOUNT_MISMATCH",
  "AMOUNT_REQUIRED",
  "AMOUNT_OUT_OF_RANGE",
  "NONCE_CONFLICT",
  "VALIDATION_FAILED", // expires_at in the past or more than ten years ahead, at the instant of the write
  "OWNER_SUSPENDED",
  "INSUFFICIENT_BALANCE", // a debit takes only available credits: the balance less what is held
  "BALANCE_LIMIT_EXCEEDED",
  "LIMIT_REACHED",
];

/** A post that passed every check that needs no database. */
export interface ValidatedPost {
  req: PostOperationInput;
  def: OperationDefinition;
  /** The signed amount the operation applies. */
  amount: number;
  /** The expiry the request asked for, if the operation allows one. */
  expiresAt: Date | null;
}

/**
 * Checks a parsed request against the app's catalog.
 * @throws UnknownOperationError, ExpiryNotAllowedError, AmountMismatchError, AmountRequiredError,
 *   AmountOutOfRangeError
 */
export function validatePost(catalog: OperationCatalogView, req: PostOperationInput): ValidatedPost {
  const def = catalog.get(req.operation);
  if (!def) throw new UnknownOperationError(req.operation, catalog.names);
  if (req.expires_at !== undefined && def.allowsExpiresAt !== true) {
    throw new ExpiryNotAllowedError(req.operation);
  }
  const amount = resolveAmount(req.operation, def, req.amount);
  const parsed = req.expires_at === undefined ? null : parseInstant(req.expires_at);
  // The schema has checked the text; a string here would be a bug between the two.
  if (typeof parsed === "string") throw new ValidationError([{ path: "expires_at", message: parsed }]);
  return { req, def, amount, expiresAt: parsed };
}

/** The command of one validated post. */
export function postOperation(app: string, post: ValidatedPost): Command<PostResult> {
  const { req, def, amount } = post;
  return {
    kind: "operations.post",
    nonce: req.nonce,
    needs(now) {
      const period = limitPeriod(def.limit, now);
      return {
        owners: [req.owner_id],
        limits: period === null ? [] : [{ ownerId: req.owner_id, operation: req.operation, period }],
      };
    },
    decide(draft, now) {
      let expiresAt = post.expiresAt;
      if (expiresAt !== null) {
        if (expiresAt.getTime() <= now.getTime() || expiresAt.getTime() > expiryHorizon(now).getTime()) {
          return {
            ok: false,
            error: new ValidationError([
              { path: "expires_at", message: "expires_at must be in the future and at most ten years ahead" },
            ]),
          };
        }
      } else if (def.expiresAfterS !== undefined && amount > 0) {
        expiresAt = new Date(now.getTime() + def.expiresAfterS * 1000);
      }
      // The owner's state comes before the limit (documented precedence): a suspended owner is
      // OWNER_SUSPENDED, an unaffordable limited debit INSUFFICIENT_BALANCE, whether or not its period is
      // used. A debit may take only available credits (held and due ones do not count).
      const owner = draft.owner(req.owner_id, now);
      if (owner.status === "suspended") return { ok: false, error: new OwnerSuspendedError(req.owner_id) };
      if (amount < 0 && owner.available < -amount) {
        return { ok: false, error: new InsufficientBalanceError(req.owner_id, owner.available, amount) };
      }
      nextBalance(req.owner_id, owner.balance, amount);
      const period = limitPeriod(def.limit, now);
      if (period !== null) {
        const key = { ownerId: req.owner_id, operation: req.operation, period };
        if (draft.limitUsed(key)) {
          return {
            ok: false,
            error: new LimitReachedError(req.owner_id, req.operation, def.limit ?? "once", period),
          };
        }
        draft.takeLimit(key);
      }
      draft.append(
        {
          app,
          operation: req.operation,
          ownerId: req.owner_id,
          amount,
          nonce: req.nonce,
          limitPeriod: period,
          expiresAt,
        },
        now,
      );
      return {
        ok: true,
        answer: (rows) => {
          const row = rows.at(-1);
          if (!row) throw new Error("a post wrote no entry");
          return resultOf(row, false);
        },
      };
    },
    replay(recorded) {
      // A capture is an entry of its hold's operation too, but not a post: its nonce is a conflict here.
      const same =
        recorded.holdId === null &&
        recorded.ownerId === req.owner_id &&
        recorded.operation === req.operation &&
        Number(recorded.amount) === amount &&
        (def.allowsExpiresAt !== true ||
          (recorded.expiresAt?.getTime() ?? null) === (post.expiresAt?.getTime() ?? null));
      return same ? resultOf(recorded, true) : null;
    },
  };
}

function resultOf(row: EntryRow, replayed: boolean): PostResult {
  const entry = toLedgerEntry(row);
  return { entry, balance: entry.balance_after, available: availableAfter(row), replayed };
}
