// Support for the HTTP suites, as the apps import it (@ledger/core/testing/http). Each concern has its
// own module; this one only gathers them, so an app's suite needs one import:
//   requests.ts   app.request() helpers and the response contracts, strict
//   problems.ts   the one error shape, and what no error may leak
//   snapshots.ts  what a refused request must leave unchanged: the owner's state, every table
//   hostile.ts    the requests the ledger must refuse, and how
//   deps.ts       a silent logger and a hand-moved clock for an app's factory
//   tables.ts     naming the rows of describe.each
export * from "./deps.js";
export * from "./hostile.js";
export * from "./problems.js";
export * from "./requests.js";
export * from "./snapshots.js";
export * from "./tables.js";
