import { createConsole, type ConsoleLogger } from "./app.js";
import type { Env } from "./env.js";
import { randomSecret } from "./session.js";

export { randomSecret };

/** The console as its environment describes it; shared by main.ts and apps/local. */
export function consoleFromEnv(
  env: Pick<Env, "CONSOLE_APP1_URL" | "CONSOLE_APP2_URL" | "CONSOLE_SECRET">,
  logger: ConsoleLogger,
) {
  let secret = env.CONSOLE_SECRET;
  if (secret === undefined) {
    secret = randomSecret();
    logger.warn(
      {},
      "CONSOLE_SECRET is not set: using a random secret for this process (sessions end when it restarts); set it in production",
    );
  }
  logger.info(
    { app1: env.CONSOLE_APP1_URL, app2: env.CONSOLE_APP2_URL },
    "support console: signs keys in against app1 and app2",
  );
  return createConsole({
    urls: { app1: env.CONSOLE_APP1_URL, app2: env.CONSOLE_APP2_URL },
    secret,
    logger,
  });
}
