// The relay on its own: `pnpm --filter ./apps/relay start` with DATABASE_URL (Postgres) and
// LEDGER_EVENTS_URL (nats:// or amqp://). Run the apps with LEDGER_RELAY=off then, or leave them on: every
// relay contends for the same lock and one is active per database. Stops cleanly on SIGINT/SIGTERM.
import { bootRelay } from "@ledger/core/http";
import { loadEnv } from "./env.js";

await bootRelay(loadEnv());
