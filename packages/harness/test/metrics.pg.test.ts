// GET /metrics of one app served by several worker processes (LEDGER_WORKERS=2): each worker counts what
// it served, and a scrape of any of them answers the sum over all of them, with the relay (run by the
// primary) reported once. N posts over fresh connections land on both workers; every scrape shows N.
import { request } from "node:http";
import { randomBytes } from "node:crypto";
import { metricSum, metricValue, parseMetrics, testDatabaseUrl, type Sample } from "@ledger/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AppProcess, createDatabase, dropDatabase, freePort } from "../src/index.js";

const WORKERS = 2;
const POSTS = 40;
const SCRAPES = 6;
/** Every log line of the run is kept: one per request at LOG_LEVEL info, and the boot's. */
const LOG_LINES_MAX = 5_000;

let database: { name: string; url: string } | undefined;
let app: AppProcess | undefined;

beforeAll(async () => {
  database = await createDatabase(testDatabaseUrl(), "ledger_metrics");
  app = new AppProcess({
    app: "app1",
    port: await freePort(),
    databaseUrl: database.url,
    workers: WORKERS,
    logLevel: "info",
    logLinesMax: LOG_LINES_MAX,
  });
  app.start();
  await app.waitHealthy({ timeoutMs: 60_000 });
}, 90_000);

afterAll(async () => {
  await app?.stop();
  if (database) await dropDatabase(testDatabaseUrl(), database.name);
});

/**
 * One request on a connection of its own (no keep-alive agent), so the cluster hands each to the next
 * worker in turn rather than every request riding one worker's connection.
 */
function send(
  baseUrl: string,
  method: "GET" | "POST",
  path: string,
  body?: unknown,
): Promise<{ status: number; text: string }> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      `${baseUrl}${path}`,
      {
        method,
        agent: false,
        headers: payload === undefined ? {} : { "content-type": "application/json" },
        timeout: 15_000,
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (text += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${method} ${path}: no answer within 15 s`)));
    req.on("error", reject);
    req.end(payload);
  });
}

/** The pids of the processes that logged a request of this method and path (pino logs carry the pid). */
function pidsServing(output: string, method: string, path: string): Set<number> {
  const pids = new Set<number>();
  for (const line of output.split("\n")) {
    if (!line.startsWith("{")) continue;
    const record = JSON.parse(line) as { pid?: number; msg?: string; method?: string; path?: string };
    if (record.msg === "request" && record.method === method && record.path === path && record.pid) {
      pids.add(record.pid);
    }
  }
  return pids;
}

describe("GET /metrics with LEDGER_WORKERS=2", () => {
  it("answers, from whichever worker is scraped, the sum over every worker", async () => {
    const running = app;
    if (!running) throw new Error("app1 did not start");
    const run = randomBytes(4).toString("hex");
    const answers = await Promise.all(
      Array.from({ length: POSTS }, (_, i) =>
        send(running.baseUrl, "POST", "/ledger", {
          owner_id: `metrics_${run}_${i}`,
          operation: "CREDIT_ADD",
          nonce: `metrics-${run}-${i}`,
        }),
      ),
    );
    expect(answers.map((a) => a.status)).toEqual(Array.from({ length: POSTS }, () => 201));
    // Both workers took some of the posts: no one worker's own count is N.
    const output = running.recentOutput(LOG_LINES_MAX);
    const servers = pidsServing(output, "POST", "/ledger");
    expect(servers.size).toBe(WORKERS);
    expect(servers.has(running.pid ?? -1)).toBe(false);

    const scrapes: Sample[][] = [];
    for (let i = 0; i < SCRAPES; i++) {
      const res = await send(running.baseUrl, "GET", "/metrics");
      expect(res.status).toBe(200);
      scrapes.push(parseMetrics(res.text));
    }
    // The scrapes were answered by both workers, and each answered the whole server's counts.
    expect(pidsServing(running.recentOutput(LOG_LINES_MAX), "GET", "/metrics").size).toBe(WORKERS);
    for (const samples of scrapes) {
      expect(
        metricValue(samples, "ledger_http_requests_total", { app: "app1", route: "/ledger", status: "201" }),
      ).toBe(POSTS);
      expect(
        metricValue(samples, "ledger_operations_total", {
          app: "app1",
          operation: "operations.post",
          outcome: "applied",
        }),
      ).toBe(POSTS);
      expect(metricValue(samples, "ledger_group_commit_batch_size_sum", { app: "app1" })).toBe(POSTS);
      // Each worker's pool, summed (DB_POOL_SIZE 8 each).
      expect(metricValue(samples, "ledger_db_pool_max_connections")).toBe(8 * WORKERS);
      // The primary's relay, once: one role, not one per worker.
      expect(metricSum(samples, "ledger_relay_role")).toBe(1);
      expect(metricValue(samples, "ledger_relay_role", { role: "active" })).toBe(1);
    }
  });

  it("lists each metric family once in a scrape (the primary's after the workers' sum)", async () => {
    const running = app;
    if (!running) throw new Error("app1 did not start");
    const { text } = await send(running.baseUrl, "GET", "/metrics");
    const families = text.split("\n").filter((l) => l.startsWith("# TYPE "));
    expect(families.length).toBeGreaterThan(10);
    expect(new Set(families).size).toBe(families.length);
    expect(families).toContain("# TYPE ledger_relay_pending_events gauge");
  });
});
