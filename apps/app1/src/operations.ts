import { defineCatalog, fixed, sharedOperations } from "@ledger/core";

/** app1, the content product of seed 004: the shared operations plus its own two. */
export const app1Catalog = defineCatalog({
  ...sharedOperations,
  CONTENT_CREATION: fixed(-5, { description: "Publish a piece of content: costs 5 credits" }),
  CONTENT_ACCESS: fixed(0, { description: "Open a piece of content: recorded, free" }),
});
