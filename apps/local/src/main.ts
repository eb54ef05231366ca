// Both apps in one process over one database. This is how `pnpm start` runs: embedded PGlite has a
// single writer, so the two apps share it here instead of each opening it. With DATABASE_URL set it
// runs the same way on Postgres (or run each app on its own: `pnpm --filter ./apps/app1 start`).
import * as app1 from "@ledger/app1/app";
import * as app2 from "@ledger/app2/app";
import { appEnvSchema, boot, parseEnv } from "@ledger/core/http";
import { z } from "zod";

const port = z.coerce.number().int().min(1).max(65_535);
const env = parseEnv(
  appEnvSchema(app1.DEFAULT_PORT)
    .omit({ PORT: true })
    .extend({ APP1_PORT: port.default(app1.DEFAULT_PORT), APP2_PORT: port.default(app2.DEFAULT_PORT) }),
  process.env,
);
await boot(env, "ledger", [
  { name: app1.APP_NAME, port: env.APP1_PORT, create: app1.createApp },
  { name: app2.APP_NAME, port: env.APP2_PORT, create: app2.createApp },
]);
