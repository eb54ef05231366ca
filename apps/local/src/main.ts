// Both apps in one process over one database, and the support console beside them. This is how
// `pnpm start` runs: embedded PGlite has a single writer, so the two apps share it here instead of each
// opening it. With DATABASE_URL set it runs the same way on Postgres (or run each on its own:
// `pnpm --filter ./apps/app1 start`, `pnpm --filter ./apps/console start`).
import cluster from "node:cluster";
import * as app1 from "@ledger/app1/app";
import * as app2 from "@ledger/app2/app";
import { consoleFromEnv, randomSecret } from "@ledger/console/boot";
import { appUrlSchema, consoleEnvShape, secretRule } from "@ledger/console/env";
import { appEnvSchema, boot, createLogger, parseEnv } from "@ledger/core/http";
import { z } from "zod";

const port = z.coerce.number().int().min(1).max(65_535);
const env = parseEnv(
  appEnvSchema(app1.DEFAULT_PORT)
    .omit({ PORT: true })
    .extend({
      APP1_PORT: port.default(app1.DEFAULT_PORT),
      APP2_PORT: port.default(app2.DEFAULT_PORT),
      ...consoleEnvShape,
      // The console talks to the apps of this process unless told otherwise.
      CONSOLE_APP1_URL: appUrlSchema.optional(),
      CONSOLE_APP2_URL: appUrlSchema.optional(),
    })
    // The console's own rule: with NODE_ENV=production it refuses to start without CONSOLE_SECRET.
    .refine(secretRule.holds, secretRule.issue),
  process.env,
);
const consoleLogger = createLogger({ level: env.LOG_LEVEL, name: "console" });
// One secret for every worker (LEDGER_WORKERS > 1 forks this file with the primary's environment, after
// this line), so a session sealed by one worker opens in another.
if (env.CONSOLE_SECRET === undefined && cluster.isPrimary) {
  env.CONSOLE_SECRET = randomSecret();
  process.env.CONSOLE_SECRET = env.CONSOLE_SECRET;
  consoleLogger.warn(
    "CONSOLE_SECRET is not set: using a random secret for this run (console sessions end when it restarts)",
  );
}
await boot(env, "ledger", [
  { name: app1.APP_NAME, port: env.APP1_PORT, create: app1.createApp },
  { name: app2.APP_NAME, port: env.APP2_PORT, create: app2.createApp },
  {
    name: "console",
    port: env.CONSOLE_PORT,
    create: () =>
      consoleFromEnv(
        {
          CONSOLE_APP1_URL: env.CONSOLE_APP1_URL ?? `http://127.0.0.1:${env.APP1_PORT}`,
          CONSOLE_APP2_URL: env.CONSOLE_APP2_URL ?? `http://127.0.0.1:${env.APP2_PORT}`,
          CONSOLE_SECRET: env.CONSOLE_SECRET,
        },
        consoleLogger,
      ),
  },
]);
