import { BATCH_BODY_SIZE_MAX_BYTES } from "../../domain/limits.js";
import type { Feature } from "../feature.js";
import { batchRoutes } from "./routes.js";

/** Many posts in one request: POST /ledger/batch, its body up to BATCH_BODY_SIZE_MAX_BYTES. */
export const batch: Feature = {
  name: "batch",
  routes: batchRoutes,
  writePaths: ["/ledger/batch"],
  bodySizeMaxBytes: BATCH_BODY_SIZE_MAX_BYTES,
};
