// POST /ledger/entries/{entry_id}/reversal: reverse one of the app's entries, in full or in part. The
// route of the reversals feature.
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { nonceSchema, reasonSchema } from "../../domain/input.js";
import { AMOUNT_MAX, REASON_LENGTH_MAX } from "../../domain/limits.js";
import { entrySchema, ownerFigures, validationHook } from "../../http/contract.js";
import type { LedgerEnv } from "../../http/env.js";
import { problemContent } from "../../http/problem.js";
import type { LedgerService } from "../../service/ledger-service.js";
import { reverseEntry } from "./command.js";

/** An entry id in a path: a positive integer within 2^53-1, written without a sign or leading zero. */
export const entryIdParam = z
  .string()
  .regex(/^[1-9][0-9]{0,15}$/, "entry_id is a positive whole number")
  .transform(Number)
  .pipe(z.number().max(Number.MAX_SAFE_INTEGER, "entry_id is a positive whole number"))
  .openapi({ param: { name: "entry_id", in: "path" }, type: "integer", example: 42 });

export const reversalBodySchema = z
  .strictObject({
    nonce: nonceSchema.clone().openapi({
      description:
        "Unique per app across every write. Sending it again with the same request returns the original answer.",
      example: "refund-order-1234",
    }),
    amount: z.number().int().min(1).max(AMOUNT_MAX).optional().openapi({
      description: "How much of the entry to reverse (1..what is left); default: what is left",
      example: 5,
    }),
    reason: reasonSchema
      .clone()
      .optional()
      .openapi({
        description: `Why, recorded on the entry (1..${REASON_LENGTH_MAX} characters, no control characters)`,
        example: "order 1234 refunded",
      }),
  })
  .openapi("ReverseEntry");

export const reversalResultSchema = z
  .object({
    ...ownerFigures,
    replayed: z
      .boolean()
      .openapi({ description: "True when this nonce was applied before: the original answer" }),
    entry: entrySchema,
    original: z.object({
      id: z.number().int().positive(),
      amount: z.number().int().openapi({ description: "The reversed entry's signed amount" }),
      reversed_amount: z.number().int().positive().openapi({
        description: "What its reversals have given back, this one included (for a replay: as then)",
      }),
    }),
  })
  .openapi("ReversalResult");

/** The reversals feature's route for one app. */
export function reversalRoutes(service: LedgerService) {
  const reversalRoute = createRoute({
    method: "post",
    path: "/ledger/entries/{entry_id}/reversal",
    operationId: "reverseEntry",
    tags: ["Reversals"],
    summary: "Reverse one of this app's entries, in full or in part",
    description:
      "Writes a REVERSAL entry of the opposite sign, linked by `reverses`. Reversing a debit gives the credits " +
      "back to the grants it spent, with their expiry (past it, they expire at once); in part, the credits " +
      "without expiry first, then the grants from the latest expiry to the soonest. Reversing a credit takes " +
      "the credits back from its own grant if it expires, else from the credits without expiry. Partial " +
      "reversals add up to at most the original. No once or daily limit is given back. Exactly once per nonce.",
    request: {
      params: z.object({ entry_id: entryIdParam }),
      body: { required: true, content: { "application/json": { schema: reversalBodySchema } } },
    },
    responses: {
      201: { description: "Reversed", content: { "application/json": { schema: reversalResultSchema } } },
      200: {
        description: "Replay: this nonce was applied before; the original answer",
        content: { "application/json": { schema: reversalResultSchema } },
      },
      400: problemContent("The entry id or the body is malformed (VALIDATION_FAILED)"),
      404: problemContent("ENTRY_NOT_FOUND: no such entry, or another app's"),
      409: problemContent(
        "ALREADY_REVERSED: nothing is left to reverse; NONCE_CONFLICT: the nonce was used for a different request",
      ),
      413: problemContent("The body is over the size limit"),
      415: problemContent("The body is not application/json"),
      422: problemContent(
        "NOT_REVERSIBLE (zero amount, EXPIRY, HOLD, HOLD_RELEASE, HOLD_EXPIRY, REVERSAL, TRANSFER_OUT, TRANSFER_IN, " +
          "SUSPENSION, REINSTATEMENT), REVERSAL_EXCEEDS_ORIGINAL, INSUFFICIENT_BALANCE or BALANCE_LIMIT_EXCEEDED",
      ),
      503: problemContent("The database is not answering; retry with the same nonce"),
    },
  });

  return new OpenAPIHono<LedgerEnv>({ strict: false, defaultHook: validationHook }).openapi(
    reversalRoute,
    async (c) => {
      const { entry_id } = c.req.valid("param");
      const result = await reverseEntry(service, entry_id, c.req.valid("json"));
      c.header("idempotent-replayed", String(result.replayed));
      c.get("log").info(
        {
          owner_id: result.entry.owner_id,
          reverses: entry_id,
          amount: result.entry.amount,
          replayed: result.replayed,
          entry_id: result.entry.id,
        },
        "ledger.reversal",
      );
      return result.replayed ? c.json(result, 200) : c.json(result, 201);
    },
  );
}
