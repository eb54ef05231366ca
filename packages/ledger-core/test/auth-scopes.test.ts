// The scope table against the routes the app really serves, the route matching the auth middleware relies
// on, the API key format, and the traceparent parser.
import { describe, expect, it, onTestFinished } from "vitest";
import { generateApiKey, parseApiKey, secretMatches, SCOPES } from "../src/domain/api-keys.js";
import { traceIdOf } from "../src/http/trace.js";
import { ledgerAppFactory } from "../src/http/index.js";
import { OPEN_PATHS, ROUTE_SCOPES, routeOf } from "../src/http/scopes.js";
import { silentLogger } from "../src/testing/deps.js";
import { openTestDatabase } from "../src/testing/index.js";
import { testCatalog } from "./fixtures.js";

/** The routes the app documents, open routes aside: METHOD /path-template. */
async function servedRoutes(): Promise<string[]> {
  const tdb = await openTestDatabase("pglite");
  onTestFinished(() => tdb.close());
  const app = ledgerAppFactory({ name: "scopes-test", catalog: testCatalog, title: "t", version: "0" })({
    db: tdb.db,
    ping: () => tdb.ping(),
    logger: silentLogger,
  });
  const doc = (await (await app.request("/openapi.json")).json()) as {
    paths: Record<string, Record<string, unknown>>;
  };
  return Object.entries(doc.paths)
    .flatMap(([path, ops]) =>
      Object.keys(ops)
        .filter((m) => ["get", "post", "put", "patch", "delete"].includes(m))
        .map((m) => `${m.toUpperCase()} ${path}`),
    )
    .filter((r) => !OPEN_PATHS.includes(r.slice(r.indexOf(" ") + 1)))
    .sort();
}

describe("the scope table", () => {
  it("names every ledger route the app serves, and no other", async () => {
    expect(Object.keys(ROUTE_SCOPES).sort()).toEqual(await servedRoutes());
  });

  it("gives every GET read or events, and the admin scope to reversals, suspension and reinstatement", () => {
    for (const [route, scope] of Object.entries(ROUTE_SCOPES)) {
      if (route.startsWith("GET ")) expect(["read", "events"]).toContain(scope);
      else expect(["write", "admin"]).toContain(scope);
    }
    expect(
      Object.entries(ROUTE_SCOPES)
        .filter(([, s]) => s === "admin")
        .map(([r]) => r)
        .sort(),
    ).toEqual([
      "POST /ledger/entries/{entry_id}/reversal",
      "POST /ledger/{owner_id}/reinstatement",
      "POST /ledger/{owner_id}/suspension",
    ]);
  });

  it.each([
    ["GET", "/ledger/events", "GET /ledger/events", "events"],
    ["GET", "/ledger/alice", "GET /ledger/{owner_id}", "read"],
    ["HEAD", "/ledger/alice", "GET /ledger/{owner_id}", "read"],
    ["GET", "/ledger/alice/", "GET /ledger/{owner_id}", "read"],
    ["GET", "/ledger/alice/stream", "GET /ledger/{owner_id}/stream", "events"],
    ["GET", "/ledger/holds/h1", "GET /ledger/holds/{hold_id}", "read"],
    ["GET", "/ledger/holds/holds", "GET /ledger/holds/{hold_id}", "read"],
    ["POST", "/ledger", "POST /ledger", "write"],
    ["POST", "/ledger/", "POST /ledger", "write"],
    ["POST", "/ledger/holds", "POST /ledger/holds", "write"],
    ["POST", "/ledger/holds/h1/capture", "POST /ledger/holds/{hold_id}/capture", "write"],
    ["POST", "/ledger/entries/7/reversal", "POST /ledger/entries/{entry_id}/reversal", "admin"],
    ["POST", "/ledger/bob/suspension", "POST /ledger/{owner_id}/suspension", "admin"],
  ])("%s %s is %s (%s)", (method, path, route, scope) => {
    const [, template] = route.split(" ");
    expect(routeOf(method, path)).toEqual({ template, scope });
  });

  it.each([
    ["DELETE", "/ledger/alice"],
    ["GET", "/ledger/alice/nope"],
    ["POST", "/ledger/alice"],
    ["GET", "/elsewhere"],
  ])("%s %s is no route", (method, path) => {
    expect(routeOf(method, path)).toBeUndefined();
  });
});

describe("an API key", () => {
  it("is lgr_<16 hex>_<43 base64url>, 256 random bits, different every time, and parses back", () => {
    const a = generateApiKey();
    const b = generateApiKey();
    expect(a.key).toMatch(/^lgr_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect(a.key).not.toBe(b.key);
    expect(a.id).not.toBe(b.id);
    const parsed = parseApiKey(a.key);
    expect(parsed?.id).toBe(a.id);
    expect(secretMatches(parsed?.secret ?? "", a.secretSha256)).toBe(true);
    expect(secretMatches(parseApiKey(b.key)?.secret ?? "", a.secretSha256)).toBe(false);
    expect(a.secretSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(a.key).not.toContain(a.secretSha256);
  });

  it.each([
    "",
    "lgr_",
    "lgr_0123456789abcdef_short",
    `LGR_0123456789abcdef_${"a".repeat(43)}`,
    `lgr_0123456789ABCDEF_${"a".repeat(43)}`,
    `lgr_0123456789abcdef_${"a".repeat(44)}`,
    `lgr_0123456789abcdef_${"a".repeat(42)}!`,
  ])("refuses %j", (value) => {
    expect(parseApiKey(value)).toBeUndefined();
  });

  it("names four scopes", () => {
    expect([...SCOPES]).toEqual(["read", "write", "admin", "events"]);
  });
});

describe("traceparent", () => {
  const trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  it.each([
    [`00-${trace}-00f067aa0ba902b7-01`, trace],
    [`00-${trace}-00f067aa0ba902b7-00`, trace],
    [` 00-${trace}-00f067aa0ba902b7-01 `, trace],
    [`01-${trace}-00f067aa0ba902b7-01-future`, trace],
    [`00-${trace}-00f067aa0ba902b7-01-extra`, null],
    [`ff-${trace}-00f067aa0ba902b7-01`, null],
    [`00-${"0".repeat(32)}-00f067aa0ba902b7-01`, null],
    [`00-${trace}-${"0".repeat(16)}-01`, null],
    [`00-${trace.toUpperCase()}-00f067aa0ba902b7-01`, null],
    ["garbage", null],
  ])("%j gives %j", (header, expected) => {
    expect(traceIdOf(header)).toBe(expected);
  });
  it("is null without the header", () => {
    expect(traceIdOf(undefined)).toBeNull();
  });
});
