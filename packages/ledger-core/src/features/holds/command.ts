// Holds (two-phase spending): placing a hold on one of the app's debit operations, capturing it (one
// entry of that operation, for all or part of what it holds) and releasing it. The ledger's rules for
// holds (what a hold takes, what it keeps from expiring, when it stops counting) are in engine/state.ts;
// these commands check what only a hold's request can get wrong, and answer.
//
// A capture or a release names a hold, not an owner, and must hold the owner's lock: the hold is read
// first, outside any transaction (its owner and app never change), and the command then names that
// owner. What may have changed in between (the hold captured, released or expired by another request)
// is decided under the lock.
import { randomUUID } from "node:crypto";
import {
  AmountMismatchError,
  AmountOutOfRangeError,
  CaptureExceedsHoldError,
  HoldNotActiveError,
  HoldNotFoundError,
  UnknownOperationError,
  ValidationError,
} from "../../domain/errors.js";
import { HOLD_EXPIRES_IN_S_DEFAULT, type HoldStatus } from "../../domain/holds.js";
import { LEDGER_OPERATIONS } from "../../domain/ledger-operations.js";
import type { OperationCatalogView, OperationDefinition } from "../../domain/operations.js";
import { resolveAmount } from "../../domain/rules.js";
import type { LedgerEntry } from "../../domain/types.js";
import type { Command, ErrorList } from "../../engine/command.js";
import type { Draft } from "../../engine/state.js";
import type { LedgerService } from "../../service/ledger-service.js";
import { availableAfter, toLedgerEntry, toSafeNumber, type EntryRow } from "../../store/reads.js";
import { afterTrailingExpiries, findHold, holdStatusLoader, type StoredHold } from "./store.js";

/**
 * Hold ids are UUIDs (v4, lower case) the ledger makes: a path naming anything else is refused with 400
 * before any read, as an owner id out of its pattern is.
 */
export const HOLD_ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** A hold as the ledger reports it. */
export interface HoldBody {
  id: string;
  owner_id: string;
  app: string;
  operation: string;
  /** The credits it holds (a magnitude). */
  amount: number;
  /** As of the read: an active hold past its expiry reads "expired", recorded or not. */
  status: HoldStatus;
  expires_at: string;
  created_at: string;
  /** Captured holds: what the capture took. */
  captured_amount?: number;
}

export interface HoldResult {
  hold: HoldBody;
  balance: number;
  available: number;
  replayed: boolean;
}

export interface CaptureResult extends HoldResult {
  entry: LedgerEntry;
}

/**
 * What placing a hold can refuse with, in order of precedence. The first six need no database; the rest
 * are decided under the owner's lock.
 */
export const PLACE_HOLD_ERRORS: ErrorList = [
  "VALIDATION_FAILED",
  "UNKNOWN_OPERATION",
  "VALIDATION_FAILED", // the operation cannot be held: a credit, a zero amount, or a once or daily limit
  "AMOUNT_MISMATCH",
  "AMOUNT_REQUIRED",
  "AMOUNT_OUT_OF_RANGE",
  "NONCE_CONFLICT",
  "OWNER_SUSPENDED",
  "INSUFFICIENT_BALANCE", // more than available: the balance less what other holds hold
];

/**
 * What capturing a hold can refuse with, in order of precedence. The hold is read before the nonce is
 * looked up: a hold this app does not have is HOLD_NOT_FOUND whatever the nonce, and an amount that does
 * not fit the hold (whose amount never changes) is refused before it too.
 */
export const CAPTURE_HOLD_ERRORS: ErrorList = [
  "VALIDATION_FAILED",
  "HOLD_NOT_FOUND",
  "CAPTURE_EXCEEDS_HOLD",
  "AMOUNT_MISMATCH", // a fixed operation's hold: a capture takes the operation's amount, no other
  "AMOUNT_OUT_OF_RANGE", // a variable operation's hold: 1..held
  "NONCE_CONFLICT",
  "HOLD_NOT_ACTIVE", // captured, released, or past its expiry ("expired"), recorded or not
  "OWNER_SUSPENDED",
];

