import type { Feature } from "../feature.js";
import { keyRoutes } from "./routes.js";

/** The caller's API key: GET /api-keys/current. Keys are made and revoked with `ledger keys` (the CLI). */
export const keys: Feature = {
  name: "keys",
  routes: keyRoutes,
};
