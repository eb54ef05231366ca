import { describe, expect, it } from "vitest";
import {
  parseBenchArgs,
  parsePgbench,
  authCost,
  type AutocannonLike,
  batchBody,
  batchedVsDbCeiling,
  batchMeanBetween,
  batchSizeTotals,
  checkTargets,
  countBatchItems,
  dbCeilingResult,
  formatTable,
  pgbenchScript,
  holdBody,
  hotBody,
  ownerStride,
  type ScenarioResult,
  summarize,
  summarizeItems,
  uniformBody,
} from "./bench-report.js";

function cannon(codes: Record<string, number>, extra: Partial<AutocannonLike> = {}): AutocannonLike {
  return {
    duration: 2,
    errors: 0,
    timeouts: 0,
    latency: { p50: 3, p99: 9, p99_9: 20 },
    statusCodeStats: Object.fromEntries(Object.entries(codes).map(([k, count]) => [k, { count }])),
    ...extra,
  };
}

describe("parseBenchArgs", () => {
  it("uses the full defaults, and --quick's short ones, with explicit flags winning", () => {
    const full = parseBenchArgs([], {});
    expect(full).toMatchObject({ durationS: 20, connections: 50, owners: 10_000, quick: false });
    expect(parseBenchArgs(["--quick"], {})).toMatchObject({ durationS: 3, quick: true });
    expect(full).toMatchObject({ batchSize: 100, batchConnections: 10, pgbenchClients: 8 });
    expect(parseBenchArgs(["--batch-size", "50", "--pgbench-clients", "4"], {})).toMatchObject({
      batchSize: 50,
      pgbenchClients: 4,
    });
    expect(parseBenchArgs(["--", "--quick", "--duration-s", "7", "--connections", "8"], {})).toMatchObject({
      durationS: 7,
      connections: 8,
    });
  });

  it.each([
    [["--duration-s", "0"]],
    [["--connections", "many"]],
    [["--batch-size", "0"]],
    [["--batch-size", "1001"]],
    [["--pgbench-clients", "0"]],
    [["--admin-url", "postgres://postgres@db.example.com:5432/postgres"]],
    [["--admin-url", "http://127.0.0.1:5432/"]],
    [["--unknown"]],
  ])("refuses %j with a message", (argv) => {
    expect(typeof parseBenchArgs(argv, {})).toBe("string");
  });

  it("takes NATS from --nats-url, else TEST_NATS_URL, else the machine's, and refuses another scheme", () => {
    expect(parseBenchArgs([], {})).toMatchObject({ natsUrl: "nats://127.0.0.1:4222" });
    expect(parseBenchArgs([], { TEST_NATS_URL: "nats://10.0.0.1:4222" })).toMatchObject({
      natsUrl: "nats://10.0.0.1:4222",
    });
    expect(parseBenchArgs(["--nats-url", "nats://127.0.0.1:4333"], {})).toMatchObject({
      natsUrl: "nats://127.0.0.1:4333",
    });
    expect(typeof parseBenchArgs(["--nats-url", "amqp://guest:guest@127.0.0.1:5672"], {})).toBe("string");
  });

  it("takes the server from TEST_DATABASE_URL when no --admin-url is given", () => {
    const url = "postgres://postgres@127.0.0.1:5433/postgres";
    expect(parseBenchArgs([], { TEST_DATABASE_URL: url })).toMatchObject({ adminUrl: url });
  });
});

describe("the request mixes", () => {
  it("uniform: every owner once per pass, half credits half debits, a debit before each credit", () => {
    const owners = 10_000;
    const stride = ownerStride(owners);
    const first = Array.from({ length: owners }, (_, i) => uniformBody(i, owners, stride, "n"));
    expect(new Set(first.map((b) => b.owner_id)).size).toBe(owners);
    expect(first.every((b) => b.operation === "CREDIT_SPEND")).toBe(true);
    const second = Array.from({ length: owners }, (_, i) => uniformBody(owners + i, owners, stride, "n"));
    expect(second.every((b) => b.operation === "CREDIT_ADD")).toBe(true);
    expect(new Set([...first, ...second].map((b) => b.nonce)).size).toBe(2 * owners);
  });

  it.each([1, 2, 7_919, 10_000, 12_345])("ownerStride(%i) visits every owner", (owners) => {
    const stride = ownerStride(owners);
    const seen = new Set(Array.from({ length: owners }, (_, i) => (i * stride) % owners));
    expect(seen.size).toBe(owners);
  });

  it("hot: one owner, one credit for every ten debits, unique nonces", () => {
    const bodies = Array.from({ length: 22 }, (_, i) => hotBody(i, "hot", "n"));
    expect(new Set(bodies.map((b) => b.owner_id))).toEqual(new Set(["hot"]));
    expect(bodies.filter((b) => b.operation === "CREDIT_ADD")).toHaveLength(2);
    expect(new Set(bodies.map((b) => b.nonce)).size).toBe(22);
  });
});

