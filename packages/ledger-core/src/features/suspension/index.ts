import type { Feature } from "../feature.js";
import { suspensionRoutes } from "./routes.js";

/** Suspending and reinstating owners: POST /ledger/{owner_id}/suspension and /reinstatement. */
export const suspension: Feature = {
  name: "suspension",
  routes: suspensionRoutes,
  writePaths: ["/ledger/:owner_id/suspension", "/ledger/:owner_id/reinstatement"],
};
