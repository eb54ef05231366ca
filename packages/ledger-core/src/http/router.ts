// The ledger's routes, built for one app's service and catalog. Routes are declared with createRoute,
// so the OpenAPI document comes from the same zod schemas that validate the requests.
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { amountSchema, nonceSchema, operationNameSchema, ownerIdSchema } from "../domain/input.js";
import { INSTANT_LENGTH_MAX, instantSchema } from "../domain/instant.js";
import { PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX } from "../domain/limits.js";
import type { OperationDefinition } from "../domain/operations.js";
import type { LedgerService } from "../service/ledger-service.js";
import type { LedgerEnv } from "./env.js";
import { problem, problemContent } from "./problem.js";

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
    expires_at: z.iso.datetime().optional().openapi({
      format: "date-time",
      description:
        "A credit that expires: when its unspent remainder stops counting. An EXPIRY entry: the expiry it recorded.",
    }),
  })
  .openapi("Entry");

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
    balance: z
      .number()
      .int()
      .nonnegative()
      .openapi({ description: "The running balance after the last entry at or before `at`" }),
    at: z.iso.datetime().openapi({ format: "date-time" }),
  })
  .openapi("BalanceAt", { example: { owner_id: "test_user", balance: 10, at: "2026-03-01T12:00:00.000Z" } });

