// `pnpm bench`: app1 in production mode as a real OS process on a fresh Postgres database, driven over
// HTTP by autocannon, scenario by scenario, with `ledger verify` after each one.
//
//   ceiling   a trivial Hono route (bench-echo.ts) in its own process: the HTTP limit of this machine
//   uniform   10,000 owners (credited first), half CREDIT_ADD half CREDIT_SPEND, a new nonce per request
//   uniform-events  the same with the relay publishing every event to NATS JetStream (a stream of the
//             run's own), started caught up; then how long it took to drain, and the stream's count.
//             Run twice, then uniform once more (ABBA order: the machine's speed drifts)
//   uniform-noauth  uniform with LEDGER_AUTH=off, twice, then uniform (3): the cost of API keys (every
//             other scenario sends a key, as production requires)
//   hot       one owner, one CREDIT_ADD for ten CREDIT_SPEND: 422 refusals are expected and counted apart
//   replay    a set of posts applied once, then sent again: 200 with replayed: true
//   batched   POST /ledger/batch, 100 uniform operations per request (not atomic): operations/s
//   db-ceiling  the same rows written by pgbench on a scratch copy of the schema, in transactions of 100
//   hold-capture  POST /ledger/holds then its capture, per iteration: holds + captures per second
//   baseline  uniform again with LEDGER_BATCH_SIZE_MAX=1 (group commit off: one transaction per request)
//
//   pnpm bench                 every scenario, 20 s each (plus warm-up)
//   pnpm bench --quick         4 s each: under a minute in all
//   pnpm bench --help          every option
//
// Traffic goes to 127.0.0.1 only. Exit status: 0 every verify passed; 1 a verify failed; 2 the run
// could not be carried out.
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import autocannon from "autocannon";
import postgres from "postgres";
import {
  batchBody,
  batchedVsDbCeiling,
  BENCH_USAGE,
  authCost,
  batchMeanBetween,
  batchSizeTotals,
  checkTargets,
  countBatchItems,
  dbCeilingResult,
  formatTable,
  holdBody,
  hotBody,
  ownerId,
  ownerStride,
  parseBenchArgs,
  summarize,
  summarizeItems,
  uniformBody,
  type BenchOptions,
  type ItemCounts,
  type PostBody,
  type ScenarioResult,
} from "./bench-report.js";
import { freshNatsStream } from "@ledger/core/testing/brokers";
import { REPO_ROOT } from "./paths.js";
import { measureDbCeiling } from "./pgbench.js";
import { createDatabase, dropDatabase } from "./postgres.js";
import { AppProcess, createKey, freePort, runLedgerCli, ServerProcess } from "./processes.js";

const HEALTH_TIMEOUT_MS = 60_000;
/** After the events scenario's load, the relay must have published everything within this. */
const RELAY_DRAIN_TIMEOUT_MS = 120_000;
const VERIFY_TIMEOUT_MS = 300_000;
const ECHO_ENTRY = join(REPO_ROOT, "packages/harness/src/bench-echo.ts");

/** An app that died under load makes the run void. */
function assertRunning(server: ServerProcess): void {
  if (!server.running) throw new Error(`${server.name} exited during the run:\n${server.recentOutput()}`);
}

interface LoadSpec {
  url: string;
  path: string;
  connections: number;
  durationS?: number;
  amount?: number;
  body: () => string;
  onResponse?: (status: number, body: string) => void;
  /** Instead of path, body and onResponse: requests each connection sends in turn (a hold, its capture). */
  requests?: autocannon.Request[];
}

/** The API key every scenario sends (LEDGER_AUTH=required, production's default); set once it is made. */
let authorization: Record<string, string> = {};

