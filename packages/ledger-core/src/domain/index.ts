export * from "./errors.js";
export * from "./input.js";
export * from "./limits.js";
export * from "./operations.js";
export * from "./rules.js";
export * from "./types.js";
export * from "./instant.js";
export * from "./grants.js";
