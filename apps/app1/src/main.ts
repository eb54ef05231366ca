// app1 on its own: PORT (default 8000), DATABASE_URL (unset: embedded PGlite in LEDGER_DATA_DIR).
import { boot } from "@ledger/core/http";
import { APP_NAME, createApp } from "./app.js";
import { loadEnv } from "./env.js";

const env = loadEnv();
await boot(env, APP_NAME, [{ name: APP_NAME, port: env.PORT, create: createApp }]);
