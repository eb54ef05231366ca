// Both apps in one process over one database. This is how `pnpm start` runs: embedded PGlite has a
// single writer, so the two apps share it here instead of each opening it. With DATABASE_URL set it
// runs the same way on Postgres (run each app on its own with `pnpm --filter ./apps/appN start`).
import * as app1 from "@ledger/app1/app";
import * as app2 from "@ledger/app2/app";
import { DEFAULT_DATA_DIR, openDatabase } from "@ledger/core/db";
import { appEnvSchema, createLogger, parseEnv, serveAll } from "@ledger/core/http";
import { z } from "zod";

const env = parseEnv(
  appEnvSchema(app1.DEFAULT_PORT)
    .omit({ PORT: true })
    .extend({
      APP1_PORT: z.coerce.number().int().min(1).max(65_535).default(app1.DEFAULT_PORT),
      APP2_PORT: z.coerce.number().int().min(1).max(65_535).default(app2.DEFAULT_PORT),
    }),
  process.env,
);
const logger = createLogger({ level: env.LOG_LEVEL, name: "ledger" });
const database = await openDatabase({
  url: env.DATABASE_URL,
  dataDir: env.LEDGER_DATA_DIR ?? DEFAULT_DATA_DIR,
  poolSizeMax: env.DB_POOL_SIZE,
});
logger.info({ driver: database.driver }, "database ready, migrations applied");
const deps = { db: database.db, ping: () => database.ping(), logger };
await serveAll(
  [
    { name: app1.APP_NAME, port: env.APP1_PORT, hostname: env.HOST, fetch: app1.createApp(deps).fetch },
    { name: app2.APP_NAME, port: env.APP2_PORT, hostname: env.HOST, fetch: app2.createApp(deps).fetch },
  ],
  logger,
  () => database.close(),
);
