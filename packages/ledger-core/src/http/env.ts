import type { Logger } from "pino";

/** What every request carries through the middleware chain. */
export interface LedgerEnv {
  Variables: {
    requestId: string;
    log: Logger;
  };
}
