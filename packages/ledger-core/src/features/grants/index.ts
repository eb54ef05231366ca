import type { Feature } from "../feature.js";

/**
 * Credits that expire. Granting and burn order are rules of every entry (engine/state.ts); what the
 * feature adds is the sweeper, which writes the EXPIRY entries no write for the owner has written yet.
 */
export const grants: Feature = {
  name: "grants",
  start: (service, runtime) =>
    runtime.expirySweepS === undefined
      ? undefined
      : service.startExpirySweeper(runtime.expirySweepS, runtime.logger),
};