export const postResultSchema = z
  .object({
    owner_id: z.string(),
    balance: z.number().int().nonnegative().openapi({ description: "The owner's balance after the entry" }),
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

// The domain's schemas are created before @hono/zod-openapi extends zod, so they have no .openapi()
// of their own: each is cloned (after the extension) before metadata is attached.
const ownerParams = z.object({
  owner_id: ownerIdSchema.clone().openapi({ param: { name: "owner_id", in: "path" }, example: "test_user" }),
});

function describeOperation(name: string, def: OperationDefinition): string {
  const amount =
    def.kind === "fixed"
      ? `${def.amount >= 0 ? "+" : ""}${def.amount}`
      : `${def.direction === "debit" ? "-" : "+"}[${def.min}..${def.max}] (amount required)`;
  const limit =
    def.limit === "once" ? ", once per owner" : def.limit === "daily" ? ", once per owner per UTC day" : "";
  const expiry =
    def.expiresAfterS !== undefined
      ? `, expiring ${formatDuration(def.expiresAfterS)} after it is granted`
      : def.allowsExpiresAt === true
        ? ", may carry expires_at"
        : "";
  return `- \`${name}\`: ${amount}${limit}${expiry}${def.description ? `. ${def.description}` : ""}`;
}

function formatDuration(seconds: number): string {
  if (seconds % 86_400 === 0) return `${seconds / 86_400} day(s)`;
  if (seconds % 3_600 === 0) return `${seconds / 3_600} hour(s)`;
  return `${seconds} s`;
}

/** The /ledger routes for one app. Mount it at the root of the app (it declares /ledger paths itself). */
export function createLedgerRouter(service: LedgerService) {
  const { catalog } = service;
  const operationList = catalog.names
    .map((name) => {
      const def = catalog.get(name);
      return def ? describeOperation(name, def) : "";
    })
    .join("\n");

  const expiringOperations = catalog.names.filter((n) => catalog.get(n)?.allowsExpiresAt === true);
  const postBodySchema = z
    .strictObject({
      owner_id: ownerIdSchema.clone().openapi({ example: "test_user" }),
      operation: operationNameSchema.clone().openapi({
        enum: [...catalog.names],
        example: "CREDIT_ADD",
        description: `One of this app's operations:\n${operationList}`,
      }),
      amount: amountSchema.optional().openapi({
        description:
          "Magnitude of credits (the operation gives the sign). Optional for fixed operations, where it must " +
          "equal the operation's amount; required for variable ones.",
        example: 10,
      }),
      nonce: nonceSchema.clone().openapi({
        description: "Unique per app. Sending it again with the same request returns the original answer.",
        example: "123e4567-e89b-12d3-a456-426655440000",
      }),
      expires_at: instantSchema.optional().openapi({
        format: "date-time",
        description:
          "When the credits granted expire (RFC 3339 with an offset, in the future, at most ten years ahead; " +
          "kept to the millisecond). Only for operations that allow it: " +
          (expiringOperations.length > 0 ? expiringOperations.join(", ") : "none in this app") +
          ".",
        example: "2026-12-31T00:00:00Z",
      }),
    })
    .openapi("PostOperation");

  const postRoute = createRoute({
    method: "post",
    path: "/ledger",
    summary: "Apply an operation to an owner's balance",
    description: `Exactly once per nonce. Operations of the ${service.app} app:\n${operationList}`,
    request: { body: { required: true, content: { "application/json": { schema: postBodySchema } } } },
    responses: {
      201: { description: "Applied", content: { "application/json": { schema: postResultSchema } } },
      200: {
        description: "Replay: this nonce was applied before; the original answer",
        content: { "application/json": { schema: postResultSchema } },
      },
      400: problemContent(
        "The request is malformed (VALIDATION_FAILED, including an expires_at in the past or over ten years " +
          "ahead), or names an unknown operation (UNKNOWN_OPERATION), a wrong amount (AMOUNT_*), or an " +
          "expires_at on an operation that does not take one (EXPIRY_NOT_ALLOWED)",
      ),
      409: problemContent("NONCE_CONFLICT: the nonce was used for a different request"),
      413: problemContent("The body is over the size limit"),
      415: problemContent("The body is not application/json"),
      422: problemContent("INSUFFICIENT_BALANCE, BALANCE_LIMIT_EXCEEDED or LIMIT_REACHED"),
      503: problemContent("The database is not answering; retry with the same nonce"),
    },
  });

  const balanceRoute = createRoute({
    method: "get",
    path: "/ledger/{owner_id}",
    summary: "An owner's balance, now or at an instant",
    request: {
      params: ownerParams,
      query: z.object({
        at: z
          .string()
          .max(INSTANT_LENGTH_MAX)
          .optional()
          .openapi({
            format: "date-time",
            description:
              "An instant (RFC 3339, not in the future): answer `{owner_id, balance, at}`, the running balance " +
              "right after the owner's last entry at or before it",
          }),
      }),
    },
    responses: {
      200: {
        description:
          "The balance now (0 for an owner with no entries), or with `at` the balance at that instant (BalanceAt)",
        content: { "application/json": { schema: z.union([balanceSchema, balanceAtSchema]) } },
      },
      400: problemContent("The owner id or the instant is invalid"),
      503: problemContent("The database is not answering"),
    },
  });

  const entriesRoute = createRoute({
    method: "get",
    path: "/ledger/{owner_id}/entries",
    summary: "An owner's entries, newest first, with running balances",
    request: {
      params: ownerParams,
      query: z.object({
        cursor: z.string().max(64).optional().openapi({ description: "next_cursor of the previous page" }),
        from: z.string().max(INSTANT_LENGTH_MAX).optional().openapi({
          format: "date-time",
          description: "Only entries created at or after this instant (RFC 3339)",
        }),
        to: z.string().max(INSTANT_LENGTH_MAX).optional().openapi({
          format: "date-time",
          description: "Only entries created at or before this instant (RFC 3339)",
        }),
        app: z
          .string()
          .min(1)
          .max(64)
          .optional()
          .openapi({ description: "Only entries written by this app" }),
        operation: operationNameSchema
          .clone()
          .optional()
          .openapi({ description: "Only entries of this operation" }),
        limit: z
          .string()
          .regex(/^[1-9][0-9]{0,2}$/, `limit is a whole number from 1 to ${PAGE_SIZE_MAX}`)
          .transform(Number)
          .pipe(z.number().max(PAGE_SIZE_MAX, `limit is a whole number from 1 to ${PAGE_SIZE_MAX}`))
          .optional()
          .openapi({
            type: "integer",
            description: `Page size, default ${PAGE_SIZE_DEFAULT}`,
            example: PAGE_SIZE_DEFAULT,
          }),
      }),
    },
    responses: {
      200: { description: "A page of entries", content: { "application/json": { schema: entryPageSchema } } },
      400: problemContent("The owner id, cursor, limit or a filter is invalid"),
      503: problemContent("The database is not answering"),
    },
  });

  return new OpenAPIHono<LedgerEnv>({ strict: false, defaultHook: validationHook })
    .openapi(postRoute, async (c) => {
      const result = await service.post(c.req.valid("json"));
      const body = {
        owner_id: result.entry.owner_id,
        balance: result.balance,
        replayed: result.replayed,
        entry: result.entry,
      };
      c.header("idempotent-replayed", String(result.replayed));
      c.get("log").info(
        {
          owner_id: body.owner_id,
          operation: result.entry.operation,
          replayed: result.replayed,
          entry_id: result.entry.id,
        },
        "ledger.post",
      );
      return result.replayed ? c.json(body, 200) : c.json(body, 201);
    })
    .openapi(balanceRoute, async (c) => {
      const { owner_id } = c.req.valid("param");
      const { at } = c.req.valid("query");
      return c.json(
        at === undefined ? await service.balance(owner_id) : await service.balanceAt(owner_id, at),
        200,
      );
    })
    .openapi(entriesRoute, async (c) => {
      const { owner_id } = c.req.valid("param");
      return c.json(await service.entries({ owner_id, ...c.req.valid("query") }), 200);
    });
}

/** Every request that fails its zod schema gets the same 400 problem. */
export function validationHook(
  result: { success: true } | { success: false; error: z.ZodError },
  c: Parameters<typeof problem>[0],
): Response | undefined {
  if (result.success) return undefined;
  const errors = result.error.issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message }));
  return problem(
    c,
    "VALIDATION_FAILED",
    errors.map((e) => (e.path ? `${e.path}: ${e.message}` : e.message)).join("; "),
    {
      errors,
    },
  );
}

export type LedgerRouter = ReturnType<typeof createLedgerRouter>;
