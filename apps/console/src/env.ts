import { parseEnv } from "@ledger/core/http";
import { z } from "zod";

export const DEFAULT_PORT = 8002;
/** Shortest CONSOLE_SECRET accepted: 32 characters, so a sealed session cannot be guessed at. */
export const SECRET_LENGTH_MIN = 32;

/** A ledger app's root URL. */
export const appUrlSchema = z
  .string()
  .trim()
  .refine((v) => /^https?:\/\/[^\s/]+/.test(v), "must be an http:// or https:// URL");
const url = (fallback: string) => appUrlSchema.default(fallback);

/** The console's configuration, parsed once at boot (apps/local extends it for `pnpm start`). */
export const consoleEnvShape = {
  CONSOLE_PORT: z.coerce.number().int().min(1).max(65_535).default(DEFAULT_PORT),
  /** Where app1 and app2 answer; a key is checked at sign-in by the app the user picks, and only there. */
  CONSOLE_APP1_URL: url("http://localhost:8000"),
  CONSOLE_APP2_URL: url("http://localhost:8001"),
  /**
   * Seals the session cookie and signs the CSRF tokens. Unset: a random one per process (sessions end
   * when it restarts), refused with NODE_ENV=production.
   */
  CONSOLE_SECRET: z
    .string()
    .optional()
    .transform((v) => (v ? v : undefined))
    .refine(
      (v) => v === undefined || v.length >= SECRET_LENGTH_MIN,
      `CONSOLE_SECRET must be at least ${SECRET_LENGTH_MIN} characters`,
    ),
};

/**
 * With NODE_ENV=production, CONSOLE_SECRET must be set: a random one per process would sign everyone out
 * at each restart. One rule for the console alone and for `pnpm start` (apps/local), which refine their
 * own schemas with it.
 */
export const secretRule = {
  holds: (env: { NODE_ENV?: string | undefined; CONSOLE_SECRET?: string | undefined }): boolean =>
    env.NODE_ENV !== "production" || env.CONSOLE_SECRET !== undefined,
  issue: {
    path: ["CONSOLE_SECRET"],
    message: "CONSOLE_SECRET is required with NODE_ENV=production (sessions must outlive a restart)",
  },
};

export const envSchema = z
  .object({
    ...consoleEnvShape,
    HOST: z.string().min(1).default("0.0.0.0"),
    LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    NODE_ENV: z.string().optional(),
  })
  .refine(secretRule.holds, secretRule.issue);

export type Env = z.infer<typeof envSchema>;

export function loadEnv(source: Record<string, string | undefined> = process.env): Env {
  return parseEnv(envSchema, source);
}
