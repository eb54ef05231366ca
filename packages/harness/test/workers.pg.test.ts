// LEDGER_WORKERS: one app served by several processes on one port (node:cluster), each with its own
// pool, writing the same ledger. Posts from many connections land on both workers, every answer is
// right, the primary (not a worker) relays their events to NATS and every worker's /health says so,
// SIGTERM stops them all cleanly, and without DATABASE_URL more than one worker is refused.
import { randomBytes } from "node:crypto";
import { openDatabase } from "@ledger/core/db";
import { expectLedgerInvariants, testDatabaseUrl } from "@ledger/core/testing";
import { freshNatsStream, testNatsUrl, type TestStream } from "@ledger/core/testing/brokers";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AppProcess,
  createDatabase,
  dropDatabase,
  freePort,
  getBalance,
  postOnce,
  type RetryOptions,
} from "../src/index.js";

const WORKERS = 2;
const OWNERS = 20;
const POSTS_PER_OWNER = 10;
const REQUEST_TIMEOUT_MS = 15_000;
/** Every log line of the run is kept: two per post at LOG_LEVEL info. */
const LOG_LINES_MAX = 10_000;
const READ: RetryOptions = { timeoutMs: REQUEST_TIMEOUT_MS, giveUpAfterMs: 30_000 };

let database: { name: string; url: string } | undefined;
let app: AppProcess | undefined;
let stream: TestStream | undefined;

beforeAll(async () => {
  database = await createDatabase(testDatabaseUrl(), "ledger_workers");
  stream = await freshNatsStream();
  app = new AppProcess({
    app: "app1",
    port: await freePort(),
    databaseUrl: database.url,
    workers: WORKERS,
    logLevel: "info",
    logLinesMax: LOG_LINES_MAX,
    env: {
      LEDGER_EVENTS_URL: testNatsUrl(),
      LEDGER_EVENTS_STREAM: stream.stream,
      LEDGER_EVENTS_SUBJECT_PREFIX: stream.subjectPrefix,
    },
  });
  app.start();
  await app.waitHealthy({ timeoutMs: 60_000 });
}, 90_000);

afterAll(async () => {
  await app?.stop();
  await stream?.delete();
  if (database) await dropDatabase(testDatabaseUrl(), database.name);
});

/** The pids of the processes that logged a line whose message includes `msg` (pino logs carry the pid). */
function pidsLogging(output: string, msg: string): Set<number> {
  const pids = new Set<number>();
  for (const line of output.split("\n")) {
    if (!line.startsWith("{")) continue;
    const record = JSON.parse(line) as { pid?: number; msg?: string };
    if (record.msg?.includes(msg) && record.pid !== undefined) pids.add(record.pid);
  }
  return pids;
}

describe("LEDGER_WORKERS", () => {
  it("serves one port from several processes that share the ledger", async () => {
    const running = app;
    if (!running) throw new Error("app1 did not start");
    // Every worker logs its own "listening" line once it is serving.
    const deadline = Date.now() + 30_000;
    const listening = () => pidsLogging(running.recentOutput(LOG_LINES_MAX), "listening on");
    while (listening().size < WORKERS && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const workerPids = listening();
    expect(workerPids.size).toBe(WORKERS);

    const run = randomBytes(4).toString("hex");
    const owners = Array.from({ length: OWNERS }, (_, i) => `workers_${run}_${i}`);
    // Each owner gets CREDIT_ADD (+10) then spends: 10 posts at once per owner, all owners at once, over
    // fresh connections, so both workers take posts for the same owners.
    const results = await Promise.all(
      owners.flatMap((owner) =>
        Array.from({ length: POSTS_PER_OWNER }, (_, k) =>
          postOnce(
            running,
            { owner_id: owner, operation: k === 0 ? "CREDIT_ADD" : "CREDIT_SPEND", nonce: `${owner}-${k}` },
            REQUEST_TIMEOUT_MS,
          ),
        ),
      ),
    );
    // Whatever order they arrive in, each answer is definite: applied (201) or refused for want of
    // credits (422), and the balance read back is what the applied ones add up to.
    const answers = results.map((r) =>
      r.kind === "acked" ? r.status : r.kind === "refused" ? r.code : r.kind,
    );
    expect(answers.filter((a) => a !== 201 && a !== "INSUFFICIENT_BALANCE")).toEqual([]);
    const applied = new Map<string, number>();
    for (const [i, r] of results.entries()) {
      const owner = owners[Math.floor(i / POSTS_PER_OWNER)] ?? "";
      if (r.kind === "acked") applied.set(owner, (applied.get(owner) ?? 0) + r.result.entry.amount);
    }
    for (const owner of owners) {
      expect(await getBalance(running, owner, READ)).toBe(applied.get(owner) ?? 0);
    }

    // Each worker logged some of the posts.
    expect(pidsLogging(running.recentOutput(LOG_LINES_MAX), "ledger.post")).toEqual(workerPids);

    const db = await openDatabase({ url: database?.url, migrate: false });
    try {
      await expectLedgerInvariants(db);
    } finally {
      await db.close();
    }
  });

  it("relays from the primary, not from a worker; every worker's /health reports it; every event reaches NATS", async () => {
    const running = app;
    if (!running || !stream) throw new Error("app1 did not start");
    const primary = running.pid;
    const output = () => running.recentOutput(LOG_LINES_MAX);
    expect(pidsLogging(output(), "relay active")).toEqual(new Set([primary]));
    expect(pidsLogging(output(), "relay standby").size).toBe(0);

    const sql = postgres(database?.url ?? "", { max: 1, onnotice: () => {} });
    let head: number;
    try {
      const [row] = await sql<{ p: string }[]>`select last_position::text as p from ledger_event_counter`;
      head = Number(row?.p ?? 0);
    } finally {
      await sql.end();
    }
    expect(head).toBeGreaterThan(0);
    type EventsHealth = { role: string; broker_connected: boolean; pending: number };
    // A fresh connection per request: the cluster hands them to the workers in turn, so both answer.
    const health = async () => {
      const res = await fetch(`${running.baseUrl}/health`, { headers: { connection: "close" } });
      return ((await res.json()) as { events: EventsHealth }).events;
    };
    // The primary sends its state every second, with a lag it reads every second: wait until ten
    // answers in a row (both workers) show it caught up.
    const caughtUp = (e: EventsHealth) => e.role === "active" && e.broker_connected && e.pending === 0;
    const deadline = Date.now() + 30_000;
    let answers: EventsHealth[] = [];
    while (Date.now() < deadline) {
      answers = [];
      for (let i = 0; i < 10; i++) answers.push(await health());
      if (answers.every(caughtUp)) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    for (const events of answers) {
      expect(events).toMatchObject({ role: "active", broker_connected: true, pending: 0 });
    }
    expect((await stream.messages()).length).toBe(head);
  });

  it("stops every worker on SIGTERM and exits 0", async () => {
    const exit = await app?.stop();
    expect(exit).toEqual({ code: 0, signal: null });
  });

  it("refuses more than one worker without DATABASE_URL (embedded PGlite has one writer)", async () => {
    const embedded = new AppProcess({ app: "app1", port: await freePort(), workers: 2 });
    embedded.start();
    await expect(embedded.waitHealthy({ timeoutMs: 30_000 })).rejects.toThrow(/exited before it was healthy/);
    expect(embedded.recentOutput()).toContain("LEDGER_WORKERS: more than one worker needs DATABASE_URL");
    expect(embedded.recentOutput()).toMatch(/exited: code 2,/);
  });
});
