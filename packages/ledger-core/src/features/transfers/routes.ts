// POST /ledger/transfers: move credits from one owner to another, with their expiry. The route of the
// transfers feature.
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { nonceSchema, ownerIdSchema } from "../../domain/input.js";
import { AMOUNT_MAX } from "../../domain/limits.js";
import { entrySchema, ownerFigures, validationHook } from "../../http/contract.js";
import type { LedgerEnv } from "../../http/env.js";
import { problemContent } from "../../http/problem.js";
import type { LedgerService } from "../../service/ledger-service.js";
import { transferCredits } from "./command.js";

export const transferBodySchema = z
  .strictObject({
    from_owner_id: ownerIdSchema.clone().openapi({ example: "alice" }),
    to_owner_id: ownerIdSchema.clone().openapi({ example: "bob" }),
    amount: z
      .number()
      .int()
      .min(1)
      .max(AMOUNT_MAX)
      .openapi({ description: `Credits to move, 1..${AMOUNT_MAX}`, example: 5 }),
    nonce: nonceSchema.clone().openapi({
      description:
        "Unique per app across every write. Sending it again with the same request returns the original answer.",
      example: "gift-42",
    }),
  })
  .refine((b) => b.from_owner_id !== b.to_owner_id, {
    path: ["to_owner_id"],
    message: "to_owner_id must differ from from_owner_id",
  })
  .openapi("Transfer");

const sideSchema = z.object({ owner_id: z.string(), ...ownerFigures, entry: entrySchema });

export const transferResultSchema = z
  .object({
    from: sideSchema.openapi({ description: "The sender after its TRANSFER_OUT entry" }),
    to: sideSchema.openapi({ description: "The receiver after its TRANSFER_IN entry" }),
    replayed: z
      .boolean()
      .openapi({ description: "True when this nonce was applied before: the original answer" }),
  })
  .openapi("TransferResult");

/** The transfers feature's route for one app. */
export function transferRoutes(service: LedgerService) {
  const transferRoute = createRoute({
    method: "post",
    path: "/ledger/transfers",
    operationId: "transferCredits",
    tags: ["Transfers"],
    summary: "Move credits from one owner to another",
    description:
      "Both sides in one transaction: a TRANSFER_OUT entry for the sender (from its available credits, in burn " +
      "order) and a TRANSFER_IN entry for the receiver, both under this app, each naming the other owner. " +
      "Credits keep their expiry: the receiver gets one grant per expiry instant the sender's credits had; " +
      "credits without expiry stay without. Exactly once per nonce.",
    request: { body: { required: true, content: { "application/json": { schema: transferBodySchema } } } },
    responses: {
      201: { description: "Transferred", content: { "application/json": { schema: transferResultSchema } } },
      200: {
        description: "Replay: this nonce was applied before; the original answer",
        content: { "application/json": { schema: transferResultSchema } },
      },
      400: problemContent("The body is malformed, or names the same owner twice (VALIDATION_FAILED)"),
      409: problemContent("NONCE_CONFLICT: the nonce was used for a different request"),
      413: problemContent("The body is over the size limit"),
      415: problemContent("The body is not application/json"),
      422: problemContent(
        "OWNER_SUSPENDED (either side), INSUFFICIENT_BALANCE (the sender's available credits) or " +
          "BALANCE_LIMIT_EXCEEDED (the receiver)",
      ),
      503: problemContent("The database is not answering; retry with the same nonce"),
    },
  });

  return new OpenAPIHono<LedgerEnv>({ strict: false, defaultHook: validationHook }).openapi(
    transferRoute,
    async (c) => {
      const result = await transferCredits(service, c.req.valid("json"));
      c.header("idempotent-replayed", String(result.replayed));
      c.get("log").info(
        {
          from_owner_id: result.from.owner_id,
          to_owner_id: result.to.owner_id,
          amount: result.to.entry.amount,
          replayed: result.replayed,
          entry_id: result.from.entry.id,
        },
        "ledger.transfer",
      );
      return result.replayed ? c.json(result, 200) : c.json(result, 201);
    },
  );
}
