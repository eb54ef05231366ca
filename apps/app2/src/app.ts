import { ledgerAppFactory } from "@ledger/core/http";
import { app2Catalog } from "./operations.js";

export type { AppDeps } from "@ledger/core/http";

export const APP_NAME = "app2";
export const DEFAULT_PORT = 8001;

/** app2's HTTP app: the shared ledger routes over app2's catalog. */
export const createApp = ledgerAppFactory({
  name: APP_NAME,
  catalog: app2Catalog,
  title: "app2 credits ledger",
  version: "0.1.0",
});

export type App = ReturnType<typeof createApp>;
