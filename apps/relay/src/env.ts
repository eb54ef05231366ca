import { parseEnv, relayEnvSchema, type RelayEnv } from "@ledger/core/http";

/** The relay's configuration, parsed once at start: DATABASE_URL and LEDGER_EVENTS_URL are required. */
export const envSchema = relayEnvSchema();
export type Env = RelayEnv;

export function loadEnv(source: Record<string, string | undefined> = process.env): Env {
  return parseEnv(envSchema, source);
}
