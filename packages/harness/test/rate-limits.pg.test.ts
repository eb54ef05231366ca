// Rate limits across processes: app1 served by two worker processes with LEDGER_AUTH=required. With
// LEDGER_REDIS_URL both count one key together, so a key limited to N per second gets about N per second
// in total; without it each process counts its own, so the same key gets about N per second per process.
// A limited request is a 429 and writes nothing: the ledger holds exactly the 201s.
import { randomBytes } from "node:crypto";
import { testDatabaseUrl } from "@ledger/core/testing";
import { afterAll, describe, expect, it } from "vitest";
import { AppProcess, countEntries, createDatabase, createKey, dropDatabase, freePort } from "../src/index.js";

const WORKERS = 2;
const RATE_PER_S = 20;
const LOAD_S = 3;
const CONCURRENCY = 8;
const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function serverWithKey(redis: boolean) {
  const database = await createDatabase(testDatabaseUrl(), "ledger_rates");
  cleanups.push(() => dropDatabase(testDatabaseUrl(), database.name));
  const app = new AppProcess({
    app: "app1",
    port: await freePort(),
    databaseUrl: database.url,
    workers: WORKERS,
    env: {
      NODE_ENV: "production",
      LEDGER_AUTH: "required",
      ...(redis ? { LEDGER_REDIS_URL: REDIS_URL } : {}),
    },
  });
  cleanups.push(async () => {
    await app.stop();
  });
  app.start();
  await app.waitHealthy({ timeoutMs: 60_000 });
  const key = await createKey(database.url, { app: "app1", scopes: ["write"], ratePerS: RATE_PER_S });
  return { app, key, databaseUrl: database.url };
}

/** Posts as fast as CONCURRENCY loops can for LOAD_S seconds, each on a fresh connection (both workers). */
async function load(baseUrl: string, key: string): Promise<Map<number, number>> {
  const statuses = new Map<number, number>();
  const endAt = Date.now() + LOAD_S * 1000;
  const run = randomBytes(4).toString("hex");
  let n = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (Date.now() < endAt) {
        const i = n++;
        const res = await fetch(`${baseUrl}/ledger`, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            authorization: `Bearer ${key}`,
            connection: "close",
          },
          body: JSON.stringify({
            owner_id: `rl_${run}_${i % 50}`,
            operation: "CREDIT_ADD",
            nonce: `${run}-${i}`,
          }),
        });
        await res.arrayBuffer();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      }
    }),
  );
  return statuses;
}

// The bounds: a window of one second holds RATE_PER_S, the burst allowance adds RATE_PER_S per ten
// seconds, and the load spans LOAD_S + 1 windows at most.
const sharedMax = RATE_PER_S * (LOAD_S + 1) + RATE_PER_S;

describe("rate limits of one key across two processes", () => {
  it("with Redis: about N per second in total, the rest 429, and the ledger holds exactly the 201s", async () => {
    const s = await serverWithKey(true);
    const statuses = await load(s.app.baseUrl, s.key);
    const ok = statuses.get(201) ?? 0;
    expect([...statuses.keys()].filter((k) => k !== 201 && k !== 429)).toEqual([]);
    expect(ok).toBeGreaterThanOrEqual(RATE_PER_S * (LOAD_S - 1));
    expect(ok).toBeLessThanOrEqual(sharedMax);
    expect(statuses.get(429) ?? 0).toBeGreaterThan(0);
    expect((await countEntries(s.databaseUrl)).total).toBe(ok);
  }, 120_000);

  it("without Redis: each process counts its own, so the key gets more than one process's share", async () => {
    const s = await serverWithKey(false);
    const statuses = await load(s.app.baseUrl, s.key);
    const ok = statuses.get(201) ?? 0;
    expect(ok).toBeGreaterThan(sharedMax);
    expect(ok).toBeLessThanOrEqual(WORKERS * sharedMax);
    expect((await countEntries(s.databaseUrl)).total).toBe(ok);
  }, 120_000);
});
