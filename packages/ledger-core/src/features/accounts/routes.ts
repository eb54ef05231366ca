// An owner's reads: the balance now or at an instant, and the entries with their filters. The routes of
// the accounts feature (suspension and reinstatement join them next).
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { operationNameSchema } from "../../domain/input.js";
import { INSTANT_LENGTH_MAX } from "../../domain/instant.js";
import { PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX } from "../../domain/limits.js";
import {
  balanceAtSchema,
  balanceSchema,
  entryPageSchema,
  entrySummarySchema,
  ownerParams,
  validationHook,
} from "../../http/contract.js";
import type { LedgerEnv } from "../../http/env.js";
import { problemContent } from "../../http/problem.js";
import type { LedgerService } from "../../service/ledger-service.js";

/** The accounts feature's routes for one app. */
export function accountRoutes(service: LedgerService) {
  const balanceRoute = createRoute({
    method: "get",
    path: "/ledger/{owner_id}",
    operationId: "getBalance",
    tags: ["Accounts"],
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
              "An instant (RFC 3339, not in the future): answer `{owner_id, balance, at}`, the balance " +
              "right after the owner's last entry at or before it, without remainders that had expired by then",
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

  /** An optional RFC 3339 instant of the query. */
  const instantQuery = (description: string) =>
    z.string().max(INSTANT_LENGTH_MAX).optional().openapi({ format: "date-time", description });

  const entriesRoute = createRoute({
    method: "get",
    path: "/ledger/{owner_id}/entries",
    operationId: "listEntries",
    tags: ["Accounts"],
    summary: "An owner's entries, newest first, with running balances",
    request: {
      params: ownerParams,
      query: z.object({
        cursor: z.string().max(64).optional().openapi({ description: "next_cursor of the previous page" }),
        from: instantQuery("Only entries created at or after this instant (RFC 3339)"),
        to: instantQuery("Only entries created at or before this instant (RFC 3339)"),
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

  const summaryRoute = createRoute({
    method: "get",
    path: "/ledger/{owner_id}/summary",
    operationId: "summarizeEntries",
    tags: ["Accounts"],
    summary: "Why a balance changed: the entries between two instants, summed by app and operation",
    description:
      "The running balances at `from` and at `to` (each the balance right after the owner's last entry at " +
      "or before the instant, as the entries record it), and the entries after `from` up to `to`, of every " +
      "app, summed by app and operation. The groups' amounts add up to `change` exactly. " +
      "`GET /ledger/{owner_id}?at=` may answer less at an instant where a remainder had expired and no " +
      "EXPIRY entry said so yet.",
    request: {
      params: ownerParams,
      query: z.object({
        from: instantQuery("RFC 3339; default 30 days before `to`; not after `to`"),
        to: instantQuery("RFC 3339, not in the future; default now"),
      }),
    },
    responses: {
      200: {
        description: "The two balances and what lies between them",
        content: { "application/json": { schema: entrySummarySchema } },
      },
      400: problemContent(
        "The owner id or an instant is invalid, `to` is in the future, or `from` is after `to`",
      ),
      503: problemContent("The database is not answering"),
    },
  });

  return new OpenAPIHono<LedgerEnv>({ strict: false, defaultHook: validationHook })
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
    })
    .openapi(summaryRoute, async (c) => {
      const { owner_id } = c.req.valid("param");
      return c.json(await service.summary({ owner_id, ...c.req.valid("query") }), 200);
    });
}
