// The parts of an app's HTTP surface that every app shares whatever its catalog: the shared operations
// (shared-operations.ts), /health, /openapi.json, /docs, and what a failure may show. Each app's suite
// calls describeAppSurface once, so the checks are written once and still run against every app. Bad
// requests (bodies, owner paths, queries, unknown routes) are rows of the hostile table (hostile.ts),
// which each app's hostile suite runs.
import { beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import type { LedgerDb } from "../store/client.js";
import type { AppDeps } from "../http/app.js";
import { OPEN_PATHS, routeOf } from "../http/scopes.js";
import { freshOwner, useTestDatabase } from "./index.js";
import { silentLogger } from "./deps.js";
import { expectProblem } from "./problems.js";
import type { RequestApp } from "./requests.js";
import { ownerState, tableCounts } from "./snapshots.js";
import type { AppSurface } from "./app-surface.js";
import { describeExpiringCredits } from "./grants.js";
import { describeHolds } from "./holds.js";
import { describeReversals } from "./reversals.js";
import { describeSharedOperations } from "./shared-operations.js";
import { describeSuspension } from "./suspension.js";
import { describeBatch } from "./batch.js";
import { describeTransfers } from "./transfers.js";

export type { AppSurface } from "./app-surface.js";

const openApiSchema = z.object({
  openapi: z.literal("3.1.0"),
  paths: z.record(z.string(), z.unknown()),
  components: z.object({
    schemas: z.object({
      PostOperation: z.object({
        properties: z.object({ operation: z.object({ enum: z.array(z.string()) }) }),
        additionalProperties: z.literal(false),
      }),
    }),
  }),
});

/** Each ledger operation's stable name: generated clients call them by it, so renaming one breaks them. */
const OPERATION_IDS: Record<string, string> = {
  "POST /ledger": "postOperation",
  "POST /ledger/batch": "postBatch",
  "POST /ledger/holds": "placeHold",
  "POST /ledger/holds/{hold_id}/capture": "captureHold",
  "POST /ledger/holds/{hold_id}/release": "releaseHold",
  "GET /ledger/holds/{hold_id}": "getHold",
  "GET /ledger/{owner_id}/holds": "listHolds",
  "POST /ledger/entries/{entry_id}/reversal": "reverseEntry",
  "POST /ledger/transfers": "transferCredits",
  "POST /ledger/{owner_id}/suspension": "suspendOwner",
  "POST /ledger/{owner_id}/reinstatement": "reinstateOwner",
  "GET /ledger/{owner_id}": "getBalance",
  "GET /ledger/{owner_id}/entries": "listEntries",
  "GET /ledger/{owner_id}/summary": "summarizeEntries",
  "GET /ledger/events": "listEvents",
  "GET /ledger/{owner_id}/stream": "streamOwnerEvents",
  "GET /api-keys/current": "getCurrentKey",
};

const refSchema = z.object({ $ref: z.string() }).strict();

const documentedOperationSchema = z.object({
  operationId: z.string(),
  tags: z.array(z.string()),
  description: z.string().optional(),
  security: z.array(z.record(z.string(), z.array(z.string()))).optional(),
  "x-ledger-scope": z.string().optional(),
  responses: z.record(z.string(), z.unknown()),
});

const problemResponseSchema = z.object({
  description: z.string().min(1),
  headers: z.record(z.string(), refSchema).optional(),
  content: z.object({
    "application/problem+json": z.object({
      schema: z.object({ $ref: z.literal("#/components/schemas/Problem") }),
      example: z.object({ status: z.number(), code: z.string() }),
    }),
  }),
});

const trustedDocumentSchema = z.object({
  info: z.object({ license: z.object({ name: z.string().min(1) }) }),
  servers: z.array(z.object({ url: z.string(), description: z.string().min(1) })),
  tags: z.array(z.object({ name: z.string(), description: z.string().min(1) })),
  paths: z.record(z.string(), z.record(z.string(), documentedOperationSchema)),
  components: z.object({
    schemas: z.record(z.string(), z.unknown()),
    securitySchemes: z.record(z.string(), z.unknown()),
    responses: z.record(z.string(), problemResponseSchema),
    headers: z.record(z.string(), z.object({ description: z.string().min(1), schema: z.unknown() })),
  }),
});

/** A request path of a template, each parameter filled with a value that is no route word. */
const concretePath = (template: string) => template.replace(/\{[^}]+\}/g, "p-1");

