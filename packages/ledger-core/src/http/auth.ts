// Who is calling: API keys on every ledger route, with LEDGER_AUTH=required. A request carries
// `Authorization: Bearer <key>`; the key must exist, be this app's, not be revoked, and its secret must
// match (compared in constant time); then its scope must cover the route (http/scopes.ts) and its rate
// limit must allow the request. Every failure answers before the route runs, so it writes nothing:
//   no key, a malformed, unknown, revoked or another app's key   401 UNAUTHENTICATED, WWW-Authenticate: Bearer
//   a key without the route's scope                               403 FORBIDDEN, naming the scope
//   over the key's rate, or too many failed attempts from here    429 RATE_LIMITED, Retry-After, RateLimit
// /health, /docs, /redoc, /openapi.json and /metrics are open. With LEDGER_AUTH=off nothing is checked and
// entries carry no actor. The key is never logged; the log names its id.
//
// Keys are cached per process for AUTH_CACHE_TTL_MS, so a revocation takes effect everywhere within it
// (the issue allows 5 s); a key's last use is written at most once per LAST_USED_EVERY_MS.
import type { MiddlewareHandler } from "hono";
import type { Logger } from "pino";
import { AUTHORIZATION_LENGTH_MAX, parseApiKey, secretMatches, type Scope } from "../domain/api-keys.js";
import { identifyCurrentRequest } from "../engine/request-context.js";
import { findApiKey, touchApiKeys, type StoredApiKey } from "../store/keys.js";
import type { SqlRunner } from "../store/sql-client.js";
import type { LedgerEnv } from "./env.js";
import { problem } from "./problem.js";
import { rateLimitHeaders, type RateLimits } from "./rate-limit.js";
import { routeOf } from "./scopes.js";

export type AuthMode = "required" | "off";

/** How long a process trusts what it read of a key (a revocation waits at most this). */
export const AUTH_CACHE_TTL_MS = 2_000;
/** A key's last_used_at is written at most this often per process. */
const LAST_USED_EVERY_MS = 60_000;
/** Keys remembered per process (unknown ids included, so a flood of made-up ids cannot grow it). */
const CACHE_ENTRIES_MAX = 10_000;

/** The paths that answer without a key. */
const OPEN_PATHS = [/^\/health$/, /^\/docs(\/|$)/, /^\/redoc(\/|$)/, /^\/openapi\.json$/, /^\/metrics$/];

export interface AuthOptions {
  mode: AuthMode;
  /** The app this server is: another app's key is refused. */
  app: string;
  db: SqlRunner;
  logger: Logger;
  limits: RateLimits;
  /** LEDGER_RATE_LIMIT_PER_S: a key's rate when it has none of its own. */
  defaultRatePerS: number;
  /** The client's address, for the failed-authentication limit. */
  clientAddress: (c: Parameters<MiddlewareHandler<LedgerEnv>>[0]) => string;
  clock?: () => number;
}

/** What the routes see of the caller. */
export interface Caller {
  keyId: string;
  scopes: readonly Scope[];
}

interface CacheEntry {
  key: StoredApiKey | null;
  readAt: number;
}

/** A W3C traceparent's trace id (version 00, or any later version read the same way), if valid. */
export function traceIdOf(header: string | undefined): string | null {
  if (header === undefined) return null;
  const m = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/.exec(header.trim());
  if (!m || m[1] === "ff") return null;
  const traceId = m[2] as string; // in the pattern
  if (/^0+$/.test(traceId) || /^0+$/.test(m[3] as string)) return null;
  if (m[1] === "00" && m[5] !== undefined) return null;
  return traceId;
}

