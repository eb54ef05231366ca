// @ledger/core: the shared credits ledger. Domain (catalogs, rules, errors) and the service.
// The database lives under "@ledger/core/db", the HTTP router factory under "@ledger/core/http".
export * from "./domain/index.js";
export { LedgerService, decodeCursor, encodeCursor } from "./service/ledger-service.js";
export type { LedgerServiceOptions, ListEntriesInput } from "./service/ledger-service.js";
