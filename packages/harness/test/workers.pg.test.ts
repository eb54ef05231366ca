// LEDGER_WORKERS: one app served by several processes on one port (node:cluster), each with its own
// pool, writing the same ledger. Posts from many connections land on both workers, every answer is
// right, SIGTERM stops them all cleanly, and without DATABASE_URL more than one worker is refused.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { openDatabase, verifyLedger } from "@ledger/core/db";
import { testDatabaseUrl } from "@ledger/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  APP_DIRS,
  APP_ENTRY,
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
const READ: RetryOptions = { timeoutMs: REQUEST_TIMEOUT_MS, giveUpAfterMs: 30_000 };

let database: { name: string; url: string } | undefined;
let app: AppProcess | undefined;

beforeAll(async () => {
  database = await createDatabase(testDatabaseUrl(), "ledger_workers");
  app = new AppProcess({
    app: "app1",
    port: await freePort(),
    databaseUrl: database.url,
    workers: WORKERS,
    logLevel: "info",
  });
  app.start();
  await app.waitHealthy({ timeoutMs: 60_000 });
}, 90_000);

afterAll(async () => {
  await app?.stop();
  if (database) await dropDatabase(testDatabaseUrl(), database.name);
});

function listeningPids(output: string): Set<number> {
  const pids = new Set<number>();
  for (const line of output.split("\n")) {
    if (!line.startsWith("{")) continue;
    const record = JSON.parse(line) as { pid?: number; msg?: string };
    if (record.msg?.includes("listening on") && record.pid !== undefined) pids.add(record.pid);
  }
  return pids;
}

describe("LEDGER_WORKERS", () => {
  it("serves one port from several processes that share the ledger", async () => {
    const running = app;
    if (!running) throw new Error("app1 did not start");
    // Every worker logs its own "listening" line once it is serving.
    const deadline = Date.now() + 30_000;
    while (listeningPids(running.recentOutput(200)).size < WORKERS && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(listeningPids(running.recentOutput(200)).size).toBe(WORKERS);

    const run = randomBytes(4).toString("hex");
    const owners = Array.from({ length: OWNERS }, (_, i) => `workers_${run}_${i}`);
    // Each owner gets CREDIT_ADD (+10) then spends: 10 posts at once per owner, all owners at once, over
    // fresh connections, so both workers take posts for the same owners.
    const results = await Promise.all(
      owners.flatMap((owner) =>
        Array.from({ length: POSTS_PER_OWNER }, (_, k) =>
          postOnce(
            running.baseUrl,
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
      expect(await getBalance(running.baseUrl, owner, READ)).toBe(applied.get(owner) ?? 0);
    }

    const db = await openDatabase({ url: database?.url, migrate: false });
    try {
      const report = await verifyLedger(db.db);
      expect(report.checks.filter((c) => c.violations > 0)).toEqual([]);
      expect(report.ok).toBe(true);
    } finally {
      await db.close();
    }
  });

  it("stops every worker on SIGTERM and exits 0", async () => {
    const exit = await app?.stop();
    expect(exit).toEqual({ code: 0, signal: null });
  });

  it("refuses more than one worker without DATABASE_URL (embedded PGlite has one writer)", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", APP_ENTRY], {
      cwd: APP_DIRS.app1,
      env: { PATH: process.env.PATH, LEDGER_WORKERS: "2", PORT: String(await freePort()) },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
    expect(code).toBe(2);
    expect(stderr).toContain("LEDGER_WORKERS: more than one worker needs DATABASE_URL");
  });
});
