// `pnpm bench`: app1 in production mode as a real OS process on a fresh Postgres database, driven over
// HTTP by autocannon, scenario by scenario, with `ledger verify` after each one.
//
//   ceiling   a trivial Hono route (bench-echo.ts) in its own process: the HTTP limit of this machine
//   uniform   10,000 owners (credited first), half CREDIT_ADD half CREDIT_SPEND, a new nonce per request
//   hot       one owner, one CREDIT_ADD for ten CREDIT_SPEND: 422 refusals are expected and counted apart
//   replay    a set of posts applied once, then sent again: 200 with replayed: true
//   baseline  uniform again with LEDGER_BATCH_SIZE_MAX=1 (group commit off: one transaction per request)
//
//   pnpm bench                 every scenario, 20 s each (plus warm-up)
//   pnpm bench --quick         4 s each: under a minute in all
//   pnpm bench --help          every option
//
// Traffic goes to 127.0.0.1 only. Exit status: 0 every verify passed; 1 a verify failed; 2 the run
// could not be carried out.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import autocannon from "autocannon";
import postgres from "postgres";
import {
  BENCH_USAGE,
  checkTargets,
  formatTable,
  hotBody,
  ownerId,
  ownerStride,
  parseBenchArgs,
  summarize,
  uniformBody,
  type BenchOptions,
  type PostBody,
  type ScenarioResult,
} from "./bench-report.js";
import { APP_DIRS, APP_ENTRY, REPO_ROOT } from "./paths.js";
import { createDatabase, dropDatabase } from "./postgres.js";
import { freePort, runLedgerCli } from "./processes.js";

const HEALTH_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 10_000;
const VERIFY_TIMEOUT_MS = 300_000;
const ECHO_ENTRY = join(REPO_ROOT, "packages/harness/src/bench-echo.ts");

/** Only what Node needs from our environment, plus the process's own configuration (as the harness does). */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const key of ["PATH", "HOME", "TMPDIR", "LANG", "TZ"]) {
    const value = process.env[key];
    if (value !== undefined) env[key] = value;
  }
  return { ...env, ...extra };
}

/**
 * A server process of the bench. The harness's AppProcess sets a fixed environment (no NODE_ENV, no
 * LEDGER_BATCH_SIZE_MAX), so the bench starts its own, the same way: `node --import tsx <entry>`.
 */
class BenchProcess {
  readonly baseUrl: string;
  readonly #lines: string[] = [];
  #child: ChildProcess | undefined;
  #exited: Promise<void> | undefined;

