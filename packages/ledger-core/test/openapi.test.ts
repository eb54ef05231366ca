// The OpenAPI document's decoration (http/docs.ts) and the lint every app's `lint` runs over it
// (cli/openapi-lint.ts). The contract of the apps' documents themselves (operation ids, scopes, the
// security scheme, /redoc) is in the shared app suite (testing/surface.ts), which runs against each app.
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { describe, expect, it, vi } from "vitest";
import { lintOpenApi, openApiDocumentOf } from "../src/cli/openapi-lint.js";
import { ledgerAppFactory } from "../src/http/app.js";
import { decorateOpenApi, registerOpenApi } from "../src/http/docs.js";
import type { LedgerEnv } from "../src/http/env.js";
import { testCatalog } from "./fixtures.js";

const createApp = ledgerAppFactory({ name: "openapi-test", catalog: testCatalog, title: "T", version: "0" });
const CONFIG = { openapi: "3.1.0", info: { title: "T", version: "0" } };

/** An app of one documented route, GET `path`. */
function appWith(path: string) {
  const app = new OpenAPIHono<LedgerEnv>();
  const route = createRoute({
    method: "get",
    path,
    operationId: "probe",
    tags: ["Accounts"],
    summary: "A probe",
    responses: { 200: { description: "OK", content: { "application/json": { schema: z.object({}) } } } },
  });
  app.openapi(route, (c) => c.json({}, 200));
  return app;
}

const operationOf = (doc: unknown, path: string) =>
  z.object({ paths: z.record(z.string(), z.object({ get: z.record(z.string(), z.unknown()) })) }).parse(doc)
    .paths[path]?.get;

describe("decorateOpenApi", () => {
  it("refuses a documented ledger route that has no scope (every key would be refused on it)", () => {
    const app = appWith("/ledger/{owner_id}/unscoped");
    expect(() => decorateOpenApi(app.getOpenAPI31Document(CONFIG))).toThrow(
      "GET /ledger/{owner_id}/unscoped is documented but has no scope in ROUTE_SCOPES",
    );
  });

  it("leaves an open route open: no security, no scope, no 401", () => {
    const doc = decorateOpenApi(appWith("/health").getOpenAPI31Document(CONFIG));
    const operation = operationOf(doc, "/health");
    expect(operation).toBeDefined();
    expect(operation).not.toHaveProperty("security");
    expect(operation).not.toHaveProperty("x-ledger-scope");
    expect(Object.keys(operation?.["responses"] ?? {})).toEqual(["200"]);
  });

  it("does not change the document it is given", () => {
    const generated = appWith("/ledger/{owner_id}").getOpenAPI31Document(CONFIG);
    const before = structuredClone(generated);
    const decorated = decorateOpenApi(generated);
    expect(operationOf(decorated, "/ledger/{owner_id}")).toHaveProperty("x-ledger-scope", "read");
    expect(generated).toEqual(before);
  });
});

describe("GET /openapi.json", () => {
  it("builds the document once and serves the same bytes after", async () => {
    const app = appWith("/ledger/{owner_id}");
    registerOpenApi(app, CONFIG);
    const build = vi.spyOn(app, "getOpenAPI31Document");
    const first = await app.request("/openapi.json");
    const second = await app.request("/openapi.json");
    expect(first.status).toBe(200);
    expect(first.headers.get("content-type")).toMatch(/^application\/json\b/);
    expect(await second.text()).toBe(await first.text());
    expect(build).toHaveBeenCalledTimes(1);
  });
});

describe("lintOpenApi (redocly lint, recommended)", () => {
  it("builds an app's document without a database", async () => {
    const doc = z
      .object({ paths: z.record(z.string(), z.unknown()) })
      .parse(await openApiDocumentOf(createApp));
    expect(Object.keys(doc.paths)).toContain("/ledger");
  });

  it("passes an app's document", async () => {
    const lines: string[] = [];
    expect(await lintOpenApi("core", createApp, { print: (l) => lines.push(l) })).toBe(0);
    expect(lines).toEqual(["core: redocly lint (recommended, redocly.yaml): 0 errors, 0 warnings"]);
  });

  it("fails on a warning, naming the rule and where", async () => {
    const doc = z
      .object({ paths: z.record(z.string(), z.record(z.string(), z.object({}).passthrough())) })
      .passthrough()
      .parse(await openApiDocumentOf(createApp));
    delete doc.paths["/ledger"]?.["post"]?.["operationId"];
    const serving = () => ({ request: () => Response.json(doc) });
    const lines: string[] = [];
    expect(await lintOpenApi("core", serving, { print: (l) => lines.push(l) })).toBe(1);
    expect(lines).toEqual([
      expect.stringMatching(/^core: warn operation-operationId at #\/paths\/~1ledger\/post/),
      "core: redocly lint (recommended, redocly.yaml): 0 errors, 1 warnings",
    ]);
  });

  it("throws when the app does not serve its document", async () => {
    const broken = () => ({ request: () => new Response("nope", { status: 500 }) });
    await expect(lintOpenApi("core", broken, { print: () => {} })).rejects.toThrow(
      "GET /openapi.json answered 500: nope",
    );
  });
});
