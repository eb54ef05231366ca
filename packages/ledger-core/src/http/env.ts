import type { Logger } from "pino";
import type { Scope } from "../domain/api-keys.js";

/** The key a request was authenticated with (LEDGER_AUTH=required), as the auth middleware found it. */
export interface CallerKey {
  id: string;
  app: string;
  scopes: Scope[];
  name: string | null;
  /** Requests per second it may send: its own rate, or the server's LEDGER_RATE_LIMIT_PER_S. */
  rate: number;
}

/** What every request carries through the middleware chain. */
export interface LedgerEnv {
  Variables: {
    requestId: string;
    log: Logger;
    /** Set by the auth middleware; unset with LEDGER_AUTH=off. */
    apiKey?: CallerKey;
  };
}
