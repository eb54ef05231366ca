// The parts of an app's HTTP surface that every app shares whatever its catalog: the shared operations
// (shared-operations.ts), /health, /openapi.json, /docs, and what a failure may show. Each app's suite
// calls describeAppSurface once, so the checks are written once and still run against every app. Bad
// requests (bodies, owner paths, queries, unknown routes) are rows of the hostile table (hostile.ts),
// which each app's hostile suite runs.
import { beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import type { LedgerDb } from "../store/client.js";
import type { AppDeps } from "../http/app.js";
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
    it(`documents the three ledger routes and ${s.name}'s own operations, and none of ${s.foreignApp}'s`, async () => {
      const res = await s.app().request("/openapi.json");
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^application\/json\b/);
      const doc = openApiSchema.parse(await res.json());
      expect(Object.keys(doc.paths).sort()).toEqual([
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
        "/ledger/{owner_id}/suspension",
      ]);
      const operations = doc.components.schemas.PostOperation.properties.operation.enum;
      expect([...operations].sort()).toEqual([...s.catalog.names].sort());
      for (const name of s.foreignOperations) expect(operations).not.toContain(name);
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
    ])("serves $path with its content type", async ({ path, type, marker }) => {
      const res = await s.app().request(path);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(type);
      expect(await res.text()).toContain(marker);
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