  constructor(
    readonly name: string,
    readonly port: number,
    private readonly entry: string,
    private readonly cwd: string,
    private readonly env: Record<string, string>,
    private readonly nodeArgs: string[] = [],
  ) {
    this.baseUrl = `http://127.0.0.1:${port}`;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  start(): void {
    const child = spawn(process.execPath, [...this.nodeArgs, "--import", "tsx", this.entry], {
      cwd: this.cwd,
      env: childEnv({ ...this.env, PORT: String(this.port), HOST: "127.0.0.1" }),
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.#child = child;
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on("line", (line) => {
        this.#lines.push(line);
        if (this.#lines.length > 100) this.#lines.shift();
      });
    }
    this.#exited = new Promise((resolve) =>
      child.once("close", () => {
        if (this.#child === child) this.#child = undefined;
        resolve();
      }),
    );
  }

  recentOutput(): string {
    return this.#lines.slice(-30).join("\n");
  }

  async waitHealthy(): Promise<void> {
    const deadline = Date.now() + HEALTH_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (!this.#child) throw new Error(`${this.name} exited before it was healthy:\n${this.recentOutput()}`);
      try {
        const res = await fetch(`${this.baseUrl}/health`, { signal: AbortSignal.timeout(1_000) });
        await res.arrayBuffer();
        if (res.status === 200) return;
      } catch {
        // not listening yet
      }
      await sleep(150);
    }
    throw new Error(`${this.name} not healthy within ${HEALTH_TIMEOUT_MS} ms:\n${this.recentOutput()}`);
  }

  /** Whether it is still running: an app that died under load makes the run void. */
  assertRunning(): void {
    if (!this.#child) throw new Error(`${this.name} exited during the run:\n${this.recentOutput()}`);
  }

  async stop(): Promise<void> {
    const child = this.#child;
    const exited = this.#exited;
    if (!child || !exited) return;
    child.kill("SIGTERM");
    const done = await Promise.race([exited.then(() => true), sleep(STOP_GRACE_MS).then(() => false)]);
    if (!done) {
      child.kill("SIGKILL");
      await exited;
    }
  }

  killNow(): void {
    this.#child?.kill("SIGKILL");
  }
}

interface LoadSpec {
  url: string;
  path: string;
  connections: number;
  durationS?: number;
  amount?: number;
  body: () => string;
  onResponse?: (status: number, body: string) => void;
}

async function load(spec: LoadSpec): Promise<autocannon.Result> {
  return autocannon({
    url: spec.url,
    connections: spec.connections,
    ...(spec.amount !== undefined ? { amount: spec.amount } : { duration: spec.durationS ?? 1 }),
    timeout: 10,
    requests: [
      {
        method: "POST",
        path: spec.path,
        headers: { "content-type": "application/json" },
        setupRequest: (req) => ({ ...req, body: spec.body() }),
        ...(spec.onResponse ? { onResponse: spec.onResponse } : {}),
      },
    ],
  });
}

interface MachineInfo {
  cores: number;
  cpuModel: string;
  node: string;
  postgres: string;
  settings: Record<string, string>;
}

async function machineInfo(adminUrl: string): Promise<MachineInfo> {
  let cpuModel = cpus()[0]?.model ?? "unknown";
  try {
    const line = readFileSync("/proc/cpuinfo", "utf8")
      .split("\n")
      .find((l) => l.startsWith("model name"));
    if (line) cpuModel = line.split(":").slice(1).join(":").trim();
  } catch {
    // not Linux: os.cpus() it is
  }
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    const [v] = await sql<{ version: string }[]>`select version()`;
    const settings: Record<string, string> = {};
    for (const name of ["synchronous_commit", "fsync", "shared_buffers", "max_connections"]) {
      const rows = await sql.unsafe<Record<string, string>[]>(`show ${name}`);
      settings[name] = rows[0]?.[name] ?? "?";
    }
    return { cores: cpus().length, cpuModel, node: process.version, postgres: v?.version ?? "?", settings };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

function log(message: string): void {
  process.stdout.write(`${message}\n`);
}

function describe(r: ScenarioResult): string {
  const codes = Object.entries(r.statusCodes)
    .map(([code, n]) => `${code}:${n}`)
    .join(" ");
  return `${r.scenario}: ${r.opsPerS} ops/s, p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, p99.9 ${r.p999Ms} ms, errors ${r.errors}, statuses ${codes}`;
}

async function run(opts: BenchOptions, spawned: BenchProcess[]): Promise<number> {
  const started = Date.now();
  const machine = await machineInfo(opts.adminUrl);
  log(`machine: ${machine.cores} cores, ${machine.cpuModel}, Node ${machine.node}`);
  log(`postgres: ${machine.postgres}`);
  log(
    `postgres settings: ${Object.entries(machine.settings)
      .map(([k, v]) => `${k}=${v}`)
      .join(", ")}`,
  );
  log(`app: app1, LEDGER_WORKERS=${opts.workers}, DB_POOL_SIZE=${opts.poolSize} per worker`);
  log(
    `load: autocannon, ${opts.connections} connections, ${opts.durationS} s per scenario after ${opts.warmupS} s warm-up`,
  );

  const results: ScenarioResult[] = [];
  const runId = randomBytes(4).toString("hex");
  const duration = { durationS: opts.durationS };
  const warm = { durationS: opts.warmupS };
  const c = opts.connections;

  // The ceiling, first, while nothing else runs.
  const echo = new BenchProcess("echo", await freePort(), ECHO_ENTRY, REPO_ROOT, { NODE_ENV: "production" });
  spawned.push(echo);
  echo.start();
  await echo.waitHealthy();
  const echoBody = () => JSON.stringify(uniformBody(0, 1, 1, runId));
  if (opts.warmupS > 0)
    await load({ url: echo.baseUrl, path: "/echo", connections: c, ...warm, body: echoBody });
  const ceiling = summarize(
    "ceiling",
    await load({ url: echo.baseUrl, path: "/echo", connections: c, ...duration, body: echoBody }),
    { refusalsExpected: false },
  );
  echo.assertRunning();
  await echo.stop();
  results.push(ceiling);
  log(describe(ceiling));

  const db = await createDatabase(opts.adminUrl, "bench");
  log(`database: ${db.name}`);
  let verifyFailed = false;
  try {
    const startApp = async (batchSizeMax: number) => {
      const app = new BenchProcess(
        `app1 (batch ${batchSizeMax})`,
        await freePort(),
        APP_ENTRY,
        APP_DIRS.app1,
        {
          NODE_ENV: "production",
          LOG_LEVEL: "warn",
          DATABASE_URL: db.url,
          DB_POOL_SIZE: String(opts.poolSize),
          LEDGER_BATCH_SIZE_MAX: String(batchSizeMax),
          LEDGER_WORKERS: String(opts.workers),
        },
        opts.cpuProfDir ? ["--cpu-prof", "--cpu-prof-dir", opts.cpuProfDir] : [],
      );
      spawned.push(app);
      app.start();
      await app.waitHealthy();
      return app;
    };
    const verify = async (r: ScenarioResult) => {
      const out = await runLedgerCli(["verify"], db.url, VERIFY_TIMEOUT_MS);
      r.verify = out.code === 0 ? "pass" : "FAIL";
      if (out.code !== 0) {
        verifyFailed = true;
        log(`verify after ${r.scenario} FAILED (exit ${out.code}):\n${out.stdout}\n${out.stderr}`);
      } else {
        log(`verify after ${r.scenario}: pass (${out.stdout.trim().split("\n").at(-1) ?? ""})`);
      }
    };

    let app = await startApp(500);
    const ledger = (a: BenchProcess) => ({ url: a.baseUrl, path: "/ledger", connections: c });

    // Every owner of the uniform mix gets 10 credits, so its debits can succeed.
    const stride = ownerStride(opts.owners);
    let credit = 0;
    const seeded = summarize(
      "seed",
      await load({
        ...ledger(app),
        amount: opts.owners,
        body: () =>
          JSON.stringify({
            operation: "CREDIT_ADD",
            owner_id: ownerId(credit),
            nonce: `${runId}-seed-${credit++}`,
          } satisfies PostBody),
      }),
      { refusalsExpected: false },
    );
    log(`seeded ${seeded.status2xx} owners (${seeded.opsPerS} ops/s), unexpected ${seeded.unexpectedNon2xx}`);

    const uniformScenario = async (name: string, target: BenchProcess) => {
      let i = 0;
      const body = () => JSON.stringify(uniformBody(i++, opts.owners, stride, `${runId}-${name}`));
      if (opts.warmupS > 0) await load({ ...ledger(target), ...warm, body });
      const r = summarize(name, await load({ ...ledger(target), ...duration, body }), {
        refusalsExpected: false,
      });
      target.assertRunning();
      return r;
    };

    const uniform = await uniformScenario("uniform", app);
    log(describe(uniform));
    await verify(uniform);
    results.push(uniform);

    let h = 0;
    const hotOwner = `hot_${runId}`;
    const hot = () => JSON.stringify(hotBody(h++, hotOwner, `${runId}-hot`));
    if (opts.warmupS > 0) await load({ ...ledger(app), ...warm, body: hot });
    const hotResult = summarize("hot", await load({ ...ledger(app), ...duration, body: hot }), {
      refusalsExpected: true,
    });
    app.assertRunning();
    log(describe(hotResult));
    await verify(hotResult);
    results.push(hotResult);

    // Replays: a set of posts applied once, then sent again round and round.
    const bodies: string[] = [];
    for (let k = 0; k < opts.replaySet; k++) {
      bodies.push(
        JSON.stringify({
          operation: "CREDIT_ADD",
          owner_id: `replay_${k % 1_000}`,
          nonce: `${runId}-replay-${k}`,
        } satisfies PostBody),
      );
    }
    let a = 0;
    const applied = summarize(
      "replay-apply",
      await load({ ...ledger(app), amount: bodies.length, body: () => bodies[a++ % bodies.length] ?? "" }),
      { refusalsExpected: false },
    );
    log(`replay set applied: ${applied.status2xx} posts (${applied.statusCodes["201"] ?? 0} new)`);
    let p = 0;
    let replayedTrue = 0;
    const replayBody = () => bodies[p++ % bodies.length] ?? "";
    const onResponse = (status: number, body: string) => {
      if (status === 200 && body.includes('"replayed":true')) replayedTrue += 1;
    };
    if (opts.warmupS > 0) await load({ ...ledger(app), ...warm, body: replayBody });
    const replay = summarize(
      "replay",
      await load({ ...ledger(app), ...duration, body: replayBody, onResponse }),
      { refusalsExpected: false },
    );
    replay.replayedTrue = replayedTrue;
    app.assertRunning();
    log(`${describe(replay)}, replayed:true ${replayedTrue}`);
    await verify(replay);
    results.push(replay);
    await app.stop();

    // Group commit off: one transaction per request, same uniform load on the same owners.
    app = await startApp(1);
    const baseline = await uniformScenario("baseline", app);
    log(describe(baseline));
    await verify(baseline);
    results.push(baseline);
    await app.stop();
  } finally {
    if (!opts.keepDatabase) await dropDatabase(opts.adminUrl, db.name);
    else log(`kept database ${db.name}`);
  }

  const ceilingOps = ceiling.opsPerS;
  log("");
  log(formatTable(results, ceilingOps));
  const uniform = results.find((r) => r.scenario === "uniform");
  const baseline = results.find((r) => r.scenario === "baseline");
  const speedUp =
    uniform && baseline && baseline.opsPerS > 0 ? uniform.opsPerS / baseline.opsPerS : undefined;
  if (speedUp !== undefined) log(`\ngroup commit speed-up (uniform / baseline): ${speedUp.toFixed(2)}x`);
  const targets = checkTargets(results);
  log("\ntargets:");
  for (const t of targets) log(`  ${t.met ? "met   " : "MISSED"} ${t.target}: ${t.measured}`);
  const wallS = Math.round((Date.now() - started) / 1000);
  log(`\nwall time ${wallS} s; verify ${verifyFailed ? "FAILED" : "passed after every scenario"}`);
  if (opts.jsonOut) {
    writeFileSync(
      opts.jsonOut,
      JSON.stringify({ options: opts, machine, results, speedUp, targets, wallS }, null, 2) + "\n",
    );
    log(`written ${opts.jsonOut}`);
  }
  return verifyFailed ? 1 : 0;
}

async function main(): Promise<void> {
  const parsed = parseBenchArgs(process.argv.slice(2), process.env);
  if (typeof parsed === "string") {
    process.stderr.write(`${parsed}\n\n${BENCH_USAGE}`);
    process.exit(2);
  }
  if ("help" in parsed) {
    process.stdout.write(BENCH_USAGE);
    return;
  }
  const spawned: BenchProcess[] = [];
  process.once("exit", () => spawned.forEach((s) => s.killNow()));
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      spawned.forEach((s) => s.killNow());
      process.exit(2);
    });
  }
  try {
    process.exitCode = await run(parsed, spawned);
  } catch (error) {
    process.stderr.write(`bench could not be carried out: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 2;
  } finally {
    await Promise.all(spawned.map((s) => s.stop()));
  }
}

await main();
