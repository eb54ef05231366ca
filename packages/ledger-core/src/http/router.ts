// The ledger's routes for one app: every feature's, mounted together. The schemas every route shares
// are in contract.ts (re-exported here for the apps and the tests).
import { OpenAPIHono } from "@hono/zod-openapi";
import { FEATURES } from "../features/index.js";
import type { LedgerService } from "../service/ledger-service.js";
import { validationHook } from "./contract.js";
import type { LedgerEnv } from "./env.js";

export {
  balanceAtSchema,
  balanceSchema,
  entryPageSchema,
  entrySchema,
  entrySummarySchema,
  ownerParams,
  postResultSchema,
  validationHook,
} from "./contract.js";

/** The /ledger routes for one app. Mount it at the root of the app (its routes declare /ledger paths). */
export function createLedgerRouter(service: LedgerService) {
  const router = new OpenAPIHono<LedgerEnv>({ strict: false, defaultHook: validationHook });
  for (const feature of FEATURES) {
    const routes = feature.routes?.(service);
    if (routes) router.route("/", routes);
  }
  return router;
}

/**
 * Every write path of every feature, with its feature's own body limit (undefined: the app's): each gets
 * the strict JSON body guard.
 */
export const WRITE_ROUTES: readonly { path: string; bodySizeMaxBytes: number | undefined }[] =
  FEATURES.flatMap((f) =>
    (f.writePaths ?? []).map((path) => ({ path, bodySizeMaxBytes: f.bodySizeMaxBytes })),
  );

export type LedgerRouter = ReturnType<typeof createLedgerRouter>;