export function describeAppSurface(s: AppSurface): void {
  describeSharedOperations(s);
  describeExpiringCredits(s);
  describeHolds(s);
  describeSuspension(s);
  describeBatch(s);
  describeReversals(s);
  describeTransfers(s);

  const snapshot = async (owner: string) => ({
    owner: await ownerState(s.app(), owner),
    tables: await tableCounts(s.db()),
  });

  describe("GET /health", () => {
    it("answers 200 with the app and the database up", async () => {
      const res = await s.app().request("/health");
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: "ok", app: s.name, database: "up" });
    });

    it("answers 503 when the database does not answer, without the reason", async () => {
      const down = s.createApp({
        db: s.db(),
        ping: () => Promise.reject(new Error("connect ECONNREFUSED 10.0.0.7:5432 password=hunter2")),
        logger: silentLogger,
      });
      const res = await down.request("/health");
      expect(res.status).toBe(503);
      const text = await res.text();
      expect(JSON.parse(text)).toEqual({ status: "unavailable", app: s.name, database: "down" });
      expect(text).not.toContain("hunter2");
    });
  });

  describe("GET /openapi.json", () => {
    it(`documents every ledger route and ${s.name}'s own operations, and none of ${s.foreignApp}'s`, async () => {
      const res = await s.app().request("/openapi.json");
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^application\/json\b/);
      const doc = openApiSchema.parse(await res.json());
      expect(Object.keys(doc.paths).sort()).toEqual([
        "/api-keys/current",
        "/ledger",
        "/ledger/batch",
        "/ledger/entries/{entry_id}/reversal",
        "/ledger/events",
        "/ledger/holds",
        "/ledger/holds/{hold_id}",
        "/ledger/holds/{hold_id}/capture",
        "/ledger/holds/{hold_id}/release",
        "/ledger/transfers",
        "/ledger/{owner_id}",
        "/ledger/{owner_id}/entries",
        "/ledger/{owner_id}/holds",
        "/ledger/{owner_id}/reinstatement",
        "/ledger/{owner_id}/stream",
        "/ledger/{owner_id}/summary",
        "/ledger/{owner_id}/suspension",
      ]);
      const operations = doc.components.schemas.PostOperation.properties.operation.enum;
      expect([...operations].sort()).toEqual([...s.catalog.names].sort());
      for (const name of s.foreignOperations) expect(operations).not.toContain(name);
    });
  });

  describe("GET /openapi.json: what a client can rely on", () => {
    const documentOf = async () =>
      trustedDocumentSchema.parse(await (await s.app().request("/openapi.json")).json());
    const operationsOf = (doc: z.infer<typeof trustedDocumentSchema>) =>
      Object.entries(doc.paths).flatMap(([path, item]) =>
        Object.entries(item).map(([method, operation]) => ({
          method: method.toUpperCase(),
          path,
          operation,
        })),
      );

    it("names every operation with its stable, unique camelCase operationId", async () => {
      const operations = operationsOf(await documentOf());
      const ids = Object.fromEntries(
        operations.map((o) => [`${o.method} ${o.path}`, o.operation.operationId]),
      );
      expect(ids).toEqual(OPERATION_IDS);
      const unique = new Set(operations.map((o) => o.operation.operationId));
      expect(unique.size).toBe(operations.length);
      for (const id of unique) expect(id).toMatch(/^[a-z][a-zA-Z0-9]*$/);
    });

    it("tags every operation with one tag the document describes", async () => {
      const doc = await documentOf();
      const described = doc.tags.map((t) => t.name);
      expect(new Set(described).size).toBe(described.length);
      const used = new Set<string>();
      for (const { method, path, operation } of operationsOf(doc)) {
        expect(operation.tags, `${method} ${path}`).toHaveLength(1);
        for (const tag of operation.tags) {
          expect(described, `${method} ${path}`).toContain(tag);
          used.add(tag);
        }
      }
      expect([...used].sort()).toEqual([...described].sort());
    });

    it("gives every ledger operation the bearer scheme and the scope the key check enforces", async () => {
      const operations = operationsOf(await documentOf());
      const guarded = operations.filter((o) => !OPEN_PATHS.includes(o.path));
      expect(guarded).toHaveLength(Object.keys(OPERATION_IDS).length);
      for (const { method, path, operation } of guarded) {
        const at = `${method} ${path}`;
        const scope = routeOf(method, concretePath(path))?.scope;
        expect(scope, at).toBeDefined();
        expect(operation.security, at).toEqual([{ bearerAuth: [] }]);
        expect(operation["x-ledger-scope"], at).toBe(scope);
        expect(operation.description, at).toContain(`Needs an API key with the \`${scope}\` scope.`);
        expect(operation.responses, at).toMatchObject({
          401: { $ref: "#/components/responses/Unauthenticated" },
          403: { $ref: "#/components/responses/Forbidden" },
          429: { $ref: "#/components/responses/RateLimited" },
        });
      }
    });

    it("answers 401, 403 and 429 as problems with their codes and headers", async () => {
      const { components } = await documentOf();
      const response = (name: string) => {
        const found = components.responses[name];
        expect(found, name).toBeDefined();
        return found;
      };
      const headersOf = (name: string) =>
        Object.fromEntries(
          Object.entries(response(name)?.headers ?? {}).map(([header, ref]) => {
            const component = ref.$ref.replace("#/components/headers/", "");
            expect(components.headers[component], ref.$ref).toBeDefined();
            return [header, component];
          }),
        );
      expect(components.schemas).toHaveProperty("Problem");
      expect(response("Unauthenticated")?.content["application/problem+json"].example).toMatchObject({
        status: 401,
        code: "UNAUTHENTICATED",
      });
      expect(Object.keys(headersOf("Unauthenticated"))).toEqual(["WWW-Authenticate"]);
      expect(response("Forbidden")?.content["application/problem+json"].example).toMatchObject({
        status: 403,
        code: "FORBIDDEN",
      });
      expect(response("RateLimited")?.content["application/problem+json"].example).toMatchObject({
        status: 429,
        code: "RATE_LIMITED",
      });
      expect(Object.keys(headersOf("RateLimited")).sort()).toEqual([
        "RateLimit",
        "RateLimit-Policy",
        "Retry-After",
      ]);
    });

    it("declares the bearer scheme, a server and a license", async () => {
      const doc = await documentOf();
      const bearer = z
        .object({ type: z.string(), scheme: z.string(), description: z.string() })
        .parse(doc.components.securitySchemes["bearerAuth"]);
      expect(bearer).toMatchObject({ type: "http", scheme: "bearer" });
      expect(bearer.description).toContain("Authorization: Bearer <key>");
      expect(bearer.description).toContain("lgr_");
      expect(doc.servers.map((server) => server.url)).toEqual(["/"]);
      expect(doc.info.license.name).toBe("Proprietary");
    });
  });

  describe("GET /docs", () => {
    it("serves an HTML page that loads its assets from this app, not a CDN", async () => {
      const res = await s.app().request("/docs");
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^text\/html\b/);
      const html = await res.text();
      expect(html).toContain(`<title>${s.title}</title>`);
      expect(html).toContain('href="/docs/swagger-ui.css"');
      expect(html).toContain('src="/docs/swagger-ui-bundle.js"');
      expect(html).toContain('"/openapi.json"');
      expect(html).not.toMatch(/(?:src|href)="(?:https?:)?\/\//);
    });

    it.each([
      { path: "/docs/swagger-ui.css", type: /^text\/css\b/, marker: ".swagger-ui" },
      {
        path: "/docs/swagger-ui-bundle.js",
        type: /^(?:text|application)\/javascript\b/,
        marker: "SwaggerUIBundle",
      },
      // The standalone bundle (not redoc's library build): it alone starts itself on <redoc spec-url>.
      {
        path: "/redoc/redoc.standalone.js",
        type: /^(?:text|application)\/javascript\b/,
        marker: 'getAttribute("spec-url")',
      },
    ])("serves $path with its content type", async ({ path, type, marker }) => {
      const res = await s.app().request(path);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(type);
      expect(await res.text()).toContain(marker);
    });
  });

  describe("GET /redoc", () => {
    it("serves a ReDoc page that loads only this app's assets, in the system's fonts", async () => {
      const res = await s.app().request("/redoc");
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^text\/html\b/);
      const html = await res.text();
      expect(html).toContain(`<title>${s.title}</title>`);
      expect(html).toContain('<script src="/redoc/redoc.standalone.js"></script>');
      expect(html).toContain('Redoc.init("/openapi.json"');
      expect(html).toContain("system-ui");
      // No URL of another origin anywhere (a web font, a CDN), nor a stylesheet or script from one.
      expect(html).not.toMatch(/(?:https?:)?\/\/[a-z0-9.-]/i);
      expect([...html.matchAll(/(?:src|href)="([^"]*)"/g)].map((m) => m[1])).toEqual([
        "/redoc/redoc.standalone.js",
      ]);
    });
  });

  describe("security", () => {
    it("answers an unexpected failure with a bare 500 problem: no message, no stack, nothing written", async () => {
      const broken = s.createApp({
        db: s.db(),
        ping: s.ping,
        logger: silentLogger,
        clock: () => {
          throw new Error("relation users: SELECT password FROM users");
        },
      });
      const owner = freshOwner();
      const before = await snapshot(owner);
      const res = await broken.request("/ledger", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(s.validPost(owner)),
      });
      const text = await res.clone().text();
      await expectProblem(res, 500, "INTERNAL_ERROR");
      expect(text).not.toContain("SELECT");
      expect(text).not.toContain("password");
      expect(text).not.toMatch(/\bat .+:\d+:\d+/);
      expect(await snapshot(owner)).toEqual(before);
    });

    it("echoes a well-formed X-Request-Id and replaces one that is not", async () => {
      const good = await s
        .app()
        .request(`/ledger/${freshOwner()}`, { headers: { "x-request-id": "trace-42" } });
      expect(good.headers.get("x-request-id")).toBe("trace-42");
      const bad = await s
        .app()
        .request("/nope", { headers: { "x-request-id": '<script>alert("x")</script>' } });
      const problem = await expectProblem(bad, 404, "NOT_FOUND");
      expect(problem.request_id).not.toContain("<");
    });
  });
}

/**
 * One app over a fresh test database for the whole file: opened before the tests, checked against
 * every ledger invariant and closed after them. Read the app and the database through the getters.
 */
export function useTestApp(createApp: (deps: AppDeps) => RequestApp): {
  app: () => RequestApp;
  db: () => LedgerDb;
} {
  const tdb = useTestDatabase();
  let app: RequestApp | undefined;
  beforeAll(() => {
    const opened = tdb();
    app = createApp({ db: opened.db, ping: () => opened.ping(), logger: silentLogger });
  });
  const need = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error("useTestApp: read before its beforeAll ran");
    return value;
  };
  return { app: () => need(app), db: () => tdb().db };
}
