// One error shape for everything the HTTP edge can answer with: RFC 9457 problem+json with a stable
// `code`. Used by onError, the validation hook, the body limit and the 404 handler alike.
import type { Context } from "hono";
import { z } from "@hono/zod-openapi";
import {
  HoldNotActiveError,
  type LedgerError,
  type LedgerErrorCode,
  type ValidationIssue,
} from "../domain/errors.js";

export type HttpErrorCode =
  | LedgerErrorCode
  | "MALFORMED_JSON"
  | "UNSUPPORTED_MEDIA_TYPE"
  | "PAYLOAD_TOO_LARGE"
  | "NOT_FOUND"
  | "BAD_REQUEST"
  | "UNAUTHENTICATED"
  | "FORBIDDEN"
  | "RATE_LIMITED"
  | "INTERNAL_ERROR";

export type ProblemStatus = 400 | 401 | 403 | 404 | 409 | 413 | 415 | 422 | 429 | 500 | 503;

/** Which status each domain code earns: 400 the request is wrong, 409 the nonce is taken, 422 a rule refused. */
export const STATUS_BY_CODE: Record<HttpErrorCode, ProblemStatus> = {
  VALIDATION_FAILED: 400,
  UNKNOWN_OPERATION: 400,
  AMOUNT_REQUIRED: 400,
  AMOUNT_MISMATCH: 400,
  AMOUNT_OUT_OF_RANGE: 400,
  INVALID_CURSOR: 400,
  EXPIRY_NOT_ALLOWED: 400,
  MALFORMED_JSON: 400,
  BAD_REQUEST: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  NONCE_CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  INSUFFICIENT_BALANCE: 422,
  BALANCE_LIMIT_EXCEEDED: 422,
  LIMIT_REACHED: 422,
  HOLD_NOT_FOUND: 404,
  ENTRY_NOT_FOUND: 404,
  HOLD_NOT_ACTIVE: 409,
  ALREADY_REVERSED: 409,
  OWNER_ALREADY_SUSPENDED: 409,
  OWNER_NOT_SUSPENDED: 409,
  CAPTURE_EXCEEDS_HOLD: 422,
  NOT_REVERSIBLE: 422,
  REVERSAL_EXCEEDS_ORIGINAL: 422,
  OWNER_SUSPENDED: 422,
  RATE_LIMITED: 429,
  CATALOG_INVALID: 500,
  INTERNAL_ERROR: 500,
  DATABASE_UNAVAILABLE: 503,
};

const TITLES: Record<ProblemStatus, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  409: "Conflict",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  429: "Too Many Requests",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

export const problemSchema = z
  .object({
    type: z.string().openapi({ example: "urn:ledger:problem:insufficient-balance" }),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    code: z.string().openapi({ example: "INSUFFICIENT_BALANCE" }),
    request_id: z.string().optional(),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    details: z.record(z.string(), z.unknown()).optional(),
    hold_status: z
      .enum(["active", "captured", "released", "expired"])
      .optional()
      .openapi({ description: "HOLD_NOT_ACTIVE: the hold's status (also in details)" }),
  })
  .openapi("Problem");

export type Problem = z.infer<typeof problemSchema>;

export function problemBody(
  code: HttpErrorCode,
  detail: string,
  extra: {
    requestId?: string | undefined;
    errors?: readonly ValidationIssue[];
    details?: Record<string, unknown>;
    /** Extension members at the top level (RFC 9457 section 3.2). */
    members?: Partial<Pick<Problem, "hold_status">>;
  } = {},
): Problem {
  const status = STATUS_BY_CODE[code];
  return {
    type: `urn:ledger:problem:${code.toLowerCase().replaceAll("_", "-")}`,
    title: TITLES[status],
    status,
    detail,
    code,
    ...(extra.requestId ? { request_id: extra.requestId } : {}),
    ...(extra.errors ? { errors: [...extra.errors] } : {}),
    ...(extra.details && Object.keys(extra.details).length > 0 ? { details: extra.details } : {}),
    ...extra.members,
  };
}

/**
 * What a domain error's problem carries besides its code and detail: onError's answer to it, and a batch
 * item's, which must be the same byte for byte.
 */
export function problemExtra(error: LedgerError): {
  errors?: readonly ValidationIssue[];
  details: Record<string, unknown>;
  members?: Partial<Pick<Problem, "hold_status">>;
} {
  return {
    ...("issues" in error ? { errors: error.issues as readonly ValidationIssue[] } : {}),
    details: "issues" in error ? {} : error.details,
    ...(error instanceof HoldNotActiveError ? { members: { hold_status: error.holdStatus } } : {}),
  };
}

/** The problem of a domain error (the request id aside, unless given). */
export function problemOfError(error: LedgerError, requestId?: string): Problem {
  return problemBody(error.code, error.message, { ...problemExtra(error), requestId });
}

export function problemResponse(problem: Problem, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(problem), {
    status: problem.status,
    headers: { "content-type": "application/problem+json", ...headers },
  });
}

export function problem(
  c: Context,
  code: HttpErrorCode,
  detail: string,
  extra: {
    errors?: readonly ValidationIssue[];
    details?: Record<string, unknown>;
    members?: Partial<Pick<Problem, "hold_status">>;
  } = {},
  headers: Record<string, string> = {},
): Response {
  const requestId = (c.get("requestId") as string | undefined) ?? undefined;
  return problemResponse(problemBody(code, detail, { ...extra, requestId }), {
    ...headers,
    ...(requestId ? { "x-request-id": requestId } : {}),
  });
}

/** The OpenAPI description of an error response, shared by every route. */
export function problemContent(description: string) {
  return { description, content: { "application/problem+json": { schema: problemSchema } } };
}