async function load(spec: LoadSpec): Promise<autocannon.Result> {
  return autocannon({
    url: spec.url,
    connections: spec.connections,
    ...(spec.amount !== undefined ? { amount: spec.amount } : { duration: spec.durationS ?? 1 }),
    timeout: 10,
    requests: spec.requests?.map((r) => ({ ...r, headers: { ...r.headers, ...authorization } })) ?? [
      {
        method: "POST",
        path: spec.path,
        headers: { "content-type": "application/json", ...authorization },
        setupRequest: (req) => ({ ...req, body: spec.body() }),
        ...(spec.onResponse ? { onResponse: spec.onResponse } : {}),
      },
    ],
  });
}

/** What a connection of the hold-capture scenario remembers between a hold and its capture. */
interface HoldContext {
  i?: number;
  holdId?: string;
}

/**
 * The hold-capture requests: each connection places a hold (CREDIT_SPEND, 1 credit, on the uniform
 * mix's next owner), then captures it. `check` counts what came back other than a 201 hold or capture.
 */
function holdCaptureRequests(
  next: () => number,
  body: (i: number) => string,
  noncePrefix: string,
  check: { unexpected: number },
): autocannon.Request[] {
  const json = { "content-type": "application/json" };
  return [
    {
      method: "POST",
      path: "/ledger/holds",
      headers: json,
      setupRequest: (req, context) => {
        const c = context as HoldContext;
        c.i = next();
        c.holdId = undefined;
        return { ...req, body: body(c.i) };
      },
      onResponse: (status, text, context) => {
        const c = context as HoldContext;
        try {
          const id = status === 201 ? (JSON.parse(text) as { hold?: { id?: unknown } }).hold?.id : undefined;
          c.holdId = typeof id === "string" ? id : undefined;
        } catch {
          c.holdId = undefined;
        }
        if (c.holdId === undefined) check.unexpected += 1;
      },
    },
    {
      method: "POST",
      headers: json,
      setupRequest: (req, context) => {
        const c = context as HoldContext;
        // No hold to capture (the hold was refused): capture a hold that does not exist, counted as unexpected.
        const path = `/ledger/holds/${encodeURIComponent(c.holdId ?? "missing")}/capture`;
        return { ...req, path, body: JSON.stringify({ nonce: `${noncePrefix}-capture-${c.i ?? -1}` }) };
      },
      onResponse: (status, text) => {
        const captured = status === 201 && text.includes('"status":"captured"');
        if (!captured) check.unexpected += 1;
      },
    },
  ];
}

/** The position of the newest event. */
async function eventHead(url: string): Promise<number> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql<{ p: string }[]>`select last_position::text as p from ledger_event_counter`;
    return Number(row?.p ?? 0);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Moves the NATS relay's checkpoint to the head, so it relays only what is written from now on. */
async function startRelayAtHead(url: string): Promise<number> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql<{ p: string }[]>`
      insert into ledger_event_relays as r (name, position, updated_at)
      select 'nats', last_position, now() from ledger_event_counter
      on conflict (name) do update set position = excluded.position, updated_at = now()
      returning position::text as p`;
    return Number(row?.p ?? 0);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Waits until /health says no event is pending; false when it still has some after timeoutMs. */
