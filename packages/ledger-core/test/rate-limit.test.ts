// The rate limits alone: a key's window and burst, the failed-authentication gate, the headers, and a
// Redis that does not answer, which lets requests through, logs it and counts it.
import net from "node:net";
import { Redis } from "ioredis";
import { describe, expect, it, onTestFinished } from "vitest";
import { createRateLimits, rateLimitHeaders } from "../src/http/rate-limit.js";
import { silentLogger } from "../src/testing/deps.js";

describe("rate limits in process", () => {
  it("lets a key make its rate plus its burst, then refuses with a retry time", async () => {
    const limits = createRateLimits({ authFailuresPerMin: 5, logger: silentLogger, burstFor: () => 2 });
    const decisions = [];
    for (let i = 0; i < 6; i++) decisions.push(await limits.consumeKey("k1", 3));
    expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, true, true, false]);
    const refused = decisions[5];
    expect(refused).toMatchObject({ allowed: false, limit: 3 });
    expect(refused && "retryAfterS" in refused ? refused.retryAfterS : 0).toBeGreaterThanOrEqual(1);
    // Another key has its own count.
    expect((await limits.consumeKey("k2", 3)).allowed).toBe(true);
    expect(limits.stats()).toEqual({ refused: { key: 1, auth: 0 }, failOpen: 0 });
  });

  it("closes the gate for an address after its failures, and only for it", async () => {
    const limits = createRateLimits({ authFailuresPerMin: 2, logger: silentLogger });
    expect((await limits.authAllowed("10.0.0.1")).allowed).toBe(true);
    await limits.authFailed("10.0.0.1");
    await limits.authFailed("10.0.0.1");
    const gate = await limits.authAllowed("10.0.0.1");
    expect(gate.allowed).toBe(false);
    expect(rateLimitHeaders("auth", gate)).toMatchObject({ "ratelimit-policy": `"auth";q=2;w=60` });
    expect((await limits.authAllowed("10.0.0.2")).allowed).toBe(true);
    expect(limits.stats().refused.auth).toBe(1);
  });

  it("writes the IETF fields of an allowed answer", () => {
    expect(rateLimitHeaders("key", { allowed: true, limit: 100, remaining: 37, resetS: 1 })).toEqual({
      "ratelimit-policy": `"key";q=100;w=1`,
      ratelimit: `"key";r=37;t=1`,
    });
    expect(rateLimitHeaders("key", { allowed: true, failedOpen: true })).toEqual({});
  });
});

describe("rate limits over a Redis that does not answer", () => {
  it("fail open: every request allowed, counted, and logged once", async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as net.AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const redis = new Redis({
      port,
      host: "127.0.0.1",
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      lazyConnect: true,
      retryStrategy: () => null,
    });
    redis.on("error", () => {});
    onTestFinished(() => redis.disconnect());
    const warnings: unknown[] = [];
    const logger = {
      ...silentLogger,
      warn: (...args: unknown[]) => warnings.push(args),
    } as unknown as typeof silentLogger;
    const limits = createRateLimits({ redis, authFailuresPerMin: 1, logger });
    for (let i = 0; i < 5; i++) expect((await limits.consumeKey("k", 1)).allowed).toBe(true);
    expect((await limits.authAllowed("10.0.0.1")).allowed).toBe(true);
    expect(limits.stats().failOpen).toBe(6);
    expect(warnings).toHaveLength(1);
  });
});
