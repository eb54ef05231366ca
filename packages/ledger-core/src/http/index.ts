export {
  createLedgerApp,
  ledgerAppFactory,
  type AppDeps,
  type AppSpec,
  type LedgerAppOptions,
} from "./app.js";
export { docsRoutes } from "./docs.js";
export { LedgerMetrics, type LedgerMetricsOptions } from "./metrics.js";
export type { LedgerEnv } from "./env.js";
export { problemBody, problemSchema, STATUS_BY_CODE, type HttpErrorCode, type Problem } from "./problem.js";
export { createLedgerRouter, type LedgerRouter } from "./router.js";
export {
  appEnvSchema,
  boot,
  bootRelay,
  createLogger,
  parseEnv,
  relayEnvSchema,
  serveAll,
  type AppEnv,
  type BootDeps,
  type BootedApp,
  type Listener,
  type RelayEnv,
} from "../runtime/serve.js";
