import type { Feature } from "../feature.js";
import { accountRoutes } from "./routes.js";

/** An owner's reads: GET /ledger/{owner_id} (now or ?at=) and its entries. */
export const accounts: Feature = {
  name: "accounts",
  routes: accountRoutes,
};
