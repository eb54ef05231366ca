// The real Postgres the harness runs on: a fresh database per run, and (for the chaos run) control of
// the local cluster itself, to stop it in immediate mode, as a crash would, and start it again.
import { execFileSync, spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import postgres from "postgres";

export { createDatabase, dropDatabase } from "@ledger/core/testing/postgres";

function admin(adminUrl: string) {
  return postgres(adminUrl, { max: 1, onnotice: () => {}, connect_timeout: 10 });
}

/** Rows in ledger_entries, the whole table, and how many of them are EXPIRY entries (the ledger's own). */
export async function countEntries(databaseUrl: string): Promise<{ total: number; expiry: number }> {
  const sql = admin(databaseUrl);
  try {
    const rows = await sql<{ total: string; expiry: string }[]>`select count(*)::text as total,
      (count(*) filter (where operation = 'EXPIRY'))::text as expiry from ledger_entries`;
    return { total: Number(rows[0]?.total ?? "NaN"), expiry: Number(rows[0]?.expiry ?? "NaN") };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * Grants with an unspent remainder whose expires_at passed more than `graceS` seconds ago, by the
 * database's clock: each should have been expired by now, by a write or by a sweeper.
 */
export async function countOverdueGrants(databaseUrl: string, graceS: number): Promise<number> {
  const sql = admin(databaseUrl);
  try {
    const rows = await sql<{ n: string }[]>`select count(*)::text as n from ledger_grants
      where remaining > 0 and expires_at <= now() - make_interval(secs => ${graceS})`;
    return Number(rows[0]?.n ?? "NaN");
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Holds still active more than `graceS` seconds after their expires_at: each should have been expired. */
export async function countOverdueHolds(databaseUrl: string, graceS: number): Promise<number> {
  const sql = admin(databaseUrl);
  try {
    const rows = await sql<{ n: string }[]>`select count(*)::text as n from ledger_holds
      where status = 'active' and expires_at <= now() - make_interval(secs => ${graceS})`;
    return Number(rows[0]?.n ?? "NaN");
  } finally {
    await sql.end({ timeout: 5 });
  }
}

interface RunResult {
  code: number | null;
  output: string;
}

/**
 * Runs a command in a session of its own (detached), so a Ctrl-C in the terminal reaches the harness,
 * which then starts Postgres again, and not a pg_ctlcluster halfway through a start.
 */
function run(command: string, args: string[], timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { detached: true, stdio: ["ignore", "pipe", "pipe"] });
    const chunks: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => chunks.push(c));
    child.stderr.on("data", (c: Buffer) => chunks.push(c));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", (error) => {
      clearTimeout(timer);
      resolve({ code: null, output: error.message });
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, output: Buffer.concat(chunks).toString("utf8").trim() });
    });
  });
}

export interface ClusterOptions {
  /** "15/main"; default: the newest version under /etc/postgresql, cluster "main". */
  cluster?: string | undefined;
  host: string;
  port: number;
}

const START_ATTEMPTS_MAX = 10;
const READY_TIMEOUT_MS = 60_000;

/**
 * The machine's Postgres cluster, driven with pg_ctlcluster (as root). Other work on this machine uses
 * it too, so it is never left stopped: `stoppedByUs` says a start is owed, `start` retries until the
 * server answers, and `startSync` is there for a process 'exit' handler, the last line of defence.
 */
export class LocalCluster {
  readonly version: string;
  readonly name: string;
  readonly host: string;
  readonly port: number;
  stoppedByUs = false;

  constructor(opts: ClusterOptions) {
    const [version, name] = (opts.cluster ?? `${newestVersion()}/main`).split("/");
    if (!version || !name) throw new Error(`cluster must look like 15/main, not ${opts.cluster}`);
    this.version = version;
    this.name = name;
    this.host = opts.host;
    this.port = opts.port;
  }

  get label(): string {
    return `${this.version}/${this.name}`;
  }

  async isReady(): Promise<boolean> {
    const result = await run("pg_isready", ["-q", "-h", this.host, "-p", String(this.port)], 10_000);
    return result.code === 0;
  }

  /** `pg_ctlcluster stop -m immediate`: every backend dies at once, nothing is flushed but the WAL. */
  async stopImmediate(): Promise<void> {
    this.stoppedByUs = true;
    const result = await run("pg_ctlcluster", this.#args("stop", "-m", "immediate"), 60_000);
    if (result.code !== 0) throw new Error(`pg_ctlcluster stop failed (${result.code}): ${result.output}`);
  }

  /** Starts the cluster and waits until it accepts connections; retries a start that fails. */
  async start(): Promise<void> {
    let last = "";
    for (let attempt = 1; attempt <= START_ATTEMPTS_MAX; attempt++) {
      const result = await run("pg_ctlcluster", this.#args("start"), 120_000);
      if (result.code === 0 || (await this.isReady())) break;
      last = result.output;
      await sleep(1_000);
    }
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (await this.isReady()) {
        this.stoppedByUs = false;
        return;
      }
      await sleep(250);
    }
    throw new Error(`Postgres ${this.label} is not ready after starting it (last output: ${last})`);
  }

  /** Starts the cluster unless it is already accepting connections. */
  async ensureRunning(): Promise<void> {
    if (await this.isReady()) {
      this.stoppedByUs = false;
      return;
    }
    await this.start();
  }

  /** For a process 'exit' handler, where nothing asynchronous runs any more. */
  startSync(): void {
    try {
      execFileSync("pg_ctlcluster", this.#args("start"), { stdio: "ignore", timeout: 120_000 });
    } catch {
      // Already running, or it could not be started: nothing more can be done from an exit handler.
    }
  }

  #args(...rest: string[]): string[] {
    return ["--skip-systemctl-redirect", this.version, this.name, ...rest];
  }
}

function newestVersion(): string {
  const versions = readdirSync("/etc/postgresql")
    .filter((v) => /^\d+(\.\d+)?$/.test(v))
    .sort((a, b) => Number(a) - Number(b));
  const newest = versions.at(-1);
  if (!newest) throw new Error("no Postgres cluster under /etc/postgresql");
  return newest;
}
