// Who is calling: API keys on every ledger route, with LEDGER_AUTH=required. A request carries
// `Authorization: Bearer <key>`; the key must exist, be this app's, not be revoked, and its secret must
// match (compared in constant time); then its scope must cover the route (http/scopes.ts) and its rate
// limit must allow the request. Every failure answers before the route runs, so it writes nothing:
//   no key, a malformed, unknown, revoked or another app's key   401 UNAUTHENTICATED, WWW-Authenticate: Bearer
//   a key without the route's scope                               403 FORBIDDEN, naming the scope
//   over the key's rate, or too many failed attempts from here    429 RATE_LIMITED, Retry-After, RateLimit
// /health, /docs, /redoc, /openapi.json and /metrics are open. With LEDGER_AUTH=off the app does not
// install this middleware: nothing is checked and entries carry no actor. The key is never logged; the
// log names its id.
//
// Keys are cached per process for AUTH_CACHE_TTL_MS, so a revocation takes effect everywhere within it
// (the issue allows 5 s); a key's last use is written at most once per LAST_USED_EVERY_MS.
import type { MiddlewareHandler } from "hono";
import type { Logger } from "pino";
import { AUTHORIZATION_LENGTH_MAX, parseApiKey, secretMatches } from "../domain/api-keys.js";
import { identifyCurrentRequest } from "../engine/request-context.js";
import { findApiKey, touchApiKeys, type StoredApiKey } from "../store/keys.js";
import { read } from "../store/reads.js";
import type { SqlRunner } from "../store/sql-client.js";
import type { LedgerEnv } from "./env.js";
import { problem } from "./problem.js";
import { rateLimitHeaders, type RateLimits } from "./rate-limit.js";
import { isOpenPath, routeOf } from "./scopes.js";

export type AuthMode = "required" | "off";

/** How long a process trusts what it read of a key (a revocation waits at most this). */
export const AUTH_CACHE_TTL_MS = 2_000;
/** A key's last_used_at is written at most this often per process. */
const LAST_USED_EVERY_MS = 60_000;
/** Keys remembered per process (unknown ids included, so a flood of made-up ids cannot grow it). */
const CACHE_ENTRIES_MAX = 10_000;

export interface AuthOptions {
  /** The app this server is: another app's key is refused. */
  app: string;
  db: SqlRunner;
  logger: Logger;
  limits: RateLimits;
  /** LEDGER_RATE_LIMIT_PER_S: a key's rate when it has none of its own. */
  defaultRatePerS: number;
  /** The client's address, for the failed-authentication limit. */
  clientAddress: (c: Parameters<MiddlewareHandler<LedgerEnv>>[0]) => string;
}

interface CacheEntry {
  key: StoredApiKey | null;
  readAt: number;
}

export function authMiddleware(opts: AuthOptions): MiddlewareHandler<LedgerEnv> {
  const cache = new Map<string, CacheEntry>();
  const touchedAt = new Map<string, number>();
  const log = opts.logger.child({ component: "auth" });

  const lookUp = async (id: string): Promise<StoredApiKey | null> => {
    const now = Date.now();
    const hit = cache.get(id);
    if (hit && now - hit.readAt < AUTH_CACHE_TTL_MS) return hit.key;
    // A database that is not answering is a 503 (DATABASE_UNAVAILABLE), as for any read: the client may
    // send the request again; never a 500.
    const key = (await read(() => findApiKey(opts.db, id))) ?? null;
    if (cache.size >= CACHE_ENTRIES_MAX) cache.clear();
    cache.set(id, { key, readAt: now });
    return key;
  };

  const touch = (id: string) => {
    const now = Date.now();
    if (now - (touchedAt.get(id) ?? 0) < LAST_USED_EVERY_MS) return;
    if (touchedAt.size >= CACHE_ENTRIES_MAX) touchedAt.clear();
    touchedAt.set(id, now);
    touchApiKeys(opts.db, [id]).catch((error: unknown) => {
      log.warn({ err: error, key_id: id }, "could not record the key's last use");
    });
  };

  return async (c, next) => {
    const path = c.req.path;
    if (isOpenPath(path)) return next();

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

    // The request's own logger (app.ts makes one per request), bound in place: a second child per request
    // cost more (pino's child() was 1.3% of a worker's CPU under the bench, by --cpu-prof).
    c.get("log").setBindings({ key_id: key.id });
    c.set("apiKey", {
      id: key.id,
      app: key.app,
      scopes: key.scopes,
      name: key.name,
      rate: key.rate ?? opts.defaultRatePerS,
    });
    identifyCurrentRequest(key.id);
    touch(key.id);
    await next();
    for (const [name, value] of Object.entries(limitHeaders)) c.res.headers.set(name, value);
  };
}
