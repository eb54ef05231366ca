// The holds feature's routes: place, capture and release a hold, read one, list an owner's.
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { HOLD_EXPIRES_IN_S_DEFAULT, HOLD_EXPIRES_IN_S_MAX } from "../../domain/holds.js";
import { amountSchema, nonceSchema, operationNameSchema, ownerIdSchema } from "../../domain/input.js";
import { PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX } from "../../domain/limits.js";
import { entrySchema, ownerFigures, ownerParams, validationHook } from "../../http/contract.js";
import type { LedgerEnv } from "../../http/env.js";
import { problemContent } from "../../http/problem.js";
import { decodeCursor, encodeCursor, type LedgerService } from "../../service/ledger-service.js";
import {
  findAppHold,
  HOLD_ID_PATTERN,
  holdableOperations,
  holdAt,
  submitCapture,
  submitHold,
  submitRelease,
} from "./command.js";
import { listOwnerHolds } from "./store.js";

const HOLD_STATUSES = ["active", "captured", "released", "expired"] as const;

export const holdSchema = z
  .object({
    id: z.string().openapi({ example: "0b8e7c1e-6a52-4d0f-9a51-3c1b1f7a2d4e" }),
    owner_id: z.string(),
    app: z.string().openapi({ description: "The app that made it: no other app sees it" }),
    operation: z.string().openapi({ description: "The debit operation it holds credits for" }),
    amount: z.number().int().positive().openapi({ description: "The credits it holds" }),
    status: z.enum(HOLD_STATUSES).openapi({
      description:
        "As of the answer: an active hold past its expires_at reads expired (and no longer holds), " +
        "whether or not the ledger has recorded its HOLD_EXPIRY yet",
    }),
    expires_at: z.iso.datetime().openapi({ format: "date-time" }),
    created_at: z.iso.datetime().openapi({ format: "date-time" }),
    captured_amount: z
      .number()
      .int()
      .positive()
      .optional()
      .openapi({ description: "Captured holds: the credits the capture took; the rest was released" }),
  })
  .openapi("Hold");

const replayed = z
  .boolean()
  .openapi({ description: "True when this nonce was applied before: the original answer" });

export const holdResultSchema = z
  .object({ hold: holdSchema, ...ownerFigures, replayed })
  .openapi("HoldResult");

export const captureResultSchema = z
  .object({ hold: holdSchema, entry: entrySchema, ...ownerFigures, replayed })
  .openapi("CaptureResult");

export const holdReadSchema = z.object({ hold: holdSchema }).openapi("HoldRead");

export const holdPageSchema = z
  .object({
    owner_id: z.string(),
    holds: z.array(holdSchema),
    next_cursor: z.string().nullable().openapi({ description: "Pass as `cursor` for the next, older page" }),
  })
  .openapi("HoldPage");

const holdIdParams = z.object({
  hold_id: z
    .string()
    .max(36)
    .regex(HOLD_ID_PATTERN, "hold_id is not a hold id this ledger issues (a lower-case UUID)")
    .openapi({ param: { name: "hold_id", in: "path" }, example: "0b8e7c1e-6a52-4d0f-9a51-3c1b1f7a2d4e" }),
});

const nonce = nonceSchema.clone().openapi({
  description:
    "Unique per app, across every write route. Sending it again with the same request returns the original answer.",
  example: "9f0c2f6e-hold-1",
});

const writeErrors = {
  413: problemContent("The body is over the size limit"),
  415: problemContent("The body is not application/json"),
  503: problemContent("The database is not answering; retry with the same nonce"),
};

