export * from "./audit.js";
export * from "./client.js";
export { isUnavailable, pgErrorFacts, translateDriverError } from "./errors.js";
export * from "./schema.js";
