// POST /ledger/batch: many POST /ledger bodies in one request. The route of the batch feature.
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { BATCH_BODY_SIZE_MAX_BYTES, BATCH_OPERATIONS_MAX } from "../../domain/limits.js";
import { postResultSchema, validationHook } from "../../http/contract.js";
import type { LedgerEnv } from "../../http/env.js";
import { problemContent, problemSchema } from "../../http/problem.js";
import type { LedgerService } from "../../service/ledger-service.js";
import { runBatch } from "./batch.js";

export const batchResultSchema = z
  .object({
    results: z
      .array(
        z.object({
          status: z.number().int().openapi({
            description:
              "What POST /ledger would have answered this item alone: 201, 200 (a replay) or a 4xx",
          }),
          body: z.union([postResultSchema, problemSchema]).openapi({
            description: "POST /ledger's body for it: the post's result, or its problem (without request_id)",
          }),
        }),
      )
      .openapi({ description: "One per item, in the request's order" }),
  })
  .openapi("BatchResult");

export const batchRefusalSchema = problemSchema
  .extend({
    index: z.number().int().nonnegative().openapi({ description: "The item refused (0-based)" }),
  })
  .openapi("BatchRefusal");

const batchBodySchema = z
  .strictObject({
    operations: z
      .array(z.unknown())
      .min(1)
      .max(BATCH_OPERATIONS_MAX)
      .openapi({
        description:
          `1 to ${BATCH_OPERATIONS_MAX} items, each the body of POST /ledger (PostOperation) with its own ` +
          "nonce. Each item is checked by itself: one that fails is answered in its result (or, atomic, " +
          "refuses the batch), never the request's schema.",
        items: { $ref: "#/components/schemas/PostOperation" },
      }),
    atomic: z.boolean().optional().openapi({
      description: "true: every item is written or none is. Default false: each item stands alone.",
    }),
  })
  .openapi("Batch");

const refusal = (description: string) => ({
  description,
  content: { "application/problem+json": { schema: batchRefusalSchema } },
});

/** The batch feature's route for one app. */
export function batchRoutes(service: LedgerService) {
  const route = createRoute({
    method: "post",
    path: "/ledger/batch",
    operationId: "postBatch",
    tags: ["Batch"],
    summary: "Apply many operations in one request",
    description:
      "Every item goes into one transaction (group commit), in order. Not atomic (the default): 200 with " +
      "one result per item, each exactly what POST /ledger would have answered it alone (201, 200 for a " +
      "replay, or the problem with its status), whatever happened to the others. Atomic: 201 with every " +
      "result when each item was accepted or replayed; otherwise nothing is written and the answer is the " +
      "first refusal's problem, with its status and the item's `index` (items are all checked first, so " +
      "one that fails a check needing no database refuses the batch before any is decided). The body " +
      `may be up to ${BATCH_BODY_SIZE_MAX_BYTES} bytes.`,
    request: { body: { required: true, content: { "application/json": { schema: batchBodySchema } } } },
    responses: {
      200: {
        description: "Not atomic: each item's answer",
        content: { "application/json": { schema: batchResultSchema } },
      },
      201: {
        description: "Atomic: every item was accepted (201) or replayed (200)",
        content: { "application/json": { schema: batchResultSchema } },
      },
      400: {
        description:
          "The body is malformed (MALFORMED_JSON, VALIDATION_FAILED: not 1..1000 items, an unknown key), or " +
          "atomic: an item failed POST /ledger's checks (its code, with `index`)",
        content: { "application/problem+json": { schema: batchRefusalSchema } },
      },
      409: refusal("Atomic: NONCE_CONFLICT, an item's nonce was used for a different request (with `index`)"),
      413: problemContent(`The body is over ${BATCH_BODY_SIZE_MAX_BYTES} bytes`),
      415: problemContent("The body is not application/json"),
      422: refusal(
        "Atomic: the first item the ledger refused (INSUFFICIENT_BALANCE, BALANCE_LIMIT_EXCEEDED, " +
          "LIMIT_REACHED, OWNER_SUSPENDED), with `index`",
      ),
      503: problemContent("The database is not answering; retry with the same nonces"),
    },
  });

  return new OpenAPIHono<LedgerEnv>({ strict: false, defaultHook: validationHook }).openapi(
    route,
    async (c) => {
      const { operations, atomic = false } = c.req.valid("json");
      const answer = await runBatch(service, operations, atomic);
      if (answer.kind === "refused") {
        const requestId = c.get("requestId");
        c.get("log").info({ items: operations.length, atomic, refused: answer.index }, "ledger.batch");
        const body = {
          ...answer.problem,
          ...(requestId ? { request_id: requestId } : {}),
          index: answer.index,
        };
        // problem+json, as every problem is (c.json keeps a content type it is given).
        const headers = {
          "content-type": "application/problem+json",
          ...(requestId ? { "x-request-id": requestId } : {}),
        };
        return c.json(body, body.status as 400 | 409 | 422, headers);
      }
      const counts: Record<string, number> = {};
      for (const r of answer.results) counts[r.status] = (counts[r.status] ?? 0) + 1;
      c.get("log").info({ items: operations.length, atomic, statuses: counts }, "ledger.batch");
      return c.json({ results: answer.results }, atomic ? 201 : 200);
    },
  );
}
