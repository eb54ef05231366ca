// The chaos run's command line and schedule, and its workload: what the run does is decided here, so a
// wrong default (no Postgres restart in the quick run, a remote database, credits that never expire
// within a run) is caught before it runs.
import { describe, expect, it } from "vitest";
import { parseChaosArgs, pgRestartCycles, type ChaosOptions } from "./chaos.js";
import { app1Catalog } from "@ledger/app1/operations";
import { app2Catalog } from "@ledger/app2/operations";
import { signedAmount } from "./model.js";
import { EXPIRES_IN_MS_MAX, seededRandom, Workload } from "./workload.js";

const CATALOGS = { app1: app1Catalog, app2: app2Catalog };

function parsed(argv: string[], env: Record<string, string | undefined> = {}): ChaosOptions {
  const result = parseChaosArgs(argv, env);
  if (typeof result === "string" || "help" in result)
    throw new Error(`not options: ${JSON.stringify(result)}`);
  return result;
}

describe("parseChaosArgs", () => {
  it("runs at least 20 kill cycles and a few Postgres restarts by default", () => {
    const opts = parsed([]);
    expect(opts.cycles).toBeGreaterThanOrEqual(20);
    expect(opts.pgRestarts).toBeGreaterThanOrEqual(2);
    expect(opts.adminUrl).toBe("postgres://postgres@127.0.0.1:5432/postgres");
  });

  it("--quick is short but still restarts Postgres; explicit flags win over it", () => {
    const quick = parsed(["--quick"]);
    expect(quick.cycles).toBeLessThan(10);
    expect(quick.pgRestarts).toBeGreaterThanOrEqual(1);
    expect(quick.durationS).toBeLessThanOrEqual(120);
    expect(parsed(["--quick", "--cycles", "8"]).cycles).toBe(8);
  });

  it("accepts the `--` pnpm passes through, and TEST_DATABASE_URL as the server", () => {
    const opts = parsed(["--", "--quick"], {
      TEST_DATABASE_URL: "postgres://postgres@localhost:5433/postgres",
    });
    expect(opts.quick).toBe(true);
    expect(opts.adminUrl).toBe("postgres://postgres@localhost:5433/postgres");
  });

  it.each([
    [["--admin-url", "postgres://postgres@db.example.com:5432/postgres"], /this machine/],
    [["--admin-url", "mysql://root@127.0.0.1/x"], /postgres:\/\//],
    [["--cycles", "3", "--pg-restarts", "4"], /cannot exceed --cycles/],
    [["--cycles", "0"], /cycles/],
    [["--concurrency", "1000"], /concurrency/],
    [["--cluster", "15; rm -rf /"], /cluster/],
    [["--nope"], /Unknown option/],
  ])("refuses %j", (argv, message) => {
    const result = parseChaosArgs(argv, {});
    expect(typeof result).toBe("string");
    expect(result).toMatch(message);
  });
});

describe("pgRestartCycles", () => {
  it("spreads the restarts evenly over the cycles, one per cycle", () => {
    expect([...pgRestartCycles(20, 3)]).toEqual([5, 10, 15]);
    expect([...pgRestartCycles(6, 1)]).toEqual([3]);
    expect(pgRestartCycles(20, 0).size).toBe(0);
    for (const [cycles, restarts] of [
      [20, 5],
      [6, 6],
      [2, 2],
    ] as const) {
      const chosen = [...pgRestartCycles(cycles, restarts)];
      expect(chosen).toHaveLength(restarts);
      expect(chosen.every((c) => c >= 1 && c <= cycles)).toBe(true);
    }
  });
});

describe("Workload", () => {
  it("gives every operation a fresh nonce, an operation of its app, and a valid amount", () => {
    const owners = ["hot", "a", "b", "c"];
    const workload = new Workload({ owners, hotShare: 0.25, random: seededRandom(42), noncePrefix: "run" });
    const ops = Array.from({ length: 2_000 }, () => workload.next());
    expect(new Set(ops.map((o) => o.body.nonce)).size).toBe(ops.length);
    for (const { app, body } of ops) {
      expect(owners).toContain(body.owner_id);
      expect(() => signedAmount(app, body.operation, body.amount)).not.toThrow();
    }
    const debits = ops.filter(({ app, body }) => signedAmount(app, body.operation, body.amount) < 0);
    expect(debits.length).toBeGreaterThan(ops.length / 2);
    expect(new Set(ops.map((o) => o.app))).toEqual(new Set(["app1", "app2"]));
    const hot = ops.filter((o) => o.body.owner_id === "hot").length;
    expect(hot).toBeGreaterThan(ops.length * 0.25);
  });

  it("sends credits that expire within seconds of the moment each request is made, where allowed", () => {
    let nowMs = Date.parse("2026-03-01T12:00:00.000Z");
    const workload = new Workload({
      owners: ["hot", "a"],
      hotShare: 0.25,
      random: seededRandom(9),
      noncePrefix: "run",
      clock: () => nowMs,
    });
    const ops = Array.from({ length: 2_000 }, () => {
      nowMs += 37;
      return { ...workload.next(), sentAtMs: nowMs };
    });
    const expiring = ops.filter((o) => o.body.expires_at !== undefined);
    for (const { app, body, sentAtMs } of expiring) {
      expect(CATALOGS[app].get(body.operation)?.allowsExpiresAt).toBe(true);
      const inMs = Date.parse(body.expires_at ?? "") - sentAtMs;
      expect(inMs).toBeGreaterThanOrEqual(1_000);
      expect(inMs).toBeLessThanOrEqual(EXPIRES_IN_MS_MAX);
    }
    // From both apps, about as often as CREDIT_ADD without expiry; PROMO_CREDIT from app2 alone.
    const plainAdds = ops.filter((o) => o.body.operation === "CREDIT_ADD" && !o.body.expires_at);
    expect(new Set(expiring.map((o) => `${o.app} ${o.body.operation}`))).toEqual(
      new Set(["app1 CREDIT_ADD", "app2 CREDIT_ADD"]),
    );
    expect(expiring.length).toBeGreaterThan(plainAdds.length / 2);
    expect(expiring.length).toBeLessThan(plainAdds.length * 2);
    const promos = ops.filter((o) => o.body.operation === "PROMO_CREDIT");
    expect(promos.length).toBeGreaterThan(0);
    expect(new Set(promos.map((o) => o.app))).toEqual(new Set(["app2"]));
  });

  it("makes the same choices for the same seed", () => {
    const make = () =>
      new Workload({
        owners: ["x", "y"],
        hotShare: 0.5,
        random: seededRandom(7),
        noncePrefix: "p",
        clock: () => 0,
      });
    const [a, b] = [make(), make()];
    const draw = (w: Workload) => Array.from({ length: 50 }, () => w.next());
    expect(draw(a)).toEqual(draw(b));
  });
});
