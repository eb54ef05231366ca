// What a call can fail with. The ledger answers every error as RFC 9457 problem+json with a stable
// `code`; the client turns each into a LedgerApiError whose `code` is one of PROBLEM_CODES, so a caller
// can switch on it. Failures with no answer to read become a LedgerNetworkError once the retries are spent.
import type { components } from "./generated/app1.js";

/**
 * Every `code` the ledger's apps answer with: the core's (STATUS_BY_CODE in
 * packages/ledger-core/src/http/problem.ts). src/errors.test-d.ts fails when the two lists differ.
 */
export const PROBLEM_CODES = [
  "VALIDATION_FAILED",
  "MALFORMED_JSON",
  "BAD_REQUEST",
  "UNKNOWN_OPERATION",
  "EXPIRY_NOT_ALLOWED",
  "AMOUNT_MISMATCH",
  "AMOUNT_REQUIRED",
  "AMOUNT_OUT_OF_RANGE",
  "INVALID_CURSOR",
  "UNAUTHENTICATED",
  "FORBIDDEN",
  "NOT_FOUND",
  "HOLD_NOT_FOUND",
  "ENTRY_NOT_FOUND",
  "NONCE_CONFLICT",
  "HOLD_NOT_ACTIVE",
  "ALREADY_REVERSED",
  "OWNER_ALREADY_SUSPENDED",
  "OWNER_NOT_SUSPENDED",
  "PAYLOAD_TOO_LARGE",
  "UNSUPPORTED_MEDIA_TYPE",
  "INSUFFICIENT_BALANCE",
  "LIMIT_REACHED",
  "BALANCE_LIMIT_EXCEEDED",
  "OWNER_SUSPENDED",
  "CAPTURE_EXCEEDS_HOLD",
  "NOT_REVERSIBLE",
  "REVERSAL_EXCEEDS_ORIGINAL",
  "RATE_LIMITED",
  "CATALOG_INVALID",
  "INTERNAL_ERROR",
  "DATABASE_UNAVAILABLE",
] as const;

export type ProblemCode = (typeof PROBLEM_CODES)[number];

/**
 * A problem body as the apps send it: the document's Problem, plus `index` (an atomic batch's refusal:
 * the item refused) and any other extension member.
 */
export type Problem = components["schemas"]["Problem"] & { index?: number; [member: string]: unknown };

const KNOWN_CODES: ReadonlySet<string> = new Set(PROBLEM_CODES);

export function isProblemCode(code: unknown): code is ProblemCode {
  return typeof code === "string" && KNOWN_CODES.has(code);
}

/** What every client error says of the request it failed. */
interface RequestFacts {
  /** `POST /ledger/holds`, ... (the route's template, not the URL). */
  route: string;
  /** How many times the request was sent. */
  attempts: number;
  /**
   * A write's nonce, the caller's or the one the client made up (a batch: each item's, in order; a read:
   * none). After a LedgerNetworkError or a 503 the write's outcome is unknown: send it again with the
   * same nonces, which apply it at most once.
   */
  nonces: readonly string[];
}

/** The base of every error the client throws (an aborted call rejects with the signal's reason instead). */
export abstract class LedgerClientError extends Error {
  readonly route: string;
  readonly attempts: number;
  readonly nonces: readonly string[];

  constructor(message: string, facts: RequestFacts, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.route = facts.route;
    this.attempts = facts.attempts;
    this.nonces = facts.nonces;
  }

  /** A single write's nonce (undefined for a read, or a batch of more than one). */
  get nonce(): string | undefined {
    return this.nonces.length === 1 ? this.nonces[0] : undefined;
  }
}

/** The ledger refused the request: a problem+json answer with one of its codes. */
export class LedgerApiError extends LedgerClientError {
  readonly status: number;
  readonly code: ProblemCode;
  readonly detail: string;
  /** The whole problem body, extension members (`errors`, `details`, `hold_status`, `index`) included. */
  readonly problem: Problem;
  /** 429: the `Retry-After` the ledger sent, in seconds (undefined when it sent none). */
  readonly retryAfterS: number | undefined;

  constructor(
    problem: Problem & { code: ProblemCode },
    status: number,
    facts: RequestFacts & { retryAfterS?: number | undefined },
  ) {
    super(`${facts.route}: ${status} ${problem.code}: ${problem.detail}`, facts);
    this.status = status;
    this.code = problem.code;
    this.detail = problem.detail;
    this.problem = problem;
    this.retryAfterS = facts.retryAfterS;
  }
}

/**
 * No answer could be read (the connection failed or was reset, or `timeoutMs` passed), on every attempt.
 * For a write the outcome is unknown: retry later with the same `nonce`.
 */
export class LedgerNetworkError extends LedgerClientError {
  constructor(facts: RequestFacts, cause: unknown) {
    const reason = cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause);
    super(`${facts.route}: no answer after ${facts.attempts} attempt(s) (last: ${reason})`, facts, { cause });
  }
}

/**
 * An answer the client cannot read as the ledger's: an error body that is not a problem (a proxy's HTML
 * page), a problem with a code this client does not know (a newer ledger: update the client), or a
 * success body that is not JSON.
 */
export class LedgerResponseError extends LedgerClientError {
  readonly status: number;
  /** The body, parsed as JSON when it is JSON, else its text. */
  readonly body: unknown;

  constructor(status: number, body: unknown, facts: RequestFacts) {
    const shown = typeof body === "string" ? body.slice(0, 200) : JSON.stringify(body)?.slice(0, 200);
    super(`${facts.route}: unexpected ${status} answer: ${shown}`, facts);
    this.status = status;
    this.body = body;
  }
}

/** Whether `error` is the ledger's refusal with one of `codes` (any code when none is given). */
export function isLedgerApiError<C extends ProblemCode = ProblemCode>(
  error: unknown,
  ...codes: C[]
): error is LedgerApiError & { code: C } {
  return (
    error instanceof LedgerApiError &&
    (codes.length === 0 || (codes as readonly ProblemCode[]).includes(error.code))
  );
}

/** The problem in an error answer's body, if it is one with a known code. */
export function asProblem(body: unknown): (Problem & { code: ProblemCode }) | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const p = body as Record<string, unknown>;
  if (!isProblemCode(p.code) || typeof p.detail !== "string" || typeof p.status !== "number")
    return undefined;
  return body as Problem & { code: ProblemCode };
}
