// The security suite every app runs (describeSecurity): the app with LEDGER_AUTH=required, every route of
// the scope table (http/scopes.ts) against every way a credential can be wrong, each answered 401 or 403
// with nothing written and nothing leaked; the open routes stay open; the right key passes and its id is
// the entry's actor; revocation, the 429 shape, and the failed-authentication limit.
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { parseApiKey, SCOPES, type Scope } from "../domain/api-keys.js";
import { ledgerAppFactory, type AppDeps } from "../http/app.js";
import { createRateLimits } from "../http/rate-limit.js";
import { ROUTE_SCOPES } from "../http/scopes.js";
import { readEvents } from "../store/events.js";
import { createApiKey, revokeApiKey } from "../store/keys.js";
import { sqlClientOf } from "../store/sql-client.js";
import type { AppSurface } from "./app-surface.js";
import { recordingLogger, silentLogger } from "./deps.js";
import { freshOwner, openTestDatabase } from "./index.js";
import type { RequestApp } from "./requests.js";
import { tableCounts } from "./snapshots.js";

/** A key's secret (base64url, so it may hold "_": never split the key on it). */
function secretOfKey(key: string): string {
  const secret = parseApiKey(key)?.secret;
  if (secret === undefined) throw new Error("not an API key");
  return secret;
}

/** Every way a bearer credential can be wrong but for its scope. */
const BAD_CREDENTIALS = [
  "none",
  "empty",
  "not bearer",
  "malformed",
  "unknown id",
  "wrong secret",
  "revoked",
  "other app's",
] as const;
type BadCredential = (typeof BAD_CREDENTIALS)[number];

interface Keys {
  all: string;
  /** A key with every scope but one. */
  without: Record<Scope, string>;
  revoked: string;
  foreign: string;
  wrongSecret: string;
  unknown: string;
  only: Record<Scope, { key: string; id: string }>;
}

async function makeKeys(s: AppSurface): Promise<Keys> {
  const runner = sqlClientOf(s.db());
  const make = async (app: string, scopes: readonly Scope[], rate = 100_000) =>
    createApiKey(runner, { app, scopes, name: "security suite", rate });
  const all = await make(s.name, SCOPES);
  const without = {} as Record<Scope, string>;
  const only = {} as Record<Scope, { key: string; id: string }>;
  for (const scope of SCOPES) {
    without[scope] = (
      await make(
        s.name,
        SCOPES.filter((x) => x !== scope),
      )
    ).key;
    const k = await make(s.name, [scope]);
    only[scope] = { key: k.key, id: k.id };
  }
  const revoked = await make(s.name, SCOPES);
  await revokeApiKey(runner, revoked.id);
  const foreign = await make(s.foreignApp, SCOPES);
  const otherSecret = randomBytes(32).toString("base64url");
  return {
    all: all.key,
    without,
    revoked: revoked.key,
    foreign: foreign.key,
    wrongSecret: all.key.replace(secretOfKey(all.key), otherSecret),
    unknown: `lgr_${randomBytes(8).toString("hex")}_${otherSecret}`,
    only,
  };
}

function authorization(keys: Keys, bad: BadCredential): Record<string, string> {
  switch (bad) {
    case "none":
      return {};
    case "empty":
      return { authorization: "" };
    case "not bearer":
      return { authorization: `Basic ${Buffer.from(`user:${keys.all}`).toString("base64")}` };
    case "malformed":
      return { authorization: `Bearer ${keys.all.slice(0, -1)}` };
    case "unknown id":
      return { authorization: `Bearer ${keys.unknown}` };
    case "wrong secret":
      return { authorization: `Bearer ${keys.wrongSecret}` };
    case "revoked":
      return { authorization: `Bearer ${keys.revoked}` };
    case "other app's":
      return { authorization: `Bearer ${keys.foreign}` };
  }
}

