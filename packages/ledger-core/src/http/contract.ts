// The HTTP contract the features share: the response schemas (the OpenAPI document is made from them,
// and the tests check every body against them), the owner path parameter, and the validation hook
// that gives every schema failure the same 400 problem.
import { z } from "@hono/zod-openapi";
import { ownerIdSchema } from "../domain/input.js";
import { problem, problemBody, type Problem } from "./problem.js";

export const entrySchema = z
  .object({
    id: z.number().int().positive(),
    app: z.string(),
    operation: z.string(),
    owner_id: z.string(),
    amount: z.number().int().openapi({ description: "Signed: what this entry did to the owner's balance" }),
    balance_after: z
      .number()
      .int()
      .nonnegative()
      .openapi({ description: "The owner's balance right after this entry" }),
    sequence: z
      .number()
      .int()
      .positive()
      .openapi({ description: "Position in the owner's history: 1, 2, 3, ..." }),
    nonce: z.string(),
    created_at: z.iso.datetime().openapi({ format: "date-time" }),
    expires_at: z.iso
      .datetime()
      .optional()
      .openapi({
        format: "date-time",
        description:
          "A credit that expires: when its unspent remainder stops counting. An EXPIRY entry: the expiry it " +
          "recorded. A HOLD entry: the hold's expiry.",
      }),
    hold_id: z
      .string()
      .optional()
      .openapi({ description: "HOLD, HOLD_RELEASE, HOLD_EXPIRY and captures: the hold" }),
    reverses: z
      .number()
      .int()
      .positive()
      .optional()
      .openapi({ description: "A REVERSAL: the entry it reverses" }),
    reversed_amount: z.number().int().positive().optional().openapi({
      description: "An entry reversed in part or in full: the credits its reversals gave back so far",
    }),
    counterparty_owner_id: z
      .string()
      .optional()
      .openapi({ description: "TRANSFER_OUT and TRANSFER_IN: the other owner" }),
    reason: z.string().optional().openapi({ description: "Why, as the caller said" }),
    actor: z.string().optional().openapi({
      description:
        "The id of the API key that wrote it (absent: written without a key, or by the ledger itself)",
      example: "3f9c1a0b7d2e4c58",
    }),
  })
  .openapi("Entry");

/** What every answer that changes an owner carries. */
export const ownerFigures = {
  balance: z.number().int().nonnegative().openapi({ description: "The owner's balance after the write" }),
  available: z
    .number()
    .int()
    .nonnegative()
    .openapi({ description: "The owner's available credits (balance less held) after the write" }),
};

export const balanceSchema = z
  .object({
    owner_id: z.string(),
    balance: z
      .number()
      .int()
      .nonnegative()
      .openapi({ description: "Credits that count now: expired remainders never do, swept or not" }),
    available: z
      .number()
      .int()
      .nonnegative()
      .openapi({ description: "The balance less credits under active holds" }),
    held: z.number().int().nonnegative().openapi({ description: "Credits under active holds" }),
    status: z.enum(["active", "suspended"]),
    expiring: z
      .array(
        z.strictObject({
          amount: z.number().int().positive(),
          expires_at: z.iso.datetime().openapi({ format: "date-time" }),
        }),
      )
      .openapi({
        description: "Unexpired credits with an expiry, summed by instant, soonest first (at most 50)",
      }),
  })
  .openapi("Balance", {
    example: {
      owner_id: "test_user",
      balance: 30,
      available: 30,
      held: 0,
      status: "active",
      expiring: [{ amount: 20, expires_at: "2026-12-31T00:00:00.000Z" }],
    },
  });

export const balanceAtSchema = z
  .object({
    owner_id: z.string(),
    balance: z.number().int().nonnegative().openapi({
      description:
        "The balance right after the last entry at or before `at`, without remainders that had expired by then",
    }),
    at: z.iso.datetime().openapi({ format: "date-time" }),
  })
  .openapi("BalanceAt", { example: { owner_id: "test_user", balance: 10, at: "2026-03-01T12:00:00.000Z" } });

export const postResultSchema = z
  .object({
    owner_id: z.string(),
    ...ownerFigures,
    replayed: z
      .boolean()
      .openapi({ description: "True when this nonce was applied before: the original answer" }),
    entry: entrySchema,
  })
  .openapi("PostResult");

export const entryPageSchema = z
  .object({
    owner_id: z.string(),
    entries: z.array(entrySchema),
    next_cursor: z.string().nullable().openapi({ description: "Pass as `cursor` for the next, older page" }),
  })
  .openapi("EntryPage");

export const entrySummarySchema = z
  .object({
    owner_id: z.string(),
    from: z.iso.datetime().openapi({ format: "date-time" }),
    to: z.iso.datetime().openapi({ format: "date-time" }),
    balance_from: z.number().int().openapi({
      description:
        "The running balance right after the owner's last entry at or before `from` (0 before the first)",
    }),
    balance_to: z.number().int().openapi({
      description: "The running balance right after the owner's last entry at or before `to`",
    }),
    change: z.number().int().openapi({
      description: "balance_to - balance_from: exactly what the groups' amounts add up to",
    }),
    groups: z
      .array(
        z.object({
          app: z.string(),
          operation: z.string(),
          entries: z.number().int().positive(),
          amount: z.number().int(),
        }),
      )
      .openapi({
        description:
          "The entries after `from`, up to `to`, of every app, summed by app and operation, in that order",
      }),
  })
  .openapi("EntrySummary", {
    example: {
      owner_id: "test_user",
      from: "2026-02-01T00:00:00.000Z",
      to: "2026-03-01T00:00:00.000Z",
      balance_from: 41,
      balance_to: 37,
      change: -4,
      groups: [
        { app: "app1", operation: "CREDIT_ADD", entries: 1, amount: 10 },
        { app: "app1", operation: "CREDIT_SPEND", entries: 5, amount: -5 },
        { app: "app2", operation: "EXPIRY", entries: 1, amount: -9 },
      ],
    },
  });

// The domain's schemas are created before @hono/zod-openapi extends zod, so they have no .openapi()
// of their own: each is cloned (after the extension) before metadata is attached.
export const ownerParams = z.object({
  owner_id: ownerIdSchema.clone().openapi({ param: { name: "owner_id", in: "path" }, example: "test_user" }),
});

/**
 * The 400 problem of a value that fails its zod schema (the request id aside): what the validation hook
 * answers, and what a batch answers for an item that fails the schema of POST /ledger.
 */
export function validationProblem(error: {
  issues: readonly { path: readonly PropertyKey[]; message: string }[];
}): Problem {
  const errors = error.issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message }));
  const detail = errors.map((e) => (e.path ? `${e.path}: ${e.message}` : e.message)).join("; ");
  return problemBody("VALIDATION_FAILED", detail, { errors });
}

/** Every request that fails its zod schema gets the same 400 problem. */
export function validationHook(
  result: { success: true } | { success: false; error: z.ZodError },
  c: Parameters<typeof problem>[0],
): Response | undefined {
  if (result.success) return undefined;
  const { detail, errors = [] } = validationProblem(result.error);
  return problem(c, "VALIDATION_FAILED", detail, { errors });
}
