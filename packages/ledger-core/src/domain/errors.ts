// Every failure a caller can see has a stable SCREAMING_SNAKE code. The HTTP edge maps codes to
// statuses; nothing else about an error is part of the contract.

export type LedgerErrorCode =
  | "VALIDATION_FAILED"
  | "UNKNOWN_OPERATION"
  | "AMOUNT_REQUIRED"
  | "AMOUNT_MISMATCH"
  | "AMOUNT_OUT_OF_RANGE"
  | "INVALID_CURSOR"
  | "EXPIRY_NOT_ALLOWED"
  | "NONCE_CONFLICT"
  | "INSUFFICIENT_BALANCE"
  | "BALANCE_LIMIT_EXCEEDED"
  | "LIMIT_REACHED"
  | "HOLD_NOT_FOUND"
  | "HOLD_NOT_ACTIVE"
  | "CAPTURE_EXCEEDS_HOLD"
  | "ENTRY_NOT_FOUND"
  | "NOT_REVERSIBLE"
  | "REVERSAL_EXCEEDS_ORIGINAL"
  | "ALREADY_REVERSED"
  | "OWNER_SUSPENDED"
  | "OWNER_ALREADY_SUSPENDED"
  | "OWNER_NOT_SUSPENDED"
  | "CATALOG_INVALID"
  | "DATABASE_UNAVAILABLE";

export interface ValidationIssue {
  path: string;
  message: string;
}

export abstract class LedgerError extends Error {
  abstract readonly code: LedgerErrorCode;
  /** Extra machine-readable facts about the failure; safe to show to the caller. */
  readonly details: Record<string, unknown>;

  constructor(message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = new.target.name;
    this.details = details;
  }
}

export class ValidationError extends LedgerError {
  readonly code = "VALIDATION_FAILED";
  readonly issues: readonly ValidationIssue[];
  constructor(issues: readonly ValidationIssue[]) {
    super(issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join("; "), { issues });
    this.issues = issues;
  }
}

export class UnknownOperationError extends LedgerError {
  readonly code = "UNKNOWN_OPERATION";
  constructor(operation: string, known: readonly string[]) {
    super(`Operation ${JSON.stringify(operation)} is not offered by this app`, { operation, known });
  }
}

export class AmountRequiredError extends LedgerError {
  readonly code = "AMOUNT_REQUIRED";
  constructor(operation: string, min: number, max: number) {
    super(`Operation ${operation} needs an amount between ${min} and ${max}`, { operation, min, max });
  }
}

export class AmountMismatchError extends LedgerError {
  readonly code = "AMOUNT_MISMATCH";
  constructor(operation: string, expected: number, received: number) {
    super(`Operation ${operation} always moves ${expected} credits; the request said ${received}`, {
      operation,
      expected,
      received,
    });
  }
}

export class AmountOutOfRangeError extends LedgerError {
  readonly code = "AMOUNT_OUT_OF_RANGE";
  constructor(operation: string, min: number, max: number, received: number) {
    super(`Operation ${operation} takes an amount between ${min} and ${max}; the request said ${received}`, {
      operation,
      min,
      max,
      received,
    });
  }
}

export class InvalidCursorError extends LedgerError {
  readonly code = "INVALID_CURSOR";
  constructor() {
    super("The cursor is not one this ledger issued");
  }
}

export class ExpiryNotAllowedError extends LedgerError {
  readonly code = "EXPIRY_NOT_ALLOWED";
  constructor(operation: string) {
    super(`Operation ${operation} does not take expires_at`, { operation });
  }
}

export class NonceConflictError extends LedgerError {
  readonly code = "NONCE_CONFLICT";
  constructor(nonce: string) {
    super(`Nonce ${JSON.stringify(nonce)} was already used by this app for a different request`, { nonce });
  }
}

export class InsufficientBalanceError extends LedgerError {
  readonly code = "INSUFFICIENT_BALANCE";
  constructor(ownerId: string, balance: number, amount: number) {
    super(`Owner ${JSON.stringify(ownerId)} has ${balance} credits; the operation needs ${-amount}`, {
      owner_id: ownerId,
      balance,
      required: -amount,
    });
  }
}

