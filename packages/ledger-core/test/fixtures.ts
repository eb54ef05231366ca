import { defineCatalog, fixed, sharedOperations, variable } from "../src/index.js";

/** A catalog like an app's: the shared operations plus one of each kind the core supports. */
export const testCatalog = defineCatalog({
  ...sharedOperations,
  TEST_ZERO: fixed(0),
  TEST_DEBIT: variable({ direction: "debit", min: 2, max: 50 }),
  TEST_CREDIT: variable({ direction: "credit", min: 1, max: 1_000_000_000 }),
  TEST_WELCOME: fixed(7, { limit: "once" }),
});
