// GET /metrics on both drivers, through app.request (no port): after a known load a scrape counts exactly
// that load (requests by route template and status, commands by outcome, the batches that carried
// them), the histograms are whole, no owner id becomes a label, and the values read at each scrape (the
// pool, the relay, the rate limits, the sweeper) are what their sources say.
import { beforeAll, describe, expect, it, onTestFinished } from "vitest";
import type { RelayState } from "../src/features/events/relay.js";
import { ledgerAppFactory } from "../src/http/index.js";
import { LedgerMetrics, REQUEST_DURATION_BUCKETS_S } from "../src/http/metrics.js";
import { createRateLimits } from "../src/http/rate-limit.js";
import { sqlClientOf } from "../src/store/sql-client.js";
import {
  freshNonce,
  freshOwner,
  metricSum,
  metricValue,
  parseMetrics,
  samplesOf,
  testDriver,
  useTestDatabase,
  type Sample,
} from "../src/testing/index.js";
import { manualClock, silentLogger } from "../src/testing/deps.js";
import { testCatalog } from "./fixtures.js";

const tdb = useTestDatabase();
const APP = "metrics-a";
const createApp = ledgerAppFactory({ name: APP, catalog: testCatalog, title: APP, version: "0" });

type App = ReturnType<typeof createApp>;

function appWith(metrics: LedgerMetrics, extra: Partial<Parameters<typeof createApp>[0]> = {}): App {
  return createApp({ db: tdb().db, ping: () => tdb().ping(), logger: silentLogger, metrics, ...extra });
}

async function scrape(app: App): Promise<{ text: string; samples: Sample[] }> {
  const res = await app.request("/metrics");
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  return { text, samples: parseMetrics(text) };
}

const post = (app: App, body: Record<string, unknown>) =>
  app.request("/ledger", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });

describe("GET /metrics after a known load", () => {
  let app: App;
  let text: string;
  let samples: Sample[];
  const rich = freshOwner("metrics_rich");
  const poor = freshOwner("metrics_poor");
  const nonces = Array.from({ length: 5 }, () => freshNonce());

  beforeAll(async () => {
    app = appWith(new LedgerMetrics());
    // 5 applied, 2 replays of them, 3 refusals for want of credits, 4 balance reads, 1 unknown path.
    for (const nonce of nonces) {
      expect((await post(app, { owner_id: rich, operation: "CREDIT_ADD", nonce })).status).toBe(201);
    }
    for (const nonce of nonces.slice(0, 2)) {
      expect((await post(app, { owner_id: rich, operation: "CREDIT_ADD", nonce })).status).toBe(200);
    }
    for (let i = 0; i < 3; i++) {
      const res = await post(app, { owner_id: poor, operation: "CREDIT_SPEND", nonce: freshNonce() });
      expect(res.status).toBe(422);
      expect(((await res.json()) as { code: string }).code).toBe("INSUFFICIENT_BALANCE");
    }
    for (let i = 0; i < 4; i++) expect((await app.request(`/ledger/${rich}`)).status).toBe(200);
    expect((await app.request(`/nowhere/${rich}`)).status).toBe(404);
    ({ text, samples } = await scrape(app));
  });

  it("counts the requests by route template and status", () => {
    const requests = (route: string, status: string) =>
      metricValue(samples, "ledger_http_requests_total", { app: APP, route, status });
    expect(requests("/ledger", "201")).toBe(5);
    expect(requests("/ledger", "200")).toBe(2);
    expect(requests("/ledger", "422")).toBe(3);
    expect(requests("/ledger/{owner_id}", "200")).toBe(4);
    expect(requests("unmatched", "404")).toBe(1);
    // Nothing else: the scrape itself is counted once it has answered, so it is not in its own text.
    expect(metricSum(samples, "ledger_http_requests_total")).toBe(15);
  });

  it("counts the operations by outcome, and nothing else", () => {
    const ops = samplesOf(samples, "ledger_operations_total").map((s) => [s.labels, s.value]);
    expect(ops).toEqual(
      expect.arrayContaining([
        [{ app: APP, operation: "operations.post", outcome: "applied" }, 5],
        [{ app: APP, operation: "operations.post", outcome: "replayed" }, 2],
        [{ app: APP, operation: "operations.post", outcome: "refused:INSUFFICIENT_BALANCE" }, 3],
      ]),
    );
    expect(ops).toHaveLength(3);
  });

  it("has whole duration histograms: cumulative buckets, +Inf equal to the count, the count equal to the requests", () => {
    const series = samplesOf(samples, "ledger_http_requests_total");
    expect(series.length).toBe(5);
    for (const { labels, value } of series) {
      const buckets = samplesOf(samples, "ledger_http_request_duration_seconds_bucket", labels);
      expect(buckets.map((b) => b.labels.le)).toEqual([...REQUEST_DURATION_BUCKETS_S.map(String), "+Inf"]);
      const counts = buckets.map((b) => b.value);
      expect(counts).toEqual([...counts].sort((a, b) => a - b));
      expect(counts.at(-1)).toBe(value);
      expect(metricValue(samples, "ledger_http_request_duration_seconds_count", labels)).toBe(value);
      expect(metricValue(samples, "ledger_http_request_duration_seconds_sum", labels)).toBeGreaterThan(0);
    }
  });

  it("observes one batch per command when they come one at a time", () => {
    // 10 commands reached group commit (5 applied, 2 replays, 3 refusals), each alone in its batch.
    const batches = (name: string, labels: Record<string, string> = {}) =>
      metricValue(samples, name, { app: APP, ...labels });
    expect(batches("ledger_group_commit_batch_size_count")).toBe(10);
    expect(batches("ledger_group_commit_batch_size_sum")).toBe(10);
    expect(batches("ledger_group_commit_batch_size_bucket", { le: "1" })).toBe(10);
  });

  it("never names an owner, a nonce or a path in a label", () => {
    for (const id of [rich, poor, ...nonces]) expect(text).not.toContain(id);
    const routes = new Set(samplesOf(samples, "ledger_http_requests_total").map((s) => s.labels.route));
    expect([...routes].sort()).toEqual(["/ledger", "/ledger/{owner_id}", "unmatched"]);
  });
});

