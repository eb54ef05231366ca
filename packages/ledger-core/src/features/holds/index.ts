import type { Feature } from "../feature.js";
import { holdRoutes } from "./routes.js";

/**
 * Holds (two-phase spending): POST /ledger/holds, its capture and release, GET /ledger/holds/{hold_id}
 * and GET /ledger/{owner_id}/holds. Expired holds are recorded (HOLD_EXPIRY) by the next write for their
 * owner or by the grants feature's sweeper, which sweeps owners with due holds as well as due grants.
 */
export const holds: Feature = {
  name: "holds",
  routes: holdRoutes,
  writePaths: ["/ledger/holds", "/ledger/holds/:hold_id/capture", "/ledger/holds/:hold_id/release"],
};