/** What releasing a hold can refuse with, in order of precedence. Releases apply to suspended owners too. */
export const RELEASE_HOLD_ERRORS: ErrorList = [
  "VALIDATION_FAILED",
  "HOLD_NOT_FOUND",
  "NONCE_CONFLICT",
  "HOLD_NOT_ACTIVE",
];

export interface PlaceHoldInput {
  owner_id: string;
  operation: string;
  amount?: number | undefined;
  nonce: string;
  expires_in_s?: number | undefined;
}

/** A hold request that passed every check that needs no database. */
export interface ValidatedHold {
  req: PlaceHoldInput;
  /** The id the hold gets if it is made (a replay answers with the original's). */
  id: string;
  /** The credits it holds (a magnitude). */
  amount: number;
  expiresInS: number;
}

/**
 * Why an operation cannot be held, or null when it can: only a debit can be, and not one with a once or
 * daily limit. A limit is used by the entry that takes it, in the period it is written in: a hold's
 * capture may be written in another period than the hold (another UTC day), and a hold released or
 * expired would have to give its period back, so a hold could neither reserve the limit nor leave it
 * alone. Such operations are posted directly.
 */
export function whyNotHoldable(def: OperationDefinition): string | null {
  if (def.kind === "fixed" && def.amount > 0) return "it is a credit: only a debit operation can be held";
  if (def.kind === "fixed" && def.amount === 0) return "it moves no credits: there is nothing to hold";
  if (def.kind === "variable" && def.direction === "credit") {
    return "it is a credit: only a debit operation can be held";
  }
  if (def.limit !== undefined) {
    return `it has a ${def.limit} limit, which a hold cannot reserve: post it directly`;
  }
  return null;
}

/** The operations of a catalog that a hold may name. */
export function holdableOperations(catalog: OperationCatalogView): string[] {
  return catalog.names.filter((name) => {
    const def = catalog.get(name);
    return def !== undefined && whyNotHoldable(def) === null;
  });
}

/**
 * Checks a parsed hold request against the app's catalog.
 * @throws UnknownOperationError, ValidationError (not holdable), AmountMismatchError, AmountRequiredError,
 *   AmountOutOfRangeError
 */
export function validateHold(catalog: OperationCatalogView, req: PlaceHoldInput): ValidatedHold {
  const def = catalog.get(req.operation);
  if (!def) throw new UnknownOperationError(req.operation, catalog.names);
  const why = whyNotHoldable(def);
  if (why !== null) {
    throw new ValidationError([{ path: "operation", message: `${req.operation} cannot be held: ${why}` }]);
  }
  return {
    req,
    id: randomUUID(),
    amount: -resolveAmount(req.operation, def, req.amount),
    expiresInS: req.expires_in_s ?? HOLD_EXPIRES_IN_S_DEFAULT,
  };
}

/** The command that places one validated hold. */
export function placeHold(app: string, hold: ValidatedHold): Command<HoldResult> {
  const { req, id, amount, expiresInS } = hold;
  return {
    kind: "holds.place",
    nonce: req.nonce,
    needs: () => ({ owners: [req.owner_id] }),
    decide(draft, now) {
      const made = {
        id,
        app,
        ownerId: req.owner_id,
        operation: req.operation,
        amount,
        expiresAt: new Date(now.getTime() + expiresInS * 1000),
        createdAt: now,
      };
      // Refuses a suspended owner (OWNER_SUSPENDED), then more than available (INSUFFICIENT_BALANCE),
      // by throwing: the engine answers the refusal.
      draft.placeHold({ ...made, nonce: req.nonce }, now);
      return {
        ok: true,
        answer: (rows) => ({
          hold: holdBody({ ...made, status: "active" }),
          ...figuresAfter(lastRow(rows)),
          replayed: false,
        }),
      };
    },
    replay(recorded) {
      const made = recorded.hold;
      const same =
        recorded.operation === LEDGER_OPERATIONS.HOLD &&
        made !== null &&
        made.ownerId === req.owner_id &&
        made.operation === req.operation &&
        made.amount === amount &&
        made.expiresAt.getTime() - made.createdAt.getTime() === expiresInS * 1000;
      if (!same) return null;
      return {
        hold: holdBody({ ...made, app: recorded.app, status: "active" }),
        ...figuresAfter(recorded),
        replayed: true,
      };
    },
  };
}

