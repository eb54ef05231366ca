import { defineCatalog, fixed, sharedOperations, variable } from "@ledger/core";

/**
 * app2, an AI assistant product billed in credits: usage is metered per request (a variable debit),
 * refunds of failed generations give credits back, and a referral pays once per owner.
 */
export const app2Catalog = defineCatalog({
  ...sharedOperations,
  TOKEN_USAGE: variable({
    direction: "debit",
    min: 1,
    max: 100_000,
    description: "Credits for one metered assistant request",
  }),
  USAGE_REFUND: variable({
    direction: "credit",
    min: 1,
    max: 100_000,
    description: "Credits given back for a failed request",
  }),
  REFERRAL_BONUS: fixed(5, { limit: "once", description: "Referral bonus: +5, once per owner" }),
  PROMO_CREDIT: fixed(20, {
    expiresAfterS: 30 * 86_400,
    description: "Promotional credits: +20, expiring 30 days after they are granted",
  }),
});