describe("the batched and hold-capture mixes", () => {
  it("batched: request i carries the uniform mix's requests i*size .. i*size+size-1, no owner twice", () => {
    const owners = 10_000;
    const stride = ownerStride(owners);
    const batches = Array.from({ length: 200 }, (_, i) => batchBody(i, 100, owners, stride, "b"));
    for (const [i, batch] of batches.entries()) {
      expect(batch.operations).toEqual(
        Array.from({ length: 100 }, (_, j) => uniformBody(i * 100 + j, owners, stride, "b")),
      );
      expect(new Set(batch.operations.map((o) => o.owner_id)).size).toBe(100);
    }
    // 100 batches of 100 are one pass over the owners: every owner once, all debits; the next pass credits.
    const pass = batches.slice(0, 100).flatMap((b) => b.operations);
    expect(new Set(pass.map((o) => o.owner_id)).size).toBe(owners);
    expect(pass.every((o) => o.operation === "CREDIT_SPEND")).toBe(true);
    expect(batches[100]?.operations.every((o) => o.operation === "CREDIT_ADD")).toBe(true);
    expect(new Set(batches.flatMap((b) => b.operations.map((o) => o.nonce))).size).toBe(20_000);
  });

  it("hold-capture: one CREDIT_SPEND hold per iteration, owners scattered, unique nonces", () => {
    const stride = ownerStride(10_000);
    const holds = Array.from({ length: 10_000 }, (_, i) => holdBody(i, 10_000, stride, "h"));
    expect(new Set(holds.map((h) => h.owner_id)).size).toBe(10_000);
    expect(new Set(holds.map((h) => h.nonce)).size).toBe(10_000);
    expect(holds[0]).toEqual({ owner_id: "bench_0", operation: "CREDIT_SPEND", nonce: "h-hold-0" });
  });

  it("counts a batch's items answered 201 or 200 as done, anything else (or a failed request) as unexpected", () => {
    const counts = { ok: 0, unexpected: 0 };
    const results = (...statuses: number[]) =>
      JSON.stringify({ results: statuses.map((status) => ({ status })) });
    countBatchItems(counts, 200, results(201, 201, 200, 422), 4);
    expect(counts).toEqual({ ok: 3, unexpected: 1 });
    countBatchItems(counts, 200, results(201), 4); // fewer results than items
    countBatchItems(counts, 503, "{}", 4);
    countBatchItems(counts, 200, "not json", 2);
    expect(counts).toEqual({ ok: 4, unexpected: 1 + 3 + 4 + 2 });
  });

  it("reports a batched scenario's operations (items) per second, and its requests per second apart", () => {
    const r = summarizeItems("batched", cannon({ "200": 30 }), { ok: 2_990, unexpected: 10 });
    expect(r).toMatchObject({ ops: 2_990, opsPerS: 1_495, requestsPerS: 15, unexpectedItems: 10 });
  });
});

