// What a feature is to the rest of the core: its routes and its background work. A feature's commands
// go through the engine (LedgerService.submit); its tables are in its migrations; it is registered by
// one line in features/index.ts.
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Logger } from "pino";
import type { LedgerEnv } from "../http/env.js";
import type { LedgerService } from "../service/ledger-service.js";

/** What the runtime hands a feature's background work. */
export interface FeatureRuntime {
  logger: Logger;
  /** LEDGER_EXPIRY_SWEEP_S; unset: no expiry sweeper (tests sweep by hand). */
  expirySweepS?: number | undefined;
}

export interface Feature {
  readonly name: string;
  /** Its routes for one app's service, mounted at the app's root. */
  routes?: (service: LedgerService) => OpenAPIHono<LedgerEnv>;
  /** Paths of its write routes: each gets the strict JSON body guard before its own validation. */
  writePaths?: readonly string[];
  /** The body limit of its write paths, when not the app's (BODY_SIZE_MAX_BYTES): a batch's is larger. */
  bodySizeMaxBytes?: number;
  /** Starts its background work, if any, for one app; returns how to stop it. */
  start?: (service: LedgerService, runtime: FeatureRuntime) => (() => Promise<void>) | undefined;
}
