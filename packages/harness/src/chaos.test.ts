// The chaos run's command line and schedule, and its workload: what the run does is decided here, so a
// wrong default (no Postgres restart in the quick run, a remote database, credits that never expire
// within a run) is caught before it runs.
import { describe, expect, it } from "vitest";
import { parseChaosArgs, pgRestartCycles, type ChaosOptions } from "./chaos.js";
import { app1Catalog } from "@ledger/app1/operations";
import { app2Catalog } from "@ledger/app2/operations";
import { signedAmount } from "./model.js";
import {
  EXPIRES_IN_MS_MAX,
  HOLD_EXPIRES_IN_S_MAX,
  pathOf,
  seededRandom,
  Workload,
  type Request,
} from "./workload.js";

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

  it("sends the events to the machine's NATS unless told otherwise, and only to a nats:// URL", () => {
    expect(parsed([]).natsUrl).toBe("nats://127.0.0.1:4222");
    expect(parsed([], { TEST_NATS_URL: "nats://127.0.0.1:4333" }).natsUrl).toBe("nats://127.0.0.1:4333");
    expect(parsed(["--nats-url", "nats://10.1.1.1:4222"]).natsUrl).toBe("nats://10.1.1.1:4222");
    expect(typeof parseChaosArgs(["--nats-url", "http://127.0.0.1:4222"], {})).toBe("string");
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
    const ops = Array.from({ length: 2_000 }, () => workload.nextPost());
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
      return { ...workload.nextPost(), sentAtMs: nowMs };
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

describe("Workload.next: every kind of write", () => {
  /**
   * Draws writes and answers each as acknowledged (made-up ids), so the workload learns holds to
   * capture or release, entries to reverse and owners to reinstate, as it does from the ledger.
   */
  function drive(count: number) {
    const owners = ["hot", "a", "b", "c", "d"];
    const workload = new Workload({
      owners,
      hotShare: 0.25,
      random: seededRandom(11),
      noncePrefix: "run",
      clock: () => 0,
    });
    const requests: Request[] = [];
    const holds = new Map<string, { app: string; amount: number; operation: string }>();
    const entries = new Map<number, { app: string; amount: number }>();
    const suspended = new Set<string>();
    let id = 0;
    const entryOf = (owner: string, operation: string, amount: number) => ({
      id: ++id,
      app: "app1",
      operation,
      owner_id: owner,
      amount,
      balance_after: 100,
      sequence: id,
      nonce: `n${id}`,
      created_at: "2026-03-01T00:00:00.000Z",
    });
    const ack = <R>(result: R) => ({ kind: "acked" as const, status: 201, result });
    for (let i = 0; i < count; i++) {
      const r = workload.next();
      requests.push(r);
      const common = { app: r.app, attempts: 1, unknowns: [] };
      const figures = { balance: 100, available: 100, replayed: false };
      switch (r.kind) {
        case "post": {
          const entry = entryOf(
            r.body.owner_id,
            r.body.operation,
            signedAmount(r.app, r.body.operation, r.body.amount),
          );
          if (entry.amount !== 0) entries.set(entry.id, { app: r.app, amount: entry.amount });
          workload.observe({
            ...common,
            body: r.body,
            amount: entry.amount,
            outcome: ack({ owner_id: entry.owner_id, ...figures, entry }),
          });
          break;
        }
        case "hold": {
          const amount = -signedAmount(r.app, r.body.operation, r.body.amount);
          const hold = {
            id: `hold-${++id}`,
            owner_id: r.body.owner_id,
            app: r.app,
            operation: r.body.operation,
            amount,
            status: "active" as const,
            expires_at: "2026-03-01T00:00:01.000Z",
            created_at: "2026-03-01T00:00:00.000Z",
          };
          holds.set(hold.id, { app: r.app, amount, operation: r.body.operation });
          workload.observe({ ...common, kind: "hold", body: r.body, outcome: ack({ hold, ...figures }) });
          break;
        }
        case "release":
          workload.observe({
            ...common,
            kind: "release",
            holdId: r.holdId,
            body: r.body,
            outcome: { kind: "refused", status: 409, code: "HOLD_NOT_ACTIVE" },
          });
          break;
        case "reversal":
          workload.observe({
            ...common,
            kind: "reversal",
            entryId: r.entryId,
            body: r.body,
            outcome: { kind: "refused", status: 409, code: "ALREADY_REVERSED" },
          });
          break;
        case "suspension":
          suspended.add(r.ownerId);
          workload.observe({
            ...common,
            kind: "suspension",
            ownerId: r.ownerId,
            body: r.body,
            outcome: { kind: "refused", status: 409, code: "OWNER_ALREADY_SUSPENDED" },
          });
          break;
        case "reinstatement":
          suspended.delete(r.ownerId);
          workload.observe({
            ...common,
            kind: "reinstatement",
            ownerId: r.ownerId,
            body: r.body,
            outcome: { kind: "refused", status: 409, code: "OWNER_NOT_SUSPENDED" },
          });
          break;
        default:
          break;
      }
    }
    return { owners, requests, holds, entries };
  }

  it("sends holds, captures, releases, reversals, transfers, suspensions, reinstatements and batches", () => {
    const { requests } = drive(3_000);
    const counts = new Map<string, number>();
    for (const r of requests) counts.set(r.kind, (counts.get(r.kind) ?? 0) + 1);
    for (const kind of [
      "post",
      "hold",
      "capture",
      "release",
      "reversal",
      "transfer",
      "suspension",
      "reinstatement",
      "batch",
    ]) {
      expect(counts.get(kind) ?? 0, kind).toBeGreaterThan(10);
    }
    expect(counts.get("post") ?? 0).toBeGreaterThan(requests.length / 2);
  });

  it("acts only on what it was answered: its own holds through their app, reversible entries, owners it suspended", () => {
    const { owners, requests, holds, entries } = drive(3_000);
    const nonces = requests.flatMap((r) =>
      r.kind === "batch" ? r.body.operations.map((o) => o.nonce) : [r.body.nonce],
    );
    expect(new Set(nonces).size).toBe(nonces.length);
    const suspendedNow = new Set<string>();
    for (const r of requests) {
      switch (r.kind) {
        case "hold":
          expect(["CREDIT_SPEND", "CONTENT_CREATION", "TOKEN_USAGE"]).toContain(r.body.operation);
          expect(CATALOGS[r.app].get(r.body.operation)).toBeDefined();
          expect(r.body.expires_in_s).toBeGreaterThanOrEqual(1);
          expect(r.body.expires_in_s).toBeLessThanOrEqual(HOLD_EXPIRES_IN_S_MAX);
          break;
        case "capture":
        case "release": {
          const h = holds.get(r.holdId);
          expect(h?.app).toBe(r.app);
          if (r.body.amount !== undefined) {
            expect(h?.operation).toBe("TOKEN_USAGE");
            expect(r.body.amount).toBeLessThan(h?.amount ?? 0);
          }
          break;
        }
        case "reversal": {
          const e = entries.get(r.entryId);
          expect(e?.app).toBe(r.app);
          expect(r.body.amount ?? 1).toBeLessThanOrEqual(Math.abs(e?.amount ?? 0));
          break;
        }
        case "transfer":
          expect(r.body.from_owner_id).not.toBe(r.body.to_owner_id);
          expect(r.body.amount).toBeGreaterThanOrEqual(1);
          break;
        case "suspension":
          expect(r.ownerId).not.toBe(owners[0]);
          expect(r.body.reason).toBeTruthy();
          suspendedNow.add(r.ownerId);
          expect(suspendedNow.size).toBeLessThanOrEqual(2);
          break;
        case "reinstatement":
          expect(suspendedNow.has(r.ownerId)).toBe(true);
          suspendedNow.delete(r.ownerId);
          break;
        case "batch":
          expect(r.body.operations.length).toBeGreaterThanOrEqual(2);
          for (const item of r.body.operations) expect(CATALOGS[r.app].get(item.operation)).toBeDefined();
          break;
        case "post":
          break;
      }
    }
  });

  it("gives every write its route", () => {
    const { requests } = drive(500);
    const paths = new Set(
      requests.map((r) =>
        pathOf(r).replace(/[0-9a-z-]+(?=\/(capture|release|reversal|suspension|reinstatement)$)/, ":x"),
      ),
    );
    expect([...paths].sort()).toEqual(
      [
        "/ledger",
        "/ledger/batch",
        "/ledger/holds",
        "/ledger/holds/:x/capture",
        "/ledger/holds/:x/release",
        "/ledger/entries/:x/reversal",
        "/ledger/transfers",
        "/ledger/:x/suspension",
        "/ledger/:x/reinstatement",
      ].sort(),
    );
  });
});