describe("ledger_group_commit_batch_size", () => {
  it("sums to the commands of concurrent posts, carried by fewer batches than commands", async () => {
    const app = appWith(new LedgerMetrics());
    const owner = freshOwner("metrics_batch");
    const answers = await Promise.all(
      Array.from({ length: 20 }, async () =>
        post(app, { owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce() }),
      ),
    );
    expect(answers.map((r) => r.status)).toEqual(Array.from({ length: 20 }, () => 201));
    const { samples } = await scrape(app);
    expect(metricValue(samples, "ledger_group_commit_batch_size_sum", { app: APP })).toBe(20);
    const batches = metricValue(samples, "ledger_group_commit_batch_size_count", { app: APP }) ?? 0;
    // The first post starts a batch alone; the others gather behind it.
    expect(batches).toBeGreaterThan(0);
    expect(batches).toBeLessThan(20);
    expect(metricValue(samples, "ledger_operations_total", { outcome: "applied" })).toBe(20);
  });
});

describe("the values read at each scrape", () => {
  it("reports the pool: its size, and a transaction in flight as a connection in use", async () => {
    const app = appWith(new LedgerMetrics());
    const max = testDriver() === "pglite" ? 1 : 10;
    const at = async () => {
      const { samples } = await scrape(app);
      return [
        metricValue(samples, "ledger_db_pool_max_connections"),
        metricValue(samples, "ledger_db_pool_in_use_connections"),
        metricValue(samples, "ledger_db_pool_waiting_queries"),
      ];
    };
    expect(await at()).toEqual([max, 0, 0]);
    let release = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    let inside = () => {};
    const entered = new Promise<void>((resolve) => (inside = resolve));
    const tx = sqlClientOf(tdb().db).transaction(async (t) => {
      await t.run([{ text: "select 1", params: [] }]);
      inside();
      await gate;
    });
    onTestFinished(async () => {
      release();
      await tx;
    });
    await entered;
    expect(await at()).toEqual([max, 1, 0]);
    release();
    await tx;
    expect(await at()).toEqual([max, 0, 0]);
  });

  it("reports the relay's state", async () => {
    const state: RelayState = {
      role: "active",
      broker: "nats",
      broker_connected: true,
      pending: 7,
      oldest_pending_at: new Date(Date.now() - 1_500).toISOString(),
      oldest_pending_age_ms: 1_500,
    };
    const app = appWith(new LedgerMetrics(), { relayState: () => state });
    let { samples } = await scrape(app);
    expect(metricValue(samples, "ledger_relay_pending_events")).toBe(7);
    expect(metricValue(samples, "ledger_relay_oldest_pending_age_seconds")).toBe(1.5);
    expect(metricValue(samples, "ledger_relay_broker_connected")).toBe(1);
    expect(metricValue(samples, "ledger_relay_role", { role: "active" })).toBe(1);
    expect(metricValue(samples, "ledger_relay_role", { role: "standby" })).toBe(0);
    Object.assign(state, {
      pending: 0,
      oldest_pending_at: null,
      oldest_pending_age_ms: null,
      role: "standby",
    });
    ({ samples } = await scrape(app));
    expect(metricValue(samples, "ledger_relay_pending_events")).toBe(0);
    expect(metricValue(samples, "ledger_relay_oldest_pending_age_seconds")).toBe(0);
    expect(metricValue(samples, "ledger_relay_role", { role: "standby" })).toBe(1);
  });

  it("has no relay gauges when the process reports no relay (a worker whose primary relays)", async () => {
    const app = appWith(new LedgerMetrics({ reportsRelay: false }), {
      relayState: () => ({
        role: "active",
        broker: null,
        broker_connected: false,
        pending: 3,
        oldest_pending_at: null,
        oldest_pending_age_ms: null,
      }),
    });
    const { samples } = await scrape(app);
    expect(samples.filter((s) => s.name.startsWith("ledger_relay_"))).toEqual([]);
  });

  it("counts the rate limits' refusals: failed authentications past the limit answer 429", async () => {
    const limits = createRateLimits({ authFailuresPerMin: 2, logger: silentLogger });
    const app = appWith(new LedgerMetrics(), {
      auth: { limits, defaultRatePerS: 100 },
    });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await app.request(`/ledger/${freshOwner()}`, { headers: { authorization: "Bearer nope" } });
      statuses.push(res.status);
    }
    expect(statuses).toEqual([401, 401, 429, 429, 429]);
    const { samples } = await scrape(app);
    expect(metricValue(samples, "ledger_rate_limit_refusals_total", { limit: "auth" })).toBe(3);
    expect(metricValue(samples, "ledger_rate_limit_refusals_total", { limit: "key" })).toBe(0);
    expect(metricValue(samples, "ledger_rate_limit_fail_open_total")).toBe(0);
    expect(
      metricValue(samples, "ledger_http_requests_total", { route: "/ledger/{owner_id}", status: "429" }),
    ).toBe(3);
  });

  it("reports the expiry sweeper's progress", async () => {
    const clock = manualClock(new Date().toISOString());
    const stops: (() => Promise<void>)[] = [];
    const sweeping = "metrics-sweep";
    const app = ledgerAppFactory({ name: sweeping, catalog: testCatalog, title: sweeping, version: "0" })({
      db: tdb().db,
      ping: () => tdb().ping(),
      logger: silentLogger,
      metrics: new LedgerMetrics(),
      clock: clock.now,
      expirySweepS: 1,
      onStop: (stop) => stops.push(stop),
    });
    onTestFinished(async () => {
      await Promise.all(stops.map((stop) => stop()));
    });
    const owner = freshOwner("metrics_sweep");
    const expiresAt = new Date(clock.now().getTime() + 3_600_000).toISOString();
    const res = await post(app, {
      owner_id: owner,
      operation: "CREDIT_ADD",
      nonce: freshNonce(),
      expires_at: expiresAt,
    });
    expect(res.status).toBe(201);
    clock.set(new Date(clock.now().getTime() + 7_200_000).toISOString());
    // The first sweep runs a second after start, then every second.
    const deadline = Date.now() + 10_000;
    let samples: Sample[] = [];
    while (Date.now() < deadline) {
      ({ samples } = await scrape(app));
      if ((metricValue(samples, "ledger_expiry_entries_total", { app: sweeping }) ?? 0) > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(metricValue(samples, "ledger_expiry_entries_total", { app: sweeping })).toBe(1);
    expect(
      metricValue(samples, "ledger_expiry_swept_owners_total", { app: sweeping }),
    ).toBeGreaterThanOrEqual(1);
    expect(
      metricValue(samples, "ledger_expiry_sweeps_total", { app: sweeping, outcome: "completed" }),
    ).toBeGreaterThanOrEqual(1);
    expect(metricValue(samples, "ledger_expiry_sweeps_total", { app: sweeping, outcome: "failed" })).toBe(0);
    // The sweep's own clock (the test's), not the wall clock.
    expect(
      metricValue(samples, "ledger_expiry_sweep_last_completed_timestamp_seconds", { app: sweeping }),
    ).toBe(clock.now().getTime() / 1000);
  });
});