/** A concrete request for a route of the table: its path with parameters filled, and a body to send. */
function requestFor(s: AppSurface, route: string, owner: string) {
  const [method = "GET", template = ""] = route.split(" ");
  const path = template
    .replace("{owner_id}", owner)
    .replace("{hold_id}", `hold_${randomBytes(6).toString("hex")}`)
    .replace("{entry_id}", "1");
  const body =
    method === "POST" ? JSON.stringify(template === "/ledger" ? s.validPost(owner) : {}) : undefined;
  return { method, path, body };
}

async function send(
  app: RequestApp,
  req: { method: string; path: string; body: string | undefined },
  headers: Record<string, string>,
): Promise<Response> {
  const res = await app.request(req.path, {
    method: req.method,
    headers: { ...(req.body ? { "content-type": "application/json" } : {}), ...headers },
    ...(req.body ? { body: req.body } : {}),
  });
  return res;
}

export function describeSecurity(s: AppSurface): void {
  const secured = (deps: Partial<AppDeps> = {}, defaultRatePerS = 100_000): RequestApp =>
    s.createApp({
      db: s.db(),
      ping: s.ping,
      logger: silentLogger,
      auth: {
        limits: createRateLimits({ authFailuresPerMin: 1_000_000, logger: silentLogger }),
        defaultRatePerS,
      },
      ...deps,
    });
  const routes = Object.keys(ROUTE_SCOPES);

  describe(`API keys on ${s.name} (LEDGER_AUTH=required)`, () => {
    it(`refuses every route (${routes.length}) for every bad credential (${BAD_CREDENTIALS.length}) and every missing scope, writing nothing and leaking nothing`, async () => {
      const app = secured();
      const keys = await makeKeys(s);
      const before = await tableCounts(s.db());
      const eventsBefore = (await readEvents(sqlClientOf(s.db()), 0, 1_000_000)).length;
      let cases = 0;
      for (const route of routes) {
        const scope = ROUTE_SCOPES[route] as Scope;
        const req = requestFor(s, route, freshOwner());
        for (const bad of BAD_CREDENTIALS) {
          const res = await send(app, req, authorization(keys, bad));
          const text = await res.text();
          expect({ route, bad, status: res.status }).toEqual({ route, bad, status: 401 });
          expect(JSON.parse(text)).toMatchObject({ code: "UNAUTHENTICATED", status: 401 });
          expect(res.headers.get("www-authenticate")).toMatch(/^Bearer realm="/);
          expect(text).not.toContain(keys.all.slice(4));
          expect(text).not.toContain(keys.foreign.slice(4));
          cases += 1;
        }
        const res = await send(app, req, { authorization: `Bearer ${keys.without[scope]}` });
        const problem = (await res.json()) as { code: string; details?: { required_scope?: string } };
        expect({ route, status: res.status, code: problem.code }).toEqual({
          route,
          status: 403,
          code: "FORBIDDEN",
        });
        expect(problem.details?.required_scope).toBe(scope);
        cases += 1;
        // Keys that have some scope, but not this one: each also refused.
        for (const other of SCOPES.filter((x) => x !== scope)) {
          const r = await send(app, req, { authorization: `Bearer ${keys.only[other].key}` });
          expect({ route, other, status: r.status }).toEqual({ route, other, status: 403 });
          await r.body?.cancel();
          cases += 1;
        }
      }
      expect(cases).toBe(routes.length * (BAD_CREDENTIALS.length + SCOPES.length));
      expect(await tableCounts(s.db())).toEqual(before);
      expect((await readEvents(sqlClientOf(s.db()), 0, 1_000_000)).length).toBe(eventsBefore);
    });

    it("lets the key with the route's scope through on every route", async () => {
      const app = secured();
      const keys = await makeKeys(s);
      for (const route of routes) {
        const scope = ROUTE_SCOPES[route] as Scope;
        const req = requestFor(s, route, freshOwner());
        const res = await send(app, req, { authorization: `bearer ${keys.only[scope].key}` });
        expect({ route, status: res.status }).not.toMatchObject({ status: 401 });
        expect([401, 403, 429]).not.toContain(res.status);
        await res.body?.cancel();
      }
    });

    it("tells a key who it is at GET /api-keys/current (never its secret), and says so when keys are off", async () => {
      const runner = sqlClientOf(s.db());
      const own = await createApiKey(runner, { app: s.name, scopes: ["read", "admin"], name: "support" });
      const rated = await createApiKey(runner, { app: s.name, scopes: ["read"], rate: 7 });
      const app = secured({}, 42);
      const current = async (key: string) => {
        const res = await app.request("/api-keys/current", { headers: { authorization: `Bearer ${key}` } });
        const text = await res.text();
        expect(res.status, text).toBe(200);
        expect(text).not.toContain(secretOfKey(key));
        return JSON.parse(text) as unknown;
      };
      expect(await current(own.key)).toEqual({
        auth: "required",
        key: { id: own.id, app: s.name, scopes: ["read", "admin"], name: "support", rate: 42 },
      });
      expect(await current(rated.key)).toMatchObject({ key: { id: rated.id, name: null, rate: 7 } });
      const anonymous = await app.request("/api-keys/current");
      expect(anonymous.status).toBe(401);
      const off = await s.app().request("/api-keys/current");
      expect(await off.json()).toEqual({ auth: "off", key: null });
    });

    it("logs the key's id with every line of its request, and never the key", async () => {
      const log = recordingLogger();
      const app = secured({ logger: log.logger });
      const keys = await makeKeys(s);
      const owner = freshOwner();
      const res = await app.request(`/ledger/${owner}`, {
        headers: { authorization: `Bearer ${keys.only.read.key}` },
      });
      expect(res.status).toBe(200);
      const bad = await app.request(`/ledger/${owner}`, {
        headers: { authorization: `Bearer ${keys.wrongSecret}` },
      });
      expect(bad.status).toBe(401);
      const requests = log.lines.filter((l) => l.msg === "request");
      expect(requests.map((l) => [l.status, l.key_id])).toEqual([
        [200, keys.only.read.id],
        [401, undefined],
      ]);
      for (const key of [keys.only.read.key, keys.wrongSecret]) {
        expect(log.text()).not.toContain(secretOfKey(key));
      }
    });

    it("answers 503 DATABASE_UNAVAILABLE, never a 500, when the keys cannot be read", async () => {
      const gone = await openTestDatabase("pglite");
      await gone.close();
      const app = secured({ db: gone.db });
      const key = `lgr_${randomBytes(8).toString("hex")}_${randomBytes(32).toString("base64url")}`;
      const res = await app.request(`/ledger/${freshOwner()}`, {
        headers: { authorization: `Bearer ${key}` },
      });
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ code: "DATABASE_UNAVAILABLE" });
    });

    it("keeps /health, /docs and /openapi.json open", async () => {
      const app = secured();
      for (const path of ["/health", "/docs", "/openapi.json"]) {
        const res = await app.request(path);
        expect({ path, status: res.status }).toEqual({ path, status: 200 });
      }
    });

    it("records the writing key as the entry's actor, in the entries route and in the events, with the trace id", async () => {
      const app = secured();
      const keys = await makeKeys(s);
      const owner = freshOwner();
      const traceId = randomBytes(16).toString("hex");
      const res = await app.request("/ledger", {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: `Bearer ${keys.only.write.key}`,
          traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-01`,
        },
        body: JSON.stringify(s.validPost(owner)),
      });
      expect(res.status).toBe(201);
      expect(res.headers.get("ratelimit-policy")).toMatch(/^"key";q=\d+;w=1$/);
      const listed = await app.request(`/ledger/${owner}/entries`, {
        headers: { authorization: `Bearer ${keys.only.read.key}` },
      });
      const body = (await listed.json()) as { entries: { actor?: string }[] };
      expect(body.entries.map((e) => e.actor)).toEqual([keys.only.write.id]);
      const events = (await readEvents(sqlClientOf(s.db()), 0, 1_000_000, owner)).filter(
        (e) => e.type === "entry.created",
      );
      expect(events.map((e) => [e.actor, e.traceId])).toEqual([[keys.only.write.id, traceId]]);
    });

    it("refuses a revoked key within seconds, in a process that had it cached", async () => {
      const app = secured();
      const runner = sqlClientOf(s.db());
      const made = await createApiKey(runner, { app: s.name, scopes: ["read"], rate: 100_000 });
      const read = () =>
        app.request(`/ledger/${freshOwner()}`, { headers: { authorization: `Bearer ${made.key}` } });
      expect((await read()).status).toBe(200);
      await revokeApiKey(runner, made.id);
      const revokedAt = Date.now();
      let status = 200;
      while (status === 200 && Date.now() - revokedAt < 5_000) {
        status = (await read()).status;
        if (status === 200) await new Promise((r) => setTimeout(r, 100));
      }
      expect(status).toBe(401);
    });

    it("answers over a key's rate with 429, Retry-After and the RateLimit fields, writing nothing", async () => {
      const app = secured();
      const runner = sqlClientOf(s.db());
      const limited = await createApiKey(runner, { app: s.name, scopes: ["write"], rate: 1 });
      const post = (owner: string) =>
        app.request("/ledger", {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${limited.key}` },
          body: JSON.stringify(s.validPost(owner)),
        });
      // A rate of 1 with a burst of 1 more: at most 2 pass at once, then 429.
      const statuses: number[] = [];
      let refused: Response | undefined;
      for (let i = 0; i < 5 && !refused; i++) {
        const res = await post(freshOwner());
        statuses.push(res.status);
        if (res.status === 429) refused = res;
      }
      expect(refused, `statuses ${statuses.join(",")}`).toBeDefined();
      const res = refused as Response;
      const before = await tableCounts(s.db());
      expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect(res.headers.get("ratelimit-policy")).toBe(`"key";q=1;w=1`);
      expect(res.headers.get("ratelimit")).toMatch(/^"key";r=0;t=\d+$/);
      expect(await res.json()).toMatchObject({ code: "RATE_LIMITED", status: 429 });
      const again = await post(freshOwner());
      expect(again.status).toBe(429);
      expect(await tableCounts(s.db())).toEqual(before);
    });

    it("limits failed authentications per client address, then answers 429 even to a good key", async () => {
      const app = s.createApp({
        db: s.db(),
        ping: s.ping,
        logger: silentLogger,
        auth: {
          limits: createRateLimits({ authFailuresPerMin: 3, logger: silentLogger }),
          defaultRatePerS: 100_000,
        },
      });
      const keys = await makeKeys(s);
      const path = `/ledger/${freshOwner()}`;
      for (let i = 0; i < 3; i++) {
        expect(
          (await app.request(path, { headers: { authorization: `Bearer ${keys.unknown}` } })).status,
        ).toBe(401);
      }
      const limited = await app.request(path, { headers: { authorization: `Bearer ${keys.all}` } });
      expect(limited.status).toBe(429);
      expect(limited.headers.get("ratelimit-policy")).toBe(`"auth";q=3;w=60`);
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    });

    it("keeps another app's holds and entries 404 even to this app's admin key", async () => {
      const app = secured();
      const keys = await makeKeys(s);
      const other = ledgerAppFactory({
        name: s.foreignApp,
        catalog: s.catalog,
        title: "other",
        version: "0",
      })({
        db: s.db(),
        ping: s.ping,
        logger: silentLogger,
      });
      const owner = freshOwner();
      const credited = await other.request("/ledger", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(s.validPost(owner)),
      });
      expect(credited.status).toBe(201);
      const entry = ((await credited.json()) as { entry: { id: number } }).entry;
      const reversal = await app.request(`/ledger/entries/${entry.id}/reversal`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${keys.all}` },
        body: JSON.stringify({ nonce: `rev-${owner}`, reason: "security suite" }),
      });
      expect(reversal.status).toBe(404);
    });
  });
}
