// When Postgres is away: requests fail fast with 503 DATABASE_UNAVAILABLE, /health says not ready, and
// the app recovers by itself when the database returns. The outage is made by a proxy in front of the
// shared Postgres, so no other test notices it.
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase, type LedgerDatabase } from "../src/store/index.js";
import { createLedgerApp } from "../src/http/index.js";
import { LedgerService } from "../src/index.js";
import {
  expectLedgerInvariants,
  freshNonce,
  expectedBalance,
  freshOwner,
  openTestDatabase,
  type TestDatabase,
} from "../src/testing/index.js";
import { startTcpProxy, type TcpProxy } from "../src/testing/proxy.js";
import { testCatalog } from "./fixtures.js";

const OPERATION_TIMEOUT_MS = 1_500;
/** The promise under test: no request waits much past the operation timeout (plus connect time). */
const ANSWER_BOUND_MS = OPERATION_TIMEOUT_MS + 3_000;

let tdb: TestDatabase;
let proxy: TcpProxy;
let viaProxy: LedgerDatabase;
let app: ReturnType<typeof createLedgerApp>;

beforeAll(async () => {
  tdb = await openTestDatabase("postgres");
  if (!tdb.url) throw new Error("the postgres test database has a URL");
  const target = new URL(tdb.url);
  proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
  viaProxy = await openDatabase({ url: proxy.url(tdb.url), poolSizeMax: 4, migrate: false });
  const service = new LedgerService({
    db: viaProxy.db,
    app: "app-a",
    catalog: testCatalog,
    operationTimeoutMs: OPERATION_TIMEOUT_MS,
  });
  app = createLedgerApp({
    service,
    ping: () => viaProxy.ping(1_000),
    logger: pino({ level: "silent" }),
    title: "test",
    version: "0",
  });
});

afterAll(async () => {
  await proxy.up();
  await viaProxy.close();
  await proxy.close();
  await expectLedgerInvariants(tdb);
  await tdb.close();
});

async function timed(path: string, init?: RequestInit) {
  const started = performance.now();
  const res = await app.request(path, init);
  return { res, elapsedMs: performance.now() - started, body: (await res.json()) as Record<string, unknown> };
}

const post = (body: object) =>
  timed("/ledger", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });

/** Polls until the app answers 2xx again: recovery must need no restart, only time. */
async function untilRecovered(fn: () => Promise<{ res: Response }>, timeoutMs = 15_000) {
  const giveUpAt = Date.now() + timeoutMs;
  for (;;) {
    const { res } = await fn();
    if (res.ok || Date.now() > giveUpAt) return res;
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe.each(["refuse", "blackhole"] as const)("database away (%s)", (mode) => {
  it("answers 503 DATABASE_UNAVAILABLE fast, reports not ready, and recovers by itself", async () => {
    const owner = freshOwner();
    expect((await post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce() })).res.status).toBe(
      201,
    );
    expect((await timed("/health")).res.status).toBe(200);

    await proxy.down(mode);
    const nonce = freshNonce();
    const write = await post({ owner_id: owner, operation: "CREDIT_ADD", nonce });
    expect(write.res.status).toBe(503);
    expect(write.res.headers.get("content-type")).toBe("application/problem+json");
    expect(write.body.code).toBe("DATABASE_UNAVAILABLE");
    expect(write.elapsedMs).toBeLessThan(ANSWER_BOUND_MS);

    const balance = await timed(`/ledger/${owner}`);
    expect(balance.res.status).toBe(503);
    expect(balance.body.code).toBe("DATABASE_UNAVAILABLE");
    expect(balance.elapsedMs).toBeLessThan(ANSWER_BOUND_MS);

    const health = await timed("/health");
    expect(health.res.status).toBe(503);
    expect(health.body).toMatchObject({ status: "unavailable", database: "down" });
    expect(health.elapsedMs).toBeLessThan(ANSWER_BOUND_MS);

    await proxy.up();
    expect((await untilRecovered(() => timed("/health"))).status).toBe(200);
    // The write whose outcome was unknown is retried with its nonce: applied exactly once either way.
    const retry = await untilRecovered(() => post({ owner_id: owner, operation: "CREDIT_ADD", nonce }));
    expect([200, 201]).toContain(retry.status);
    expect((await timed(`/ledger/${owner}`)).body).toEqual(expectedBalance(owner, 20));
    const entries = await timed(`/ledger/${owner}/entries`);
    expect((entries.body.entries as unknown[]).length).toBe(2);
  });
});
