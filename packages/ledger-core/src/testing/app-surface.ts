// What the shared HTTP suites need of an app. Its own module, so the suites (surface, shared
// operations, grants) depend on it and not on each other.
import type { LedgerDb } from "../store/client.js";
import type { OperationCatalogView } from "../domain/operations.js";
import type { AppDeps } from "../http/app.js";
import type { RequestApp } from "./requests.js";

export interface AppSurface {
  /** The app under test and its database, read when the tests run (they are opened in beforeAll). */
  app: () => RequestApp;
  db: () => LedgerDb;
  ping: () => Promise<void>;
  /** The app's factory, to build variants: a database that does not answer, a clock that throws. */
  createApp: (deps: AppDeps) => RequestApp;
  name: string;
  title: string;
  /** The app's whole catalog, and another app's own operations, which it must not offer. */
  catalog: OperationCatalogView;
  foreignApp: string;
  foreignOperations: readonly string[];
  /** A valid write for an owner, used to show a failing write writes nothing. */
  validPost: (owner: string) => object;
}
