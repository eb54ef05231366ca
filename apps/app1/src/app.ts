import { LedgerService } from "@ledger/core";
import type { LedgerDb } from "@ledger/core/db";
import { createLedgerApp } from "@ledger/core/http";
import type { Logger } from "pino";
import { app1Catalog } from "./operations.js";

export const APP_NAME = "app1";
export const DEFAULT_PORT = 8000;

export interface AppDeps {
  db: LedgerDb;
  ping: () => Promise<void>;
  logger: Logger;
  /** Injectable for tests of daily limits. */
  clock?: () => Date;
}

/** app1's HTTP app: the shared ledger routes over app1's catalog. */
export function createApp(deps: AppDeps) {
  const service = new LedgerService({ db: deps.db, app: APP_NAME, catalog: app1Catalog, clock: deps.clock });
  return createLedgerApp({ service, ping: deps.ping, logger: deps.logger, title: "app1 credits ledger", version: "0.1.0" });
}

export type App = ReturnType<typeof createApp>;
