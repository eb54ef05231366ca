// app2 on its own: PORT (default 8001), DATABASE_URL (unset: embedded PGlite in LEDGER_DATA_DIR).
import { DEFAULT_DATA_DIR, openDatabase } from "@ledger/core/db";
import { createLogger, serveAll } from "@ledger/core/http";
import { APP_NAME, createApp } from "./app.js";
import { loadEnv } from "./env.js";

const env = loadEnv();
const logger = createLogger({ level: env.LOG_LEVEL, name: APP_NAME });
const database = await openDatabase({
  url: env.DATABASE_URL,
  dataDir: env.LEDGER_DATA_DIR ?? DEFAULT_DATA_DIR,
  poolSizeMax: env.DB_POOL_SIZE,
});
logger.info({ driver: database.driver }, "database ready, migrations applied");
const app = createApp({ db: database.db, ping: () => database.ping(), logger });
await serveAll([{ name: APP_NAME, port: env.PORT, hostname: env.HOST, fetch: app.fetch }], logger, () =>
  database.close(),
);
