// The shape of every input the ledger accepts, as zod schemas. The service validates with these, and
// the HTTP edge builds its OpenAPI schemas from the same ones, so the two can never disagree.
import { z } from "zod";
import { instantSchema } from "./instant.js";
import {
  AMOUNT_MAX,
  NONCE_LENGTH_MAX,
  OPERATION_NAME_LENGTH_MAX,
  OWNER_ID_LENGTH_MAX,
  PAGE_SIZE_MAX,
  REASON_LENGTH_MAX,
} from "./limits.js";

/** Letters, digits and `_ . : @ -`, starting with a letter, digit or underscore: safe in a URL path. */
export const OWNER_ID_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.:@-]*$/;
/** Printable ASCII without spaces: UUIDs, ULIDs, and most client-made keys fit. */
export const NONCE_PATTERN = /^[\x21-\x7E]+$/;

/**
 * Words the ledger's routes put right after /ledger/ (GET /ledger/holds/{hold_id}, POST
 * /ledger/transfers, POST /ledger/entries/{entry_id}/reversal, /ledger/events, POST /ledger/batch): no
 * owner may be called one of them, so no path can mean an owner and a route at once. Migration 0003
 * refuses a ledger that already has such an owner.
 */
export const RESERVED_OWNER_IDS: readonly string[] = ["holds", "transfers", "entries", "events", "batch"];

export const ownerIdSchema = z
  .string()
  .min(1)
  .max(OWNER_ID_LENGTH_MAX)
  .regex(OWNER_ID_PATTERN, "owner_id may hold letters, digits and _ . : @ - and must not start with . : @ -")
  .refine((id) => !RESERVED_OWNER_IDS.includes(id), {
    message: `owner_id may not be one of the ledger's route words: ${RESERVED_OWNER_IDS.join(", ")}`,
  });

export const nonceSchema = z
  .string()
  .min(1)
  .max(NONCE_LENGTH_MAX)
  .regex(NONCE_PATTERN, "nonce must be printable ASCII without spaces");

export const operationNameSchema = z.string().min(1).max(OPERATION_NAME_LENGTH_MAX);

/**
 * Why a write was made, as the caller says it (suspensions, reinstatements, reversals): 1..REASON_LENGTH_MAX
 * characters of text with something besides spaces, no control characters (a NUL cannot be stored, a
 * newline or an escape would forge lines in whatever shows it), no bidirectional overrides, and no lone
 * surrogates (not text: no UTF-8 encoding exists for them).
 */
export const reasonSchema = z
  .string()
  .min(1)
  .max(REASON_LENGTH_MAX)
  .regex(/\S/, "reason must say something: not only spaces")
  // With the u flag a lone surrogate is a code point of its own, of category Cs. Bidirectional
  // overrides and isolates would make the reason read otherwise than it is stored.
  .regex(
    /^[^\p{Cc}\p{Cs}\u202A-\u202E\u2066-\u2069]*$/u,
    "reason must not contain control characters, bidirectional overrides or lone surrogates",
  );

/** The magnitude of credits to move; the operation decides the sign. */
export const amountSchema = z.number().int().min(0).max(AMOUNT_MAX);

export const postOperationInputSchema = z.strictObject({
  owner_id: ownerIdSchema,
  operation: operationNameSchema,
  amount: amountSchema.optional(),
  nonce: nonceSchema,
  /** RFC 3339, in the future, at most ten years ahead; only for operations that allow it. */
  expires_at: instantSchema.optional(),
});
export type PostOperationInput = z.infer<typeof postOperationInputSchema>;

export const pageSizeSchema = z.number().int().min(1).max(PAGE_SIZE_MAX);
