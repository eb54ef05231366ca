import { ledgerAppFactory } from "@ledger/core/http";
import { app1Catalog } from "./operations.js";

export type { AppDeps } from "@ledger/core/http";

export const APP_NAME = "app1";
export const DEFAULT_PORT = 8000;

/** app1's HTTP app: the shared ledger routes over app1's catalog. */
export const createApp = ledgerAppFactory({
  name: APP_NAME,
  catalog: app1Catalog,
  title: "app1 credits ledger",
  version: "0.1.0",
});

export type App = ReturnType<typeof createApp>;
