export * from "./client.js";
export * from "./model.js";
export * from "./paths.js";
export * from "./postgres.js";
export * from "./processes.js";
export * from "./workload.js";