describe("the database ceiling", () => {
  const output = `pgbench (15.20 (Debian 15.20-0+deb12u1))
transaction type: /tmp/ledger-pgbench-x/batch.sql
scaling factor: 1
query mode: prepared
number of clients: 8
number of threads: 2
maximum number of tries: 1
duration: 20 s
number of transactions actually processed: 4321
number of failed transactions: 0 (0.000%)
latency average = 37.012 ms
initial connection time = 10.321 ms
tps = 216.140000 (without initial connection time)
`;

  it("reads pgbench's summary, and says so when there is none", () => {
    expect(parsePgbench(output)).toEqual({
      transactions: 4321,
      failed: 0,
      tps: 216.14,
      latencyAvgMs: 37.012,
    });
    expect(typeof parsePgbench("pgbench: error: connection to server failed")).toBe("string");
  });

  it("writes rows per transaction as its operations, and compares the batched figure with it", () => {
    const parsed = parsePgbench(output);
    if (typeof parsed === "string") throw new Error(parsed);
    const db = dbCeilingResult(parsed, 100, 20);
    expect(db).toMatchObject({
      scenario: "db-ceiling",
      ops: 432_100,
      opsPerS: 21_614,
      rowsPerTransaction: 100,
    });
    const batched = summarizeItems("batched", cannon({ "200": 100 }, { duration: 1 }), {
      ok: 10_807,
      unexpected: 0,
    });
    expect(batchedVsDbCeiling([batched, db])).toMatch(
      /^batched 10807 ops\/s = 50\.0% of the database ceiling \(21614 rows\/s/,
    );
    expect(batchedVsDbCeiling([batched])).toBeUndefined();
    // pgbench gives no percentiles, and its rows are no share of the HTTP ceiling: the table prints "-".
    const row = formatTable([db], 1_000).split("\n")[2] ?? "";
    expect(row).toMatch(/^\| db-ceiling \| +21614 \| +- \| +- \| +- \|/);
    expect(row).toMatch(/\| +- \| +- \|$/);
  });

  it("locks, inserts and updates `rows` distinct owners of one block in one statement", () => {
    const script = pgbenchScript();
    expect(script.startsWith("\\set block random(0, :blocks - 1)\n")).toBe(true);
    expect(script).toContain("generate_series(0, :rows - 1)");
    expect(script).toContain("ORDER BY owner_id FOR UPDATE");
    expect(script.match(/;/g)).toHaveLength(3);
    expect(script).toContain("'bench_' || (:block + k * :blocks)");
    // The owners of block b: bench_<b + k * blocks>, every owner in exactly one block.
    const blocks = 100;
    const seen = new Set<number>();
    for (let b = 0; b < blocks; b++) for (let k = 0; k < 100; k++) seen.add(b + k * blocks);
    expect(seen.size).toBe(10_000);
  });
});

describe("summarize", () => {
  it("counts 422 as operations only where refusals are expected, and never as other non-2xx", () => {
    const r = cannon({ "201": 100, "422": 20, "500": 3 }, { errors: 1, timeouts: 2 });
    expect(summarize("hot", r, { refusalsExpected: true })).toMatchObject({
      ops: 120,
      opsPerS: 60,
      status2xx: 100,
      status422: 20,
      unexpectedNon2xx: 3,
      errors: 3,
    });
    expect(summarize("uniform", r, { refusalsExpected: false })).toMatchObject({
      ops: 100,
      unexpectedNon2xx: 23,
    });
  });
});

describe("targets and table", () => {
  const result = (scenario: string, opsPerS: number, p99Ms = 10): ScenarioResult => ({
    ...summarize(scenario, cannon({}), { refusalsExpected: false }),
    opsPerS,
    p99Ms,
  });

  it("marks each of the issue's targets met or missed from the measured numbers", () => {
    const checks = checkTargets([
      result("uniform", 15_000, 26),
      result("hot", 10_000),
      result("replay", 19_999),
    ]);
    expect(checks.map((c) => c.met)).toEqual([false, true, false]);
    expect(checks[0]?.measured).toBe("15000 ops/s, p99 26 ms");
  });

  it("holds uniform with events on to at least 85% of uniform in the same run, summed over the runs", () => {
    const met = checkTargets([
      result("uniform", 2_000),
      result("uniform-events", 1_500),
      result("uniform-events (2)", 1_900),
      result("uniform (2)", 2_000),
    ]);
    expect(met[1]).toMatchObject({ met: true, measured: "3400 vs 4000 ops/s summed over the runs (85.0%)" });
    const missed = checkTargets([result("uniform", 2_000), result("uniform-events", 1_699)]);
    expect(missed[1]?.met).toBe(false);
    expect(checkTargets([result("uniform", 2_000)])).toHaveLength(1);
    // uniform (3) and the auth-off runs are the auth comparison's, not the events'.
    const withAuthRuns = checkTargets([
      result("uniform", 2_000),
      result("uniform-events", 1_500),
      result("uniform-events (2)", 1_900),
      result("uniform (2)", 2_000),
      result("uniform-noauth", 9_000),
      result("uniform (3)", 9_000),
    ]);
    expect(withAuthRuns[1]?.measured).toBe("3400 vs 4000 ops/s summed over the runs (85.0%)");
  });

  it("reports the cost of auth from uniform (2) and (3) against the two auth-off runs", () => {
    const cost = authCost([
      result("uniform", 5_000),
      result("uniform (2)", 1_800),
      result("uniform-noauth", 2_000),
      result("uniform-noauth (2)", 2_000),
      result("uniform (3)", 1_800),
    ]);
    expect(cost).toEqual({ withAuth: 3_600, without: 4_000, cost: expect.closeTo(0.1, 10) });
    expect(authCost([result("uniform", 2_000), result("uniform (2)", 2_000)])).toBeUndefined();
  });

  it("prints one row per scenario with its share of the ceiling", () => {
    const table = formatTable([result("ceiling", 2_000), result("uniform", 500)], 2_000);
    const lines = table.split("\n");
    expect(lines).toHaveLength(4);
    expect(lines[3]).toContain("25.0%");
  });
});

describe("batch sizes from /metrics", () => {
  const text = (sum: number, count: number) =>
    [
      "# HELP ledger_group_commit_batch_size Commands per group-commit batch (one transaction), by app",
      "# TYPE ledger_group_commit_batch_size histogram",
      'ledger_group_commit_batch_size_bucket{le="1",app="app1"} 3',
      `ledger_group_commit_batch_size_sum{app="app1"} ${sum}`,
      `ledger_group_commit_batch_size_count{app="app1"} ${count}`,
      `ledger_group_commit_batch_size_sum{app="app2"} 5`,
      `ledger_group_commit_batch_size_count{app="app2"} 1`,
      "ledger_http_requests_total 7",
    ].join("\n");

  it("sums the histogram's sum and count over every label set", () => {
    expect(batchSizeTotals(text(120, 10))).toEqual({ sum: 125, count: 11 });
    expect(batchSizeTotals("")).toEqual({ sum: 0, count: 0 });
  });

  it("gives the mean batch between two readings, none when no batch ran", () => {
    const before = batchSizeTotals(text(120, 10));
    expect(batchMeanBetween(before, batchSizeTotals(text(1_120, 90)))).toBe(12.5);
    expect(batchMeanBetween(before, before)).toBeUndefined();
  });
});
