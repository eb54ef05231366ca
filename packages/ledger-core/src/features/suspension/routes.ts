// POST /ledger/{owner_id}/suspension and POST /ledger/{owner_id}/reinstatement: the routes of the
// suspension feature.
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { nonceSchema, reasonSchema } from "../../domain/input.js";
import { REASON_LENGTH_MAX } from "../../domain/limits.js";
import { entrySchema, ownerFigures, ownerParams, validationHook } from "../../http/contract.js";
import type { LedgerEnv } from "../../http/env.js";
import { problemContent } from "../../http/problem.js";
import type { LedgerService } from "../../service/ledger-service.js";
import { changeStatus, type StatusChangeResult } from "./command.js";

export const statusChangeSchema = z
  .object({
    owner_id: z.string(),
    status: z.enum(["active", "suspended"]).openapi({ description: "The owner's status after the write" }),
    ...ownerFigures,
    replayed: z
      .boolean()
      .openapi({ description: "True when this nonce was applied before: the original answer" }),
    entry: entrySchema,
  })
  .openapi("StatusChange");

const nonce = () =>
  nonceSchema.clone().openapi({
    description:
      "Unique per app, across every write route. Sending it again with the same request returns the original answer.",
    example: "5b0f6c9e-suspend-1",
  });

const reasonText = `1 to ${REASON_LENGTH_MAX} characters, not only spaces; no control characters, bidirectional overrides or lone surrogates`;

const suspendBody = z
  .strictObject({
    reason: reasonSchema.clone().openapi({ description: `Why (${reasonText})`, example: "chargeback fraud" }),
    nonce: nonce(),
  })
  .openapi("Suspend");

const reinstateBody = z
  .strictObject({
    reason: reasonSchema
      .clone()
      .optional()
      .openapi({ description: `Why, if said (${reasonText})`, example: "cleared by support" }),
    nonce: nonce(),
  })
  .openapi("Reinstate");

const sharedResponses = {
  400: problemContent("The owner id or the body is malformed (VALIDATION_FAILED)"),
  413: problemContent("The body is over the size limit"),
  415: problemContent("The body is not application/json"),
  503: problemContent("The database is not answering; retry with the same nonce"),
};

const answered = (description: string) => ({
  description,
  content: { "application/json": { schema: statusChangeSchema } },
});

/** The suspension feature's routes for one app. */
export function suspensionRoutes(service: LedgerService) {
  const suspendRoute = createRoute({
    method: "post",
    path: "/ledger/{owner_id}/suspension",
    operationId: "suspendOwner",
    tags: ["Suspension"],
    summary: "Suspend an owner",
    description:
      "Writes a SUSPENSION entry (amount 0) with the reason. From then on operations, holds, captures and " +
      "transfers on either side are refused with 422 OWNER_SUSPENDED, for every app; releases, expiries and " +
      "reversals still apply, and reads answer `status: suspended`. An owner with no entries may be " +
      "suspended: the SUSPENSION is its first entry. A replay answers 200 too, with `replayed: true`.",
    request: {
      params: ownerParams,
      body: { required: true, content: { "application/json": { schema: suspendBody } } },
    },
    responses: {
      200: answered("Suspended, or (replayed: true) the original answer to this nonce"),
      ...sharedResponses,
      409: problemContent(
        "OWNER_ALREADY_SUSPENDED, or NONCE_CONFLICT: the nonce was used for a different request",
      ),
    },
  });

  const reinstateRoute = createRoute({
    method: "post",
    path: "/ledger/{owner_id}/reinstatement",
    operationId: "reinstateOwner",
    tags: ["Suspension"],
    summary: "Reinstate a suspended owner",
    description:
      "Writes a REINSTATEMENT entry (amount 0), with the reason if given; the owner is active again. A " +
      "replay answers 200 too, with `replayed: true`.",
    request: {
      params: ownerParams,
      body: { required: true, content: { "application/json": { schema: reinstateBody } } },
    },
    responses: {
      200: answered("Reinstated, or (replayed: true) the original answer to this nonce"),
      ...sharedResponses,
      409: problemContent(
        "OWNER_NOT_SUSPENDED (an owner with no entries is not suspended), or NONCE_CONFLICT: the nonce " +
          "was used for a different request",
      ),
    },
  });

  const respond = (
    c: { header: (k: string, v: string) => void; get: (k: "log") => LedgerEnv["Variables"]["log"] },
    result: StatusChangeResult,
  ) => {
    c.header("idempotent-replayed", String(result.replayed));
    c.get("log").info(
      {
        owner_id: result.owner_id,
        operation: result.entry.operation,
        replayed: result.replayed,
        entry_id: result.entry.id,
      },
      "ledger.status",
    );
    return {
      owner_id: result.owner_id,
      status: result.status,
      balance: result.balance,
      available: result.available,
      replayed: result.replayed,
      entry: result.entry,
    };
  };

  return new OpenAPIHono<LedgerEnv>({ strict: false, defaultHook: validationHook })
    .openapi(suspendRoute, async (c) => {
      const { owner_id } = c.req.valid("param");
      const body = c.req.valid("json");
      const result = await service.submit(changeStatus(service.app, "suspended", { owner_id, ...body }));
      return c.json(respond(c, result), 200);
    })
    .openapi(reinstateRoute, async (c) => {
      const { owner_id } = c.req.valid("param");
      const body = c.req.valid("json");
      const result = await service.submit(changeStatus(service.app, "active", { owner_id, ...body }));
      return c.json(respond(c, result), 200);
    });
}