async function relayDrained(baseUrl: string, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    try {
      const res = await fetch(`${baseUrl}/health`);
      const body = (await res.json()) as { events?: { pending?: number } };
      if (body.events?.pending === 0) return true;
    } catch {
      // Not answering this moment: asked again below.
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

interface MachineInfo {
  cores: number;
  cpuModel: string;
  node: string;
  postgres: string;
  settings: Record<string, string>;
}

async function machineInfo(adminUrl: string): Promise<MachineInfo> {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql<(Record<string, string> & { version: string })[]>`
      select version(), current_setting('synchronous_commit') as synchronous_commit,
             current_setting('fsync') as fsync, current_setting('shared_buffers') as shared_buffers,
             current_setting('max_connections') as max_connections`;
    const { version = "?", ...settings } = row ?? {};
    return {
      cores: cpus().length,
      cpuModel: cpus()[0]?.model ?? "unknown",
      node: process.version,
      postgres: version,
      settings,
    };
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
  const batches = r.batchMean === undefined ? "" : `, ${r.batchMean} commands per batch`;
  return `${r.scenario}: ${r.opsPerS} ops/s, p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, p99.9 ${r.p999Ms} ms, errors ${r.errors}, statuses ${codes}${batches}`;
}

/** The group-commit totals an app's /metrics reports (summed over its workers); undefined for a server without them. */
async function batchTotalsOf(target: ServerProcess): Promise<{ sum: number; count: number } | undefined> {
  try {
    const res = await fetch(`${target.baseUrl}/metrics`, { signal: AbortSignal.timeout(15_000) });
    if (!res.ok) return undefined;
    return batchSizeTotals(await res.text());
  } catch {
    return undefined;
  }
}

async function run(opts: BenchOptions, spawned: ServerProcess[]): Promise<number> {
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
  const echo = new ServerProcess({
    name: "echo",
    cwd: REPO_ROOT,
    entry: ECHO_ENTRY,
    port: await freePort(),
    env: { NODE_ENV: "production" },
  });
  spawned.push(echo);
  echo.start();
  await echo.waitHealthy({ timeoutMs: HEALTH_TIMEOUT_MS });
  /** Warm-up (not measured), then the measured load; the server must still be running after it. */
  const measure = async (
    name: string,
    target: ServerProcess,
    path: string,
    body: () => string,
    expect: { refusalsExpected: boolean; onResponse?: LoadSpec["onResponse"] },
  ): Promise<ScenarioResult> => {
    const spec = { url: target.baseUrl, path, connections: c, body };
    if (opts.warmupS > 0) await load({ ...spec, ...warm });
    const batchesBefore = await batchTotalsOf(target);
    const result = await load({ ...spec, ...duration, onResponse: expect.onResponse });
    assertRunning(target);
    const summary = summarize(name, result, { refusalsExpected: expect.refusalsExpected });
    const batchesAfter = await batchTotalsOf(target);
    const batchMean = batchesBefore && batchesAfter && batchMeanBetween(batchesBefore, batchesAfter);
    return batchMean === undefined ? summary : { ...summary, batchMean };
  };

  const echoBody = () => JSON.stringify(uniformBody(0, 1, 1, runId));
  const ceiling = await measure("ceiling", echo, "/echo", echoBody, { refusalsExpected: false });
  await echo.stop();
  results.push(ceiling);
  log(describe(ceiling));

  const db = await createDatabase(opts.adminUrl, "bench");
  log(`database: ${db.name}`);
  // The apps run as in production (LEDGER_AUTH=required): every request carries a key whose rate is
  // far above what this machine can send, so the limiter counts but never refuses.
  const key = await createKey(db.url, {
    app: "app1",
    scopes: ["read", "write"],
    ratePerS: 100_000,
    name: "bench",
  });
  authorization = { authorization: `Bearer ${key}` };
  log(
    "auth: LEDGER_AUTH=required, one key (rate 100000/s) on every request; uniform-noauth runs with LEDGER_AUTH=off",
  );
  let verifyFailed = false;
  try {
    const startApp = async (batchSizeMax: number, env: Record<string, string> = {}) => {
      const app = new AppProcess({
        app: "app1",
        port: await freePort(),
        databaseUrl: db.url,
        poolSizeMax: opts.poolSize,
        workers: opts.workers,
        logLevel: "warn",
        env: { NODE_ENV: "production", LEDGER_BATCH_SIZE_MAX: String(batchSizeMax), ...env },
        nodeArgs: opts.cpuProfDir ? ["--cpu-prof", "--cpu-prof-dir", opts.cpuProfDir] : [],
      });
      spawned.push(app);
      app.start();
      await app.waitHealthy({ timeoutMs: HEALTH_TIMEOUT_MS });
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
    const ledger = (a: ServerProcess) => ({ url: a.baseUrl, path: "/ledger", connections: c });

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

    const uniformBodies = (name: string) => {
      let i = 0;
      return () => JSON.stringify(uniformBody(i++, opts.owners, stride, `${runId}-${name}`));
    };
    const report = async (r: ScenarioResult, extra = "") => {
      log(`${describe(r)}${extra}`);
      await verify(r);
      results.push(r);
    };

    await report(
      await measure("uniform", app, "/ledger", uniformBodies("uniform"), { refusalsExpected: false }),
    );

    // Events on: the app's processes relay every event to NATS while the same load runs; the relay starts
    // at the head (what earlier scenarios wrote is not its backlog), so this is the steady cost. This
    // machine's speed drifts by tens of percent over a minute, so the comparison runs in ABBA order
    // (uniform, events, events, uniform) and the target compares the sums.
    const uniformEvents = async (name: string) => {
      await app.stop();
      const stream = await freshNatsStream(opts.natsUrl);
      try {
        const from = await startRelayAtHead(db.url);
        app = await startApp(500, {
          LEDGER_EVENTS_URL: opts.natsUrl,
          LEDGER_EVENTS_STREAM: stream.stream,
          LEDGER_EVENTS_SUBJECT_PREFIX: stream.subjectPrefix,
        });
        const r = await measure(name, app, "/ledger", uniformBodies(name.replace(/\W+/g, "-")), {
          refusalsExpected: false,
        });
        const loadEnded = Date.now();
        const drained = await relayDrained(app.baseUrl, RELAY_DRAIN_TIMEOUT_MS);
        const drainMs = Date.now() - loadEnded;
        const expected = (await eventHead(db.url)) - from;
        const published = await stream.count();
        r.events = { published, expected, drainMs };
        if (!drained || published !== expected) {
          verifyFailed = true;
          log(
            `${name}: ${published} of ${expected} events on the stream; relay ${drained ? "drained" : "NOT drained"}`,
          );
        }
        await report(
          r,
          `, relay drained ${drainMs} ms after the load; ${published} of ${expected} events on the stream`,
        );
      } finally {
        await app.stop();
        await stream.delete();
      }
      app = await startApp(500);
    };
    await uniformEvents("uniform-events");
    await uniformEvents("uniform-events (2)");
    await report(
      await measure("uniform (2)", app, "/ledger", uniformBodies("uniform-2"), { refusalsExpected: false }),
    );

    // The cost of auth: the same load with LEDGER_AUTH=off, ABBA again (uniform (2), off, off, uniform (3)).
    const uniformNoAuth = async (name: string) => {
      await app.stop();
      app = await startApp(500, { LEDGER_AUTH: "off" });
      try {
        await report(
          await measure(name, app, "/ledger", uniformBodies(name.replace(/\W+/g, "-")), {
            refusalsExpected: false,
          }),
        );
      } finally {
        await app.stop();
      }
      app = await startApp(500);
    };
    await uniformNoAuth("uniform-noauth");
    await uniformNoAuth("uniform-noauth (2)");
    await report(
      await measure("uniform (3)", app, "/ledger", uniformBodies("uniform-3"), { refusalsExpected: false }),
    );

    let h = 0;
    const hotOwner = `hot_${runId}`;
    const hot = () => JSON.stringify(hotBody(h++, hotOwner, `${runId}-hot`));
    await report(await measure("hot", app, "/ledger", hot, { refusalsExpected: true }));

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
    const replay = await measure("replay", app, "/ledger", replayBody, {
      refusalsExpected: false,
      onResponse,
    });
    replay.replayedTrue = replayedTrue;
    await report(replay, `, replayed:true ${replayedTrue}`);

    // Batched: the uniform mix, opts.batchSize operations per POST /ledger/batch (not atomic), each
    // answer's items checked; operations per second are the items answered 201 (or 200).
    let b = 0;
    const batchSpec = {
      url: app.baseUrl,
      path: "/ledger/batch",
      connections: opts.batchConnections,
      body: () => JSON.stringify(batchBody(b++, opts.batchSize, opts.owners, stride, `${runId}-batched`)),
    };
    if (opts.warmupS > 0) await load({ ...batchSpec, ...warm });
    const items: ItemCounts = { ok: 0, unexpected: 0 };
    const batchedRun = await load({
      ...batchSpec,
      ...duration,
      onResponse: (status, body) => countBatchItems(items, status, body, opts.batchSize),
    });
    assertRunning(app);
    const batched = summarizeItems("batched", batchedRun, items);
    await report(batched, `, ${batched.requestsPerS ?? 0} requests/s, unexpected items ${items.unexpected}`);

    // The database ceiling, beside it, while the app is idle: the same rows by pgbench.
    const dbCeiling = await measureDbCeiling({
      adminUrl: opts.adminUrl,
      owners: opts.owners,
      rows: opts.batchSize,
      clients: opts.pgbenchClients,
      durationS: opts.durationS,
      warmupS: opts.warmupS,
    });
    if (typeof dbCeiling === "string") {
      log(`db-ceiling: not measured: ${dbCeiling}`);
    } else {
      const row = dbCeilingResult(dbCeiling, opts.batchSize, opts.durationS);
      results.push(row);
      log(
        `db-ceiling: ${row.opsPerS} rows/s (${dbCeiling.tps.toFixed(1)} transactions/s of ${opts.batchSize}, ` +
          `${opts.pgbenchClients} clients, latency ${dbCeiling.latencyAvgMs} ms on average, failed ${dbCeiling.failed})`,
      );
    }

    // Hold then capture, per connection in turn; ops are holds + captures answered 201.
    let hc = 0;
    const holdCheck = { unexpected: 0 };
    const holdSpec = (check: { unexpected: number }) => ({
      ...ledger(app),
      body: () => "",
      requests: holdCaptureRequests(
        () => hc++,
        (i) => JSON.stringify(holdBody(i, opts.owners, stride, `${runId}-hc`)),
        `${runId}-hc`,
        check,
      ),
    });
    if (opts.warmupS > 0) await load({ ...holdSpec({ unexpected: 0 }), ...warm });
    const holdRun = await load({ ...holdSpec(holdCheck), ...duration });
    assertRunning(app);
    await report(
      summarize("hold-capture", holdRun, { refusalsExpected: false }),
      `, unexpected answers ${holdCheck.unexpected}`,
    );
    await app.stop();

    // Group commit off: one transaction per request, same uniform load on the same owners.
    app = await startApp(1);
    await report(
      await measure("baseline", app, "/ledger", uniformBodies("baseline"), { refusalsExpected: false }),
    );
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
  const auth = authCost(results);
  if (auth !== undefined) {
    log(
      `auth cost (uniform with a key against LEDGER_AUTH=off, ABBA): ${auth.withAuth} vs ${auth.without} ops/s summed, ${(auth.cost * 100).toFixed(1)}% ${auth.cost >= 0 ? "fewer" : "more (noise)"}`,
    );
  }
  const vsDb = batchedVsDbCeiling(results);
  if (vsDb !== undefined) log(vsDb);
  const targets = checkTargets(results);
  log("\ntargets:");
  for (const t of targets) log(`  ${t.met ? "met   " : "MISSED"} ${t.target}: ${t.measured}`);
  const wallS = Math.round((Date.now() - started) / 1000);
  log(`\nwall time ${wallS} s; verify ${verifyFailed ? "FAILED" : "passed after every scenario"}`);
  if (opts.jsonOut) {
    writeFileSync(
      opts.jsonOut,
      JSON.stringify({ options: opts, machine, results, speedUp, authCost: auth, targets, wallS }, null, 2) +
        "\n",
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
  const spawned: ServerProcess[] = [];
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
