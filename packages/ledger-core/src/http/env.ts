import type { Logger } from "pino";
import type { Caller } from "./auth.js";

/** What every request carries through the middleware chain. */
export interface LedgerEnv {
  Variables: {
    requestId: string;
    log: Logger;
    /** The API key's id and scopes (unset with LEDGER_AUTH=off and on the open routes). */
    caller?: Caller;
  };
}
