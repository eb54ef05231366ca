// Suspending an owner and reinstating it: each a zero-amount entry (SUSPENSION, REINSTATEMENT) carrying
// the caller's reason, and the owner's status changed with it. While suspended, the draft refuses the
// owner every write but what ends or undoes (domain/ledger-operations.ts), for every kind of command.
import { z } from "zod";
import { OwnerAlreadySuspendedError, OwnerNotSuspendedError } from "../../domain/errors.js";
import { nonceSchema, reasonSchema } from "../../domain/input.js";
import { LEDGER_OPERATIONS } from "../../domain/ledger-operations.js";
import type { Command, ErrorList } from "../../engine/command.js";
import type { OwnerStatus } from "../../engine/state.js";
import { availableAfter, toLedgerEntry, type EntryRow } from "../../store/reads.js";
import type { LedgerEntry } from "../../domain/types.js";

/** What suspending an owner can refuse with, in order of precedence. */
export const SUSPEND_ERRORS: ErrorList = ["VALIDATION_FAILED", "NONCE_CONFLICT", "OWNER_ALREADY_SUSPENDED"];

/** What reinstating an owner can refuse with, in order of precedence. */
export const REINSTATE_ERRORS: ErrorList = ["VALIDATION_FAILED", "NONCE_CONFLICT", "OWNER_NOT_SUSPENDED"];

export const suspendInputSchema = z.strictObject({ reason: reasonSchema, nonce: nonceSchema });
export const reinstateInputSchema = z.strictObject({ reason: reasonSchema.optional(), nonce: nonceSchema });

export interface StatusChangeInput {
  owner_id: string;
  nonce: string;
  /** Required to suspend; optional to reinstate. */
  reason?: string | undefined;
}

export interface StatusChangeResult {
  owner_id: string;
  status: OwnerStatus;
  entry: LedgerEntry;
  balance: number;
  available: number;
  replayed: boolean;
}

/**
 * The command that suspends an owner (SUSPENSION entry) or reinstates it (REINSTATEMENT entry). An owner
 * with no entries may be suspended (support may block an account before it is first used): the
 * SUSPENSION entry is then its first. Reinstating an owner that is not suspended, or one that has no
 * entries, is OWNER_NOT_SUSPENDED and writes nothing.
 */
export function changeStatus(
  app: string,
  to: OwnerStatus,
  req: StatusChangeInput,
): Command<StatusChangeResult> {
  const operation = to === "suspended" ? LEDGER_OPERATIONS.SUSPENSION : LEDGER_OPERATIONS.REINSTATEMENT;
  const ownerId = req.owner_id;
  return {
    kind: to === "suspended" ? "suspension.suspend" : "suspension.reinstate",
    nonce: req.nonce,
    needs: () => ({ owners: [ownerId] }),
    decide(draft, now) {
      const owner = draft.owner(ownerId, now);
      if (to === "suspended" && owner.status === "suspended") {
        return { ok: false, error: new OwnerAlreadySuspendedError(ownerId) };
      }
      if (to === "active" && owner.status !== "suspended") {
        return { ok: false, error: new OwnerNotSuspendedError(ownerId) };
      }
      draft.setStatus(ownerId, to, { app, operation, nonce: req.nonce, reason: req.reason ?? null }, now);
      return {
        ok: true,
        answer: (rows) => {
          // What was due is recorded first (EXPIRY, HOLD_EXPIRY); the status entry is the one under the nonce.
          const row = rows.find((r) => r.nonce === req.nonce);
          if (!row) throw new Error(`a ${operation} wrote no entry under its nonce`);
          return resultOf(row, to, false);
        },
      };
    },
    replay(recorded) {
      const same =
        recorded.operation === operation &&
        recorded.ownerId === ownerId &&
        (recorded.reason ?? undefined) === req.reason;
      return same ? resultOf(recorded, to, true) : null;
    },
  };
}

function resultOf(row: EntryRow, status: OwnerStatus, replayed: boolean): StatusChangeResult {
  const entry = toLedgerEntry(row);
  return {
    owner_id: row.ownerId,
    status,
    entry,
    balance: entry.balance_after,
    available: availableAfter(row),
    replayed,
  };
}
