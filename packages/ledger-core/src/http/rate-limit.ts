// Rate limits, by rate-limiter-flexible: per API key (its own rate, or the server's), with a burst, and per
// client address for failed authentication. With LEDGER_REDIS_URL every process shares the counters in
// Redis; without it each process counts its own. A Redis that does not answer fails open: the request
// goes on, the failure is logged (at most once per LOG_EVERY_MS) and counted (`failOpen` of stats()).
//
// A key's limit is a fixed window of one second holding `rate` requests, backed by a burst allowance of
// `burst` more over ten seconds (BurstyRateLimiter): a client may go over its rate for a moment, not for
// long.
import type { Logger } from "pino";
import {
  BurstyRateLimiter,
  RateLimiterMemory,
  RateLimiterRedis,
  RateLimiterRes,
  type RateLimiterAbstract,
} from "rate-limiter-flexible";
import type { Redis } from "ioredis";

/** What a limiter said of one request. */
export type RateDecision =
  | { allowed: true; limit: number; remaining: number; resetS: number }
  | { allowed: false; limit: number; retryAfterS: number }
  /** The store did not answer: allowed, and counted. */
  | { allowed: true; failedOpen: true };

export interface RateLimits {
  /** Counts one request of a key allowed `rate` per second. */
  consumeKey(keyId: string, rate: number): Promise<RateDecision>;
  /** Whether this client address may try to authenticate now (failures so far under the bound). */
  authAllowed(address: string): Promise<RateDecision>;
  /** Counts a failed authentication from this address. */
  authFailed(address: string): Promise<void>;
  stats(): RateLimitStats;
}

export interface RateLimitStats {
  /** Requests refused with 429, by what limited them. */
  refused: { key: number; auth: number };
  /** Requests let through because the shared store did not answer. */
  failOpen: number;
}

export interface RateLimitOptions {
  /** A connected ioredis client: shared limits. Unset: in-process. */
  redis?: Redis | undefined;
  /** Extra requests a key may make over ten seconds beyond its rate; default: its rate. */
  burstFor?: (rate: number) => number;
  /** Failed authentications allowed per client address per minute. */
  authFailuresPerMin: number;
  /** Prefix of the Redis keys (tests use their own). */
  keyPrefix?: string;
  logger: Logger;
}

const BURST_WINDOW_S = 10;
const AUTH_WINDOW_S = 60;
const LOG_EVERY_MS = 10_000;

export function createRateLimits(opts: RateLimitOptions): RateLimits {
  const prefix = opts.keyPrefix ?? "ledger:rl";
  const burstFor = opts.burstFor ?? ((rate: number) => rate);
  const stats: RateLimitStats = { refused: { key: 0, auth: 0 }, failOpen: 0 };
  let loggedAt = 0;
  const limiter = (keyPrefix: string, points: number, duration: number): RateLimiterAbstract =>
    opts.redis
      ? new RateLimiterRedis({
          storeClient: opts.redis,
          keyPrefix,
          points,
          duration,
          // Fail fast when the connection is down instead of queueing: the request must not wait on it.
          rejectIfRedisNotReady: true,
        })
      : new RateLimiterMemory({ keyPrefix, points, duration });

  const byRate = new Map<number, BurstyRateLimiter>();
  const keyLimiter = (rate: number) => {
    let l = byRate.get(rate);
    if (!l) {
      l = new BurstyRateLimiter(
        limiter(`${prefix}:key:${rate}`, rate, 1),
        limiter(`${prefix}:burst:${rate}`, burstFor(rate), BURST_WINDOW_S),
      );
      byRate.set(rate, l);
    }
    return l;
  };
  const auth = limiter(`${prefix}:auth`, opts.authFailuresPerMin, AUTH_WINDOW_S);

  const failedOpen = (error: unknown): RateDecision => {
    stats.failOpen += 1;
    if (Date.now() - loggedAt > LOG_EVERY_MS) {
      loggedAt = Date.now();
      opts.logger.warn(
        { err: error, fail_open_total: stats.failOpen },
        "rate limits: the store does not answer; requests go through unlimited",
      );
    }
    return { allowed: true, failedOpen: true };
  };

  return {
    async consumeKey(keyId, rate) {
      try {
        const res = await keyLimiter(rate).consume(keyId);
        return {
          allowed: true,
          limit: rate,
          remaining: Math.max(0, res.remainingPoints),
          resetS: Math.max(1, Math.ceil(res.msBeforeNext / 1000)),
        };
      } catch (error) {
        if (error instanceof RateLimiterRes) {
          stats.refused.key += 1;
          return {
            allowed: false,
            limit: rate,
            retryAfterS: Math.max(1, Math.ceil(error.msBeforeNext / 1000)),
          };
        }
        return failedOpen(error);
      }
    },
    async authAllowed(address) {
      try {
        const res = await auth.get(address);
        if (res !== null && res.consumedPoints >= opts.authFailuresPerMin) {
          stats.refused.auth += 1;
          return {
            allowed: false,
            limit: opts.authFailuresPerMin,
            retryAfterS: Math.max(1, Math.ceil(res.msBeforeNext / 1000)),
          };
        }
        return {
          allowed: true,
          limit: opts.authFailuresPerMin,
          remaining: opts.authFailuresPerMin - (res?.consumedPoints ?? 0),
          resetS: Math.max(1, Math.ceil((res?.msBeforeNext ?? AUTH_WINDOW_S * 1000) / 1000)),
        };
      } catch (error) {
        return failedOpen(error);
      }
    },
    async authFailed(address) {
      try {
        await auth.penalty(address, 1);
      } catch (error) {
        failedOpen(error);
      }
    },
    // The Redis client is the caller's to close.
    stats: () => ({ refused: { ...stats.refused }, failOpen: stats.failOpen }),
  };
}

/** The IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers) of an answer, allowed or not. */
export function rateLimitHeaders(policy: "key" | "auth", decision: RateDecision): Record<string, string> {
  if ("failedOpen" in decision) return {};
  const name = `"${policy}"`;
  const windowS = policy === "key" ? 1 : AUTH_WINDOW_S;
  if (!decision.allowed) {
    return {
      "retry-after": String(decision.retryAfterS),
      "ratelimit-policy": `${name};q=${decision.limit};w=${windowS}`,
      ratelimit: `${name};r=0;t=${decision.retryAfterS}`,
    };
  }
  return {
    "ratelimit-policy": `${name};q=${decision.limit};w=${windowS}`,
    ratelimit: `${name};r=${decision.remaining};t=${decision.resetS}`,
  };
}
