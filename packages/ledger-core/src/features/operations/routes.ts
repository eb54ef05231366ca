// POST /ledger: apply one of the app's operations. The route of the operations feature.
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { amountSchema, nonceSchema, operationNameSchema, ownerIdSchema } from "../../domain/input.js";
import { instantSchema } from "../../domain/instant.js";
import type { OperationDefinition } from "../../domain/operations.js";
import type { PostResult } from "../../domain/types.js";
import { postResultSchema, validationHook } from "../../http/contract.js";
import type { LedgerEnv } from "../../http/env.js";
import { problemContent } from "../../http/problem.js";
import type { LedgerService } from "../../service/ledger-service.js";

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

/** The body POST /ledger answers a post with (201, or 200 for a replay); a batch's items too. */
export function postResultBody(result: PostResult) {
  return {
    owner_id: result.entry.owner_id,
    balance: result.balance,
    available: result.available,
    replayed: result.replayed,
    entry: result.entry,
  };
}

/** The operations feature's route for one app. */
export function operationRoutes(service: LedgerService) {
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
    operationId: "postOperation",
    tags: ["Operations"],
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

  return new OpenAPIHono<LedgerEnv>({ strict: false, defaultHook: validationHook }).openapi(
    postRoute,
    async (c) => {
      // The route's schema has validated the body already.
      const result = await service.postParsed(c.req.valid("json"));
      const body = postResultBody(result);
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
    },
  );
}