export class BalanceLimitExceededError extends LedgerError {
  readonly code = "BALANCE_LIMIT_EXCEEDED";
  constructor(ownerId: string, balance: number, amount: number, max: number) {
    super(`Owner ${JSON.stringify(ownerId)} would pass the largest balance the ledger holds (${max})`, {
      owner_id: ownerId,
      balance,
      amount,
      max,
    });
  }
}

export class LimitReachedError extends LedgerError {
  readonly code = "LIMIT_REACHED";
  constructor(ownerId: string, operation: string, limit: string, period: string) {
    super(
      limit === "daily"
        ? `Owner ${JSON.stringify(ownerId)} already received ${operation} on ${period} (UTC)`
        : `Owner ${JSON.stringify(ownerId)} already received ${operation}, which is once per owner`,
      { owner_id: ownerId, operation, limit, period },
    );
  }
}

export class HoldNotFoundError extends LedgerError {
  readonly code = "HOLD_NOT_FOUND";
  constructor(holdId: string) {
    super(`Hold ${JSON.stringify(holdId)} does not exist for this app`, { hold_id: holdId });
  }
}

export type HoldStatus = "active" | "captured" | "released" | "expired";

export class HoldNotActiveError extends LedgerError {
  readonly code = "HOLD_NOT_ACTIVE";
  /** Also a top-level member of the problem the HTTP edge answers with. */
  readonly holdStatus: HoldStatus;
  constructor(holdId: string, status: HoldStatus) {
    super(`Hold ${JSON.stringify(holdId)} is ${status}, not active`, {
      hold_id: holdId,
      hold_status: status,
    });
    this.holdStatus = status;
  }
}

export class CaptureExceedsHoldError extends LedgerError {
  readonly code = "CAPTURE_EXCEEDS_HOLD";
  constructor(holdId: string, held: number, requested: number) {
    super(`Hold ${JSON.stringify(holdId)} holds ${held} credits; the capture asked for ${requested}`, {
      hold_id: holdId,
      held,
      requested,
    });
  }
}

export class EntryNotFoundError extends LedgerError {
  readonly code = "ENTRY_NOT_FOUND";
  constructor(entryId: number) {
    super(`Entry ${entryId} does not exist for this app`, { entry_id: entryId });
  }
}

export class NotReversibleError extends LedgerError {
  readonly code = "NOT_REVERSIBLE";
  constructor(entryId: number, operation: string, why: string) {
    super(`Entry ${entryId} (${operation}) cannot be reversed: ${why}`, { entry_id: entryId, operation });
  }
}

export class ReversalExceedsOriginalError extends LedgerError {
  readonly code = "REVERSAL_EXCEEDS_ORIGINAL";
  constructor(entryId: number, left: number, requested: number) {
    super(`Entry ${entryId} has ${left} credits left to reverse; the reversal asked for ${requested}`, {
      entry_id: entryId,
      reversible_amount: left,
      requested,
    });
  }
}

export class AlreadyReversedError extends LedgerError {
  readonly code = "ALREADY_REVERSED";
  constructor(entryId: number) {
    super(`Entry ${entryId} is reversed in full already`, { entry_id: entryId });
  }
}

export class OwnerSuspendedError extends LedgerError {
  readonly code = "OWNER_SUSPENDED";
  constructor(ownerId: string) {
    super(`Owner ${JSON.stringify(ownerId)} is suspended`, { owner_id: ownerId });
  }
}

export class OwnerAlreadySuspendedError extends LedgerError {
  readonly code = "OWNER_ALREADY_SUSPENDED";
  constructor(ownerId: string) {
    super(`Owner ${JSON.stringify(ownerId)} is suspended already`, { owner_id: ownerId });
  }
}

export class OwnerNotSuspendedError extends LedgerError {
  readonly code = "OWNER_NOT_SUSPENDED";
  constructor(ownerId: string) {
    super(`Owner ${JSON.stringify(ownerId)} is not suspended`, { owner_id: ownerId });
  }
}

export class CatalogError extends LedgerError {
  readonly code = "CATALOG_INVALID";
}

export class DatabaseUnavailableError extends LedgerError {
  readonly code = "DATABASE_UNAVAILABLE";
  constructor(cause?: unknown) {
    super(
      "The ledger database is not answering. Retry with the same nonce: a retry never applies an operation twice.",
    );
    this.cause = cause;
  }
}