/** Places a hold: the route's whole path, validation to answer. */
export async function submitHold(service: LedgerService, req: PlaceHoldInput): Promise<HoldResult> {
  return service.submit(placeHold(service.app, validateHold(service.catalog, req)));
}

/**
 * The hold with this id for this app, as stored.
 * @throws HoldNotFoundError it does not exist, or another app made it
 */
export async function findAppHold(service: LedgerService, holdId: string): Promise<StoredHold> {
  const hold = HOLD_ID_PATTERN.test(holdId) ? await service.query((db) => findHold(db, holdId)) : undefined;
  if (!hold || hold.app !== service.app) throw new HoldNotFoundError(holdId);
  return hold;
}

/** The hold's status as a read at `now` sees it: an active one past its expiry is expired. */
export function statusAt(hold: Pick<StoredHold, "status" | "expiresAt">, now: Date): HoldStatus {
  return hold.status === "active" && hold.expiresAt.getTime() <= now.getTime() ? "expired" : hold.status;
}

/** A stored hold as a read at `now` reports it. */
export function holdAt(hold: StoredHold, now: Date): HoldBody {
  return holdBody({ ...hold, status: statusAt(hold, now) });
}

/**
 * The amount a capture takes: all of it by default; a variable operation's hold 1..held, a fixed one's
 * its amount only.
 * @throws CaptureExceedsHoldError, AmountMismatchError, AmountOutOfRangeError
 */
export function captureAmount(
  catalog: OperationCatalogView,
  hold: StoredHold,
  requested: number | undefined,
): number {
  if (requested === undefined) return hold.amount;
  if (requested > hold.amount) throw new CaptureExceedsHoldError(hold.id, hold.amount, requested);
  // A hold outlives a catalog change: an operation no longer offered is captured as a variable one.
  if (catalog.get(hold.operation)?.kind === "fixed") {
    if (requested !== hold.amount) throw new AmountMismatchError(hold.operation, hold.amount, requested);
  } else if (requested < 1) {
    throw new AmountOutOfRangeError(hold.operation, 1, hold.amount, requested);
  }
  return requested;
}

/**
 * The status a capture or release decides on: the hold as the batch so far left it, or, when it is not
 * among the owner's active holds any more (it ended after the route read it), its stored status, read
 * under the lock.
 */
function statusUnderLock(draft: Draft, hold: StoredHold, now: Date): HoldStatus {
  return (
    draft.hold(hold.ownerId, hold.id, now)?.status ?? draft.fact(holdStatusLoader, hold.id) ?? hold.status
  );
}

/** The command that captures `amount` (already checked against the hold) of a hold read beforehand. */
export function captureHold(
  hold: StoredHold,
  input: { nonce: string; amount: number },
): Command<Settlement<CaptureResult>> {
  const { nonce, amount } = input;
  const result = (entry: EntryRow, last: EntryRow, replayed: boolean): CaptureResult => ({
    hold: holdBody({ ...hold, status: "captured", capturedAmount: amount }),
    entry: toLedgerEntry(entry),
    ...figuresAfter(last),
    replayed,
  });
  return {
    kind: "holds.capture",
    nonce,
    needs: () => ({ owners: [hold.ownerId], facts: [{ loader: holdStatusLoader, keys: [hold.id] }] }),
    decide(draft, now) {
      const status = statusUnderLock(draft, hold, now);
      if (status !== "active") return { ok: false, error: new HoldNotActiveError(hold.id, status) };
      // Refuses a suspended owner by throwing (OWNER_SUSPENDED).
      draft.captureHold(hold.ownerId, hold.id, { amount, nonce, now });
      return {
        ok: true,
        answer: (rows) => ({ result: result(entryUnder(rows, nonce), lastRow(rows), false) }),
      };
    },
    replay(recorded) {
      const same =
        recorded.holdId === hold.id &&
        recorded.hold !== null &&
        recorded.operation === recorded.hold.operation &&
        recorded.amount === BigInt(-amount);
      return same ? { result: result(recorded, recorded, true), recorded } : null;
    },
  };
}

