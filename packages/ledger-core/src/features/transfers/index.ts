import type { Feature } from "../feature.js";
import { transferRoutes } from "./routes.js";

/** Moving credits between owners, with their expiry: POST /ledger/transfers. */
export const transfers: Feature = {
  name: "transfers",
  routes: transferRoutes,
  writePaths: ["/ledger/transfers"],
};