export function authMiddleware(opts: AuthOptions): MiddlewareHandler<LedgerEnv> {
  const clock = opts.clock ?? Date.now;
  const cache = new Map<string, CacheEntry>();
  const touchedAt = new Map<string, number>();
  const log = opts.logger.child({ component: "auth" });

  const lookUp = async (id: string): Promise<StoredApiKey | null> => {
    const now = clock();
    const hit = cache.get(id);
    if (hit && now - hit.readAt < AUTH_CACHE_TTL_MS) return hit.key;
    const key = (await findApiKey(opts.db, id)) ?? null;
    if (cache.size >= CACHE_ENTRIES_MAX) cache.clear();
    cache.set(id, { key, readAt: now });
    return key;
  };

  const touch = (id: string) => {
    const now = clock();
    if (now - (touchedAt.get(id) ?? 0) < LAST_USED_EVERY_MS) return;
    if (touchedAt.size >= CACHE_ENTRIES_MAX) touchedAt.clear();
    touchedAt.set(id, now);
    touchApiKeys(opts.db, [id]).catch((error: unknown) => {
      log.warn({ err: error, key_id: id }, "could not record the key's last use");
    });
  };

  return async (c, next) => {
    const traceId = traceIdOf(c.req.header("traceparent"));
    if (traceId !== null) c.set("log", c.get("log").child({ trace_id: traceId }));
    const path = c.req.path;
    if (opts.mode === "off" || OPEN_PATHS.some((p) => p.test(path))) {
      identifyCurrentRequest(null, traceId);
      return next();
    }

    const address = opts.clientAddress(c);
    const unauthenticated = async (detail: string, error?: "invalid_token") => {
      await opts.limits.authFailed(address);
      c.get("log").info({ reason: detail }, "authentication refused");
      return problem(
        c,
        "UNAUTHENTICATED",
        detail,
        {},
        {
          "www-authenticate": error
            ? `Bearer realm="${opts.app}", error="${error}"`
            : `Bearer realm="${opts.app}"`,
        },
      );
    };

    const gate = await opts.limits.authAllowed(address);
    if (!gate.allowed) {
      return problem(
        c,
        "RATE_LIMITED",
        "Too many failed authentications from this address; try again later",
        {},
        rateLimitHeaders("auth", gate),
      );
    }

    const header = c.req.header("authorization");
    if (header === undefined || header.trim() === "") {
      return unauthenticated("This route needs an API key: send Authorization: Bearer <key>");
    }
    const m = header.length <= AUTHORIZATION_LENGTH_MAX ? /^Bearer +(\S+) *$/i.exec(header) : null;
    const parsed = m ? parseApiKey(m[1] as string) : undefined; // the group is in the pattern
    if (!parsed) {
      return unauthenticated("The Authorization header is not Bearer <API key>", "invalid_token");
    }
    const key = await lookUp(parsed.id);
    // One answer for every way a key is wrong, so a caller learns nothing of which keys exist.
    if (
      key === null ||
      !secretMatches(parsed.secret, key.secretSha256) ||
      key.revoked_at !== null ||
      key.app !== opts.app
    ) {
      return unauthenticated(
        "The API key is not valid for this app (unknown, revoked, or another app's)",
        "invalid_token",
      );
    }

    const decision = await opts.limits.consumeKey(key.id, key.rate ?? opts.defaultRatePerS);
    const limitHeaders = rateLimitHeaders("key", decision);
    if (!decision.allowed) {
      return problem(
        c,
        "RATE_LIMITED",
        "This key is over its rate limit; try again after Retry-After seconds",
        {},
        limitHeaders,
      );
    }

    const route = routeOf(c.req.method, path);
    if (route && !key.scopes.includes(route.scope)) {
      return problem(
        c,
        "FORBIDDEN",
        `This key lacks the scope "${route.scope}", which ${c.req.method} ${route.template} needs`,
        { details: { required_scope: route.scope } },
        limitHeaders,
      );
    }

    c.set("caller", { keyId: key.id, scopes: key.scopes });
    c.set("log", c.get("log").child({ key_id: key.id }));
    identifyCurrentRequest(key.id, traceId);
    touch(key.id);
    await next();
    for (const [name, value] of Object.entries(limitHeaders)) c.res.headers.set(name, value);
  };
}
