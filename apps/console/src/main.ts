// The console on its own: `pnpm --filter ./apps/console start` (port 8002). `pnpm start` serves it
// beside the two apps instead (apps/local).
import { createLogger, serveAll } from "@ledger/core/http";
import { consoleFromEnv } from "./boot.js";
import { loadEnv } from "./env.js";

const env = loadEnv();
const logger = createLogger({ level: env.LOG_LEVEL, name: "console" });
const console_ = consoleFromEnv(env, logger);
await serveAll(
  [{ name: "console", port: env.CONSOLE_PORT, hostname: env.HOST, fetch: console_.fetch }],
  logger,
  () => Promise.resolve(),
);
