import { describe, expect, it } from "vitest";
import {
  checkTargets,
  formatTable,
  hotBody,
  ownerStride,
  parseBenchArgs,
  summarize,
  uniformBody,
  type AutocannonLike,
  type ScenarioResult,
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
    expect(parseBenchArgs(["--", "--quick", "--duration-s", "7", "--connections", "8"], {})).toMatchObject({
      durationS: 7,
      connections: 8,
    });
  });

  it.each([
    [["--duration-s", "0"]],
    [["--connections", "many"]],
    [["--admin-url", "postgres://postgres@db.example.com:5432/postgres"]],
    [["--admin-url", "http://127.0.0.1:5432/"]],
    [["--unknown"]],
  ])("refuses %j with a message", (argv) => {
    expect(typeof parseBenchArgs(argv, {})).toBe("string");
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

  it("prints one row per scenario with its share of the ceiling", () => {
    const table = formatTable([result("ceiling", 2_000), result("uniform", 500)], 2_000);
    const lines = table.split("\n");
    expect(lines).toHaveLength(4);
    expect(lines[3]).toContain("25.0%");
  });
});
