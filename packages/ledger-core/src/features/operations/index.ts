import type { Feature } from "../feature.js";
import { operationRoutes } from "./routes.js";

/** Posting an app's operations: POST /ledger. */
export const operations: Feature = {
  name: "operations",
  routes: operationRoutes,
  writePaths: ["/ledger"],
};
