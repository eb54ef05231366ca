// Every feature of the ledger, one line each. Adding a kind of write is a folder under features/ (its
// command, routes, migration and tests) and a line here; the engine, the SQL writer and the other
// features do not change.
import { accounts } from "./accounts/index.js";
import { batch } from "./batch/index.js";
import { events } from "./events/index.js";
import type { Feature } from "./feature.js";
import { grants } from "./grants/index.js";
import { holds } from "./holds/index.js";
import { keys } from "./keys/index.js";
import { operations } from "./operations/index.js";
import { reversals } from "./reversals/index.js";
import { suspension } from "./suspension/index.js";
import { transfers } from "./transfers/index.js";

// Order matters where paths overlap: a route with a fixed word where another has {owner_id} (GET
// /ledger/events beside GET /ledger/{owner_id}) must come first, or the word is taken for an owner id.
export const FEATURES: readonly Feature[] = [
  operations,
  holds,
  reversals,
  transfers,
  events,
  accounts,
  grants,
  suspension,
  batch,
  keys,
];

export type { Feature, FeatureRuntime } from "./feature.js";