/** The holds feature's routes for one app. */
export function holdRoutes(service: LedgerService) {
  const holdable = holdableOperations(service.catalog);

  const placeBody = z
    .strictObject({
      owner_id: ownerIdSchema.clone().openapi({ example: "test_user" }),
      operation: operationNameSchema.clone().openapi({
        enum: holdable,
        example: "CREDIT_SPEND",
        description:
          "One of this app's debit operations without a once or daily limit: " +
          (holdable.length > 0 ? holdable.join(", ") : "none in this app") +
          ". A credit, a zero-amount operation or one with a limit is refused with 400.",
      }),
      amount: amountSchema.optional().openapi({
        description:
          "Credits to hold: a fixed operation's own amount (optional; if sent, it must equal it), a variable " +
          "operation's amount within its bounds (required)",
        example: 1,
      }),
      nonce,
      expires_in_s: z
        .number()
        .int()
        .min(1)
        .max(HOLD_EXPIRES_IN_S_MAX)
        .optional()
        .openapi({
          description: `Seconds until the hold expires if not captured or released: 1..${HOLD_EXPIRES_IN_S_MAX}, default ${HOLD_EXPIRES_IN_S_DEFAULT}`,
          example: HOLD_EXPIRES_IN_S_DEFAULT,
        }),
    })
    .openapi("PlaceHold");

  const captureBody = z
    .strictObject({
      nonce,
      amount: amountSchema.optional().openapi({
        description:
          "Credits to capture: a variable operation's hold 1..held (default: all of it), a fixed operation's " +
          "its amount only. The rest is released.",
        example: 1,
      }),
    })
    .openapi("CaptureHold");

  const releaseBody = z.strictObject({ nonce }).openapi("ReleaseHold");

  const placeRoute = createRoute({
    method: "post",
    path: "/ledger/holds",
    operationId: "placeHold",
    tags: ["Holds"],
    summary: "Hold credits for one of the app's debit operations",
    description:
      "Reserves the operation's amount of the owner's available credits until the hold is captured, " +
      "released, or expires. The credits still count in the balance, not in `available`. They are taken " +
      "from the owner's grants in burn order, and do not expire while held. Exactly once per nonce.",
    request: { body: { required: true, content: { "application/json": { schema: placeBody } } } },
    responses: {
      201: { description: "Held", content: { "application/json": { schema: holdResultSchema } } },
      200: {
        description: "Replay: this nonce was applied before; the original answer",
        content: { "application/json": { schema: holdResultSchema } },
      },
      400: problemContent(
        "The request is malformed (VALIDATION_FAILED), names an unknown operation (UNKNOWN_OPERATION), one " +
          "that cannot be held (VALIDATION_FAILED on operation: a credit, a zero amount, a once or daily " +
          "limit), or a wrong amount (AMOUNT_MISMATCH, AMOUNT_REQUIRED, AMOUNT_OUT_OF_RANGE)",
      ),
      409: problemContent("NONCE_CONFLICT: the nonce was used for a different request"),
      422: problemContent(
        "OWNER_SUSPENDED, or INSUFFICIENT_BALANCE: more than the owner's available credits",
      ),
      ...writeErrors,
    },
  });

  const captureRoute = createRoute({
    method: "post",
    path: "/ledger/holds/{hold_id}/capture",
    operationId: "captureHold",
    tags: ["Holds"],
    summary: "Capture a hold: one entry of its operation, the rest released",
    description:
      "Writes one entry of the hold's operation for the captured amount, spending the credits the hold " +
      "took, and releases the rest; held credits past their expiry then expire at once. Exactly once per nonce.",
    request: {
      params: holdIdParams,
      body: { required: true, content: { "application/json": { schema: captureBody } } },
    },
    responses: {
      201: { description: "Captured", content: { "application/json": { schema: captureResultSchema } } },
      200: {
        description: "Replay: this nonce was applied before; the original answer",
        content: { "application/json": { schema: captureResultSchema } },
      },
      400: problemContent(
        "The request or the hold id is malformed (VALIDATION_FAILED), or the amount does not fit the hold " +
          "(AMOUNT_MISMATCH for a fixed operation's hold, AMOUNT_OUT_OF_RANGE for 0)",
      ),
      404: problemContent("HOLD_NOT_FOUND: no such hold for this app"),
      409: problemContent(
        "NONCE_CONFLICT, or HOLD_NOT_ACTIVE: the hold is captured, released or expired (`hold_status`)",
      ),
      422: problemContent("CAPTURE_EXCEEDS_HOLD: more than the hold holds; OWNER_SUSPENDED"),
      ...writeErrors,
    },
  });

  const releaseRoute = createRoute({
    method: "post",
    path: "/ledger/holds/{hold_id}/release",
    operationId: "releaseHold",
    tags: ["Holds"],
    summary: "Release a hold: its credits are available again",
    description:
      "Writes a HOLD_RELEASE entry (amount 0); held credits past their expiry then expire at once. Applies " +
      "to suspended owners too. Exactly once per nonce.",
    request: {
      params: holdIdParams,
      body: { required: true, content: { "application/json": { schema: releaseBody } } },
    },
    responses: {
      200: {
        description: "Released, or a replay of the release (`replayed: true`)",
        content: { "application/json": { schema: holdResultSchema } },
      },
      400: problemContent("The request or the hold id is malformed (VALIDATION_FAILED)"),
      404: problemContent("HOLD_NOT_FOUND: no such hold for this app"),
      409: problemContent(
        "NONCE_CONFLICT, or HOLD_NOT_ACTIVE: the hold is captured, released or expired (`hold_status`)",
      ),
      ...writeErrors,
    },
  });

  const readRoute = createRoute({
    method: "get",
    path: "/ledger/holds/{hold_id}",
    operationId: "getHold",
    tags: ["Holds"],
    summary: "A hold, as of now",
    request: { params: holdIdParams },
    responses: {
      200: { description: "The hold", content: { "application/json": { schema: holdReadSchema } } },
      400: problemContent("The hold id is malformed (VALIDATION_FAILED)"),
      404: problemContent("HOLD_NOT_FOUND: no such hold for this app"),
      503: problemContent("The database is not answering"),
    },
  });

  const listRoute = createRoute({
    method: "get",
    path: "/ledger/{owner_id}/holds",
    operationId: "listHolds",
    tags: ["Holds"],
    summary: "An owner's holds made by this app, newest first",
    request: {
      params: ownerParams,
      query: z.object({
        status: z.enum(HOLD_STATUSES).optional().openapi({
          description: "Only holds with this status now (an active hold past its expiry is expired)",
        }),
        cursor: z.string().max(64).optional().openapi({ description: "next_cursor of the previous page" }),
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
      200: { description: "A page of holds", content: { "application/json": { schema: holdPageSchema } } },
      400: problemContent(
        "The owner id, status, cursor or limit is invalid (VALIDATION_FAILED, INVALID_CURSOR)",
      ),
      503: problemContent("The database is not answering"),
    },
  });

  return (
    new OpenAPIHono<LedgerEnv>({ strict: false, defaultHook: validationHook })
      .openapi(placeRoute, async (c) => {
        const result = await submitHold(service, c.req.valid("json"));
        c.header("idempotent-replayed", String(result.replayed));
        c.get("log").info(
          { hold_id: result.hold.id, owner_id: result.hold.owner_id, replayed: result.replayed },
          "ledger.hold",
        );
        return result.replayed ? c.json(result, 200) : c.json(result, 201);
      })
      .openapi(captureRoute, async (c) => {
        const { hold_id } = c.req.valid("param");
        const result = await submitCapture(service, hold_id, c.req.valid("json"));
        c.header("idempotent-replayed", String(result.replayed));
        c.get("log").info(
          { hold_id, entry_id: result.entry.id, replayed: result.replayed },
          "ledger.hold.capture",
        );
        return result.replayed ? c.json(result, 200) : c.json(result, 201);
      })
      .openapi(releaseRoute, async (c) => {
        const { hold_id } = c.req.valid("param");
        const result = await submitRelease(service, hold_id, c.req.valid("json"));
        c.header("idempotent-replayed", String(result.replayed));
        c.get("log").info({ hold_id, replayed: result.replayed }, "ledger.hold.release");
        return c.json(result, 200);
      })
      // Before the list route: /ledger/holds/{hold_id} must never be read as an owner's path.
      .openapi(readRoute, async (c) => {
        const hold = await findAppHold(service, c.req.valid("param").hold_id);
        return c.json({ hold: holdAt(hold, service.now()) }, 200);
      })
      .openapi(listRoute, async (c) => {
        const { owner_id } = c.req.valid("param");
        const { status, cursor, limit = PAGE_SIZE_DEFAULT } = c.req.valid("query");
        const before = cursor === undefined ? undefined : decodeCursor(cursor);
        const now = service.now();
        // One extra row tells whether an older page exists without a second query.
        const rows = await service.query((db) =>
          listOwnerHolds(db, {
            ownerId: owner_id,
            app: service.app,
            beforeSequence: before,
            status,
            now,
            limit: limit + 1,
          }),
        );
        const page = rows.slice(0, limit);
        const last = page.at(-1);
        return c.json(
          {
            owner_id,
            holds: page.map((h) => holdAt(h, now)),
            next_cursor: rows.length > limit && last ? encodeCursor(last.sequence) : null,
          },
          200,
        );
      })
  );
}
