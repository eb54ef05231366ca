// Who may call what: every route of the ledger and the scope an API key needs for it, in one table, so a
// reviewer reads the whole policy at once. A route missing here is refused to every key (and a test
// fails: test/auth-scopes.test.ts holds the table to the routes the apps serve).
//
//   read    every GET of the ledger (balances, summaries, entries, holds, the key itself)
//   write   operations, batches, holds, captures, releases, transfers
//   admin   reversals, suspension, reinstatement
//   events  the events route and the owners' streams
import type { Scope } from "../domain/api-keys.js";

export { SCOPES, type Scope } from "../domain/api-keys.js";

/** The routes anyone may call without a key (and their assets, under /docs/ and /redoc/). */
export const OPEN_PATHS: readonly string[] = ["/health", "/docs", "/redoc", "/openapi.json", "/metrics"];

/** Whether a request path is one of the open routes or an asset of the docs pages. */
export function isOpenPath(path: string): boolean {
  return OPEN_PATHS.includes(path) || path.startsWith("/docs/") || path.startsWith("/redoc/");
}

export const ROUTE_SCOPES: Readonly<Record<string, Scope>> = {
  "POST /ledger": "write",
  "POST /ledger/batch": "write",
  "POST /ledger/holds": "write",
  "POST /ledger/holds/{hold_id}/capture": "write",
  "POST /ledger/holds/{hold_id}/release": "write",
  "POST /ledger/transfers": "write",
  "POST /ledger/entries/{entry_id}/reversal": "admin",
  "POST /ledger/{owner_id}/suspension": "admin",
  "POST /ledger/{owner_id}/reinstatement": "admin",
  "GET /ledger/{owner_id}": "read",
  "GET /ledger/{owner_id}/entries": "read",
  "GET /ledger/{owner_id}/summary": "read",
  "GET /ledger/{owner_id}/holds": "read",
  "GET /ledger/holds/{hold_id}": "read",
  "GET /ledger/events": "events",
  "GET /ledger/{owner_id}/stream": "events",
  "GET /api-keys/current": "read",
};

interface CompiledRoute {
  method: string;
  template: string;
  segments: readonly (string | null)[]; // null: a parameter
  scope: Scope;
}

const COMPILED: readonly CompiledRoute[] = Object.entries(ROUTE_SCOPES).map(([key, scope]) => {
  const [method = "", template = ""] = key.split(" ");
  const segments = template
    .split("/")
    .slice(1)
    .map((s) => (s.startsWith("{") ? null : s));
  return { method, template, segments, scope };
});

/** The route template a request's path falls under, and its scope; undefined for a path of none. */
export function routeOf(method: string, path: string): { template: string; scope: Scope } | undefined {
  const m = method === "HEAD" ? "GET" : method;
  const parts = path.replace(/\/+$/, "").split("/").slice(1);
  let best: CompiledRoute | undefined;
  for (const route of COMPILED) {
    if (route.method !== m || route.segments.length !== parts.length) continue;
    if (!route.segments.every((s, i) => s === null || s === parts[i])) continue;
    // A fixed word beats a parameter at the first place they differ, as the router's order does
    // (GET /ledger/events is not the balance of an owner named "events").
    if (best === undefined || moreSpecific(route, best)) best = route;
  }
  return best && { template: best.template, scope: best.scope };
}

function moreSpecific(a: CompiledRoute, b: CompiledRoute): boolean {
  for (let i = 0; i < a.segments.length; i++) {
    const x = a.segments[i] !== null;
    const y = b.segments[i] !== null;
    if (x !== y) return x;
  }
  return false;
}