/** The command that releases a hold read beforehand. */
export function releaseHold(hold: StoredHold, input: { nonce: string }): Command<Settlement<HoldResult>> {
  const { nonce } = input;
  const result = (last: EntryRow, replayed: boolean): HoldResult => ({
    hold: holdBody({ ...hold, status: "released", capturedAmount: null }),
    ...figuresAfter(last),
    replayed,
  });
  return {
    kind: "holds.release",
    nonce,
    needs: () => ({ owners: [hold.ownerId], facts: [{ loader: holdStatusLoader, keys: [hold.id] }] }),
    decide(draft, now) {
      const status = statusUnderLock(draft, hold, now);
      if (status !== "active") return { ok: false, error: new HoldNotActiveError(hold.id, status) };
      draft.releaseHold(hold.ownerId, hold.id, { nonce, now });
      return { ok: true, answer: (rows) => ({ result: result(lastRow(rows), false) }) };
    },
    replay(recorded) {
      const same = recorded.holdId === hold.id && recorded.operation === LEDGER_OPERATIONS.HOLD_RELEASE;
      return same ? { result: result(recorded, true), recorded } : null;
    },
  };
}

/** Captures a hold of this app: the route's whole path, from the hold id to the answer. */
export async function submitCapture(
  service: LedgerService,
  holdId: string,
  req: { nonce: string; amount?: number | undefined },
): Promise<CaptureResult> {
  const hold = await findAppHold(service, holdId);
  const amount = captureAmount(service.catalog, hold, req.amount);
  return answerOf(service, await service.submit(captureHold(hold, { nonce: req.nonce, amount })));
}

/** Releases a hold of this app: the route's whole path, from the hold id to the answer. */
export async function submitRelease(
  service: LedgerService,
  holdId: string,
  req: { nonce: string },
): Promise<HoldResult> {
  const hold = await findAppHold(service, holdId);
  return answerOf(service, await service.submit(releaseHold(hold, { nonce: req.nonce })));
}

/**
 * What a capture or release command answers: its result, and for a replay the entry its nonce recorded.
 * A capture or release may be followed, in the same instant, by the EXPIRY of what its hold held of
 * grants past their expiry, and the original answer reported the balance after those: the recorded
 * entry alone does not say it, the entries right after it do (they never change).
 */
export interface Settlement<R extends HoldResult> {
  result: R;
  recorded?: EntryRow;
}

async function answerOf<R extends HoldResult>(service: LedgerService, settled: Settlement<R>): Promise<R> {
  const { result, recorded } = settled;
  if (!recorded) return result;
  const after = await service.query((db) => afterTrailingExpiries(db, recorded));
  if (!after) return result;
  return {
    ...result,
    balance: toSafeNumber(after.balanceAfter),
    available: toSafeNumber(after.balanceAfter - after.heldAfter),
  };
}

/** A hold as the holds routes answer it. */
export function holdBody(h: {
  id: string;
  app: string;
  ownerId: string;
  operation: string;
  amount: number;
  status: HoldStatus;
  expiresAt: Date;
  createdAt: Date;
  capturedAmount?: number | null;
}): HoldBody {
  return {
    id: h.id,
    owner_id: h.ownerId,
    app: h.app,
    operation: h.operation,
    amount: h.amount,
    status: h.status,
    expires_at: h.expiresAt.toISOString(),
    created_at: h.createdAt.toISOString(),
    ...(h.status === "captured" && h.capturedAmount != null ? { captured_amount: h.capturedAmount } : {}),
  };
}

function figuresAfter(row: EntryRow): { balance: number; available: number } {
  return { balance: toSafeNumber(row.balanceAfter), available: availableAfter(row) };
}

function lastRow(rows: readonly EntryRow[]): EntryRow {
  const row = rows.at(-1);
  if (!row) throw new Error("a hold command wrote no entry");
  return row;
}

function entryUnder(rows: readonly EntryRow[], nonce: string): EntryRow {
  const row = rows.find((r) => r.nonce === nonce);
  if (!row) throw new Error("a capture wrote no entry under its nonce");
  return row;
}
