import { appEnvSchema, parseEnv } from "@ledger/core/http";

/** app1's configuration, parsed once at boot. */
export const envSchema = appEnvSchema(8000);
export type Env = ReturnType<typeof envSchema.parse>;

export function loadEnv(source: Record<string, string | undefined> = process.env): Env {
  return parseEnv(envSchema, source);
}
