import type { Feature } from "../feature.js";
import { reversalRoutes } from "./routes.js";

/** Reversing an app's entries, in full or in part: POST /ledger/entries/{entry_id}/reversal. */
export const reversals: Feature = {
  name: "reversals",
  routes: reversalRoutes,
  writePaths: ["/ledger/entries/:entry_id/reversal"],
};
