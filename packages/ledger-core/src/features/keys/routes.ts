// GET /api-keys/current: who the caller is, so a client (the support console, a script checking its
// configuration) learns a key's app, scopes and rate without a write, and whether the app asks for keys.
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { SCOPES } from "../../domain/api-keys.js";
import { validationHook } from "../../http/contract.js";
import type { LedgerEnv } from "../../http/env.js";
import { problemContent } from "../../http/problem.js";

export const currentKeySchema = z
  .object({
    auth: z.enum(["required", "off"]).openapi({
      description: "LEDGER_AUTH of this app: `off` takes every request without a key (and `key` is null)",
    }),
    key: z
      .object({
        id: z.string(),
        app: z.string(),
        scopes: z.array(z.enum(SCOPES)),
        name: z.string().nullable(),
        rate: z.number().int().positive().openapi({
          description: "Requests per second: the key's own rate, or the app's LEDGER_RATE_LIMIT_PER_S",
        }),
      })
      .nullable(),
  })
  .openapi("CurrentKey", {
    example: {
      auth: "required",
      key: { id: "3f9c1a0b7d2e4c58", app: "app1", scopes: ["read", "admin"], name: "support", rate: 100 },
    },
  });

export function keyRoutes() {
  const currentRoute = createRoute({
    method: "get",
    path: "/api-keys/current",
    operationId: "getCurrentKey",
    tags: ["Keys"],
    summary: "The API key this request carries: its id, app, scopes and rate (never its secret)",
    responses: {
      200: {
        description: "The caller's key; with LEDGER_AUTH=off, `auth: off` and no key",
        content: { "application/json": { schema: currentKeySchema } },
      },
      503: problemContent("The database is not answering"),
    },
  });
  return new OpenAPIHono<LedgerEnv>({ strict: false, defaultHook: validationHook }).openapi(
    currentRoute,
    (c) => {
      // With LEDGER_AUTH=required every request here has passed the auth middleware, which set the key.
      const key = c.get("apiKey");
      return c.json(key ? { auth: "required" as const, key } : { auth: "off" as const, key: null }, 200);
    },
  );
}
