// What 1,000 concurrent event streams cost a server. app1 runs in a child process of its own, booted
// exactly as its entry point boots it (`boot` from @ledger/core/http), on a fresh Postgres database,
// and answers this script's requests for its process.memoryUsage() (after a full GC) over IPC. The
// script opens the streams (plain HTTP requests reading text/event-stream), writes credits over HTTP,
// checks that every stream got exactly its owner's events, in order, and prints the server's memory
// before and after, the database connections it held meanwhile, and how long SIGTERM took with every
// stream still open.
//
//   node --import tsx packages/harness/src/sse-streams.ts [--streams 1000] [--owners 100] [--writes 5]
//        [--admin-url postgres://postgres@127.0.0.1:5432/postgres]
//
// Exit status: 0 every stream got its events and the server stayed within the budget; 1 it did not;
// 2 the run could not be carried out.
import { fork, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { request, Agent, type IncomingMessage } from "node:http";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import postgres from "postgres";
import { z } from "zod";
import { adminUrlFrom, localPostgresUrl, parseCli } from "./cli-args.js";
import { createDatabase, dropDatabase } from "./postgres.js";
import { freePort } from "./processes.js";

/** The budget the README states: the server's RSS growth for 1,000 open streams. */
export const SSE_BUDGET_MIB_PER_1000_STREAMS = 64;

const SERVE_FLAG = "--serve";
const HEALTH_TIMEOUT_MS = 60_000;
const DELIVERY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;
const WRITE_CONCURRENCY = 50;
const MIB = 1024 * 1024;

const USAGE = `usage: node --import tsx packages/harness/src/sse-streams.ts [options]
  --streams N     concurrent streams to open (default 1000)
  --owners N      owners they are spread over (default 100)
  --writes N      credits written per owner while the streams are open (default 5)
  --admin-url URL the local Postgres to create the run's database on (default TEST_DATABASE_URL,
                  else postgres://postgres@127.0.0.1:5432/postgres)`;

const optionsSchema = z.object({
  streams: z.coerce.number().int().min(1).max(10_000),
  owners: z.coerce.number().int().min(1).max(10_000),
  writes: z.coerce.number().int().min(1).max(100),
  adminUrl: localPostgresUrl,
});
type Options = z.infer<typeof optionsSchema>;

type Memory = NodeJS.MemoryUsage;

/** The server role: app1, booted as its main.ts boots it, answering "memory" messages. */
async function serve(): Promise<void> {
  const { appEnvSchema, boot, parseEnv } = await import("@ledger/core/http");
  const { APP_NAME, createApp } = await import("@ledger/app1/app");
  process.on("message", (message) => {
    if (message !== "memory") return;
    // Started with --expose-gc: a full collection first, so the heap figure is what is live.
    (globalThis as { gc?: () => void }).gc?.();
    process.send?.(process.memoryUsage());
  });
  const env = parseEnv(appEnvSchema(8000), process.env);
  await boot(env, APP_NAME, [{ name: APP_NAME, port: env.PORT, create: createApp }]);
}

class Server {
  readonly baseUrl: string;
  readonly #child: ChildProcess;
  readonly exited: Promise<number | null>;

  constructor(port: number, databaseUrl: string) {
    this.baseUrl = `http://127.0.0.1:${port}`;
    this.#child = fork(fileURLToPath(import.meta.url), [SERVE_FLAG], {
      execArgv: ["--import", "tsx", "--expose-gc"],
      env: {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? "",
        PORT: String(port),
        HOST: "127.0.0.1",
        DATABASE_URL: databaseUrl,
        DB_POOL_SIZE: "10",
        LOG_LEVEL: "warn",
        NODE_ENV: "production",
        // What is measured is the streams' memory; API keys are the security suite's and the bench's.
        LEDGER_AUTH: "off",
      },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    this.exited = new Promise((resolve) => this.#child.once("exit", (code) => resolve(code)));
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  async waitHealthy(): Promise<void> {
    const deadline = Date.now() + HEALTH_TIMEOUT_MS;
    while (Date.now() < deadline) {
      try {
        const res = await fetch(`${this.baseUrl}/health`, { signal: AbortSignal.timeout(1_000) });
        await res.arrayBuffer();
        if (res.status === 200) return;
      } catch {
        // Not listening yet.
      }
      await sleep(200);
    }
    throw new Error(`the server did not answer /health within ${HEALTH_TIMEOUT_MS} ms`);
  }

  memory(): Promise<Memory> {
    return new Promise((resolve) => {
      this.#child.once("message", (m) => resolve(m as Memory));
      this.#child.send("memory");
    });
  }

  kill(signal: NodeJS.Signals): void {
    this.#child.kill(signal);
  }
}

/** One open stream: the events it received, as (position, entry id) pairs. */
interface Stream {
  ownerId: string;
  /** The position the stream said it started after (its first, bare `id:` frame). */
  startedAfter: Promise<number>;
  events: { position: number; entryId: number }[];
  ended: Promise<void>;
  response: IncomingMessage | undefined;
}

function openStream(baseUrl: string, ownerId: string, agent: Agent): Stream {
  let started!: (position: number) => void;
  let failed!: (error: Error) => void;
  let ended!: () => void;
  const stream: Stream = {
    ownerId,
    startedAfter: new Promise<number>((resolve, reject) => {
      started = resolve;
      failed = reject;
    }),
    events: [],
    ended: new Promise<void>((resolve) => (ended = resolve)),
    response: undefined,
  };
  const req = request(`${baseUrl}/ledger/${ownerId}/stream`, { agent }, (res) => {
    stream.response = res;
    if (res.statusCode !== 200) failed(new Error(`stream for ${ownerId}: HTTP ${res.statusCode}`));
    res.setEncoding("utf8");
    let text = "";
    res.on("data", (chunk: string) => {
      text += chunk;
      for (let end = text.indexOf("\n\n"); end >= 0; end = text.indexOf("\n\n")) {
        const frame = text.slice(0, end).split("\n");
        text = text.slice(end + 2);
        const id = frame.find((l) => l.startsWith("id: "))?.slice(4);
        const data = frame.find((l) => l.startsWith("data: "))?.slice(6);
        if (id === undefined) continue;
        if (data === undefined) started(Number(id));
        else {
          const event = JSON.parse(data) as { position: number; data: { id: number } };
          stream.events.push({ position: event.position, entryId: event.data.id });
        }
      }
    });
    res.on("close", ended);
  });
  req.on("error", (error) => {
    failed(error);
    ended();
  });
  req.end();
  return stream;
}

async function postCredit(baseUrl: string, ownerId: string): Promise<number> {
  const res = await fetch(`${baseUrl}/ledger`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      owner_id: ownerId,
      operation: "CREDIT_ADD",
      nonce: `sse-${randomBytes(12).toString("hex")}`,
    }),
  });
  const body = (await res.json()) as { entry?: { id: number } };
  if (res.status !== 201 || body.entry === undefined) {
    throw new Error(`POST /ledger for ${ownerId}: HTTP ${res.status} ${JSON.stringify(body)}`);
  }
  return body.entry.id;
}

/** Runs the tasks with at most `limit` in flight. */
async function inParallel<T>(tasks: readonly (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = new Array<T>(tasks.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, tasks.length) }, async () => {
      for (let i = next++; i < tasks.length; i = next++) results[i] = await (tasks[i] as () => Promise<T>)();
    }),
  );
  return results;
}

async function connectionsTo(adminUrl: string, database: string): Promise<number> {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql<
      { n: number }[]
    >`select count(*)::int as n from pg_stat_activity where datname = ${database}`;
    return rows[0]?.n ?? NaN;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

const mib = (bytes: number) => `${(bytes / MIB).toFixed(1)} MiB`;

async function run(opts: Options): Promise<boolean> {
  const { name, url } = await createDatabase(opts.adminUrl, "ledger_sse");
  const server = new Server(await freePort(), url);
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  try {
    await server.waitHealthy();
    const owners = Array.from(
      { length: opts.owners },
      (_, i) => `sse_${i}_${randomBytes(3).toString("hex")}`,
    );
    // Warm-up: every code path the run takes, once, before the baseline (a write, a stream, its end).
    await inParallel(
      owners.map((o) => () => postCredit(server.baseUrl, o)),
      WRITE_CONCURRENCY,
    );
    const warm = openStream(server.baseUrl, owners[0] ?? "", agent);
    await warm.startedAfter;
    warm.response?.destroy();
    await warm.ended;
    await sleep(500);
    const before = await server.memory();

    const streams = Array.from({ length: opts.streams }, (_, i) =>
      openStream(server.baseUrl, owners[i % owners.length] ?? "", agent),
    );
    await Promise.all(streams.map((s) => s.startedAfter));
    const open = await server.memory();
    const connectionsOpen = await connectionsTo(opts.adminUrl, name);

    const written = new Map<string, number[]>(owners.map((o) => [o, []]));
    const writeStart = performance.now();
    await inParallel(
      owners.flatMap((o) =>
        Array.from({ length: opts.writes }, () => async () => {
          written.get(o)?.push(await postCredit(server.baseUrl, o));
        }),
      ),
      WRITE_CONCURRENCY,
    );
    const deadline = Date.now() + DELIVERY_TIMEOUT_MS;
    while (streams.some((s) => s.events.length < opts.writes) && Date.now() < deadline) await sleep(50);
    const deliveredMs = performance.now() - writeStart;
    const after = await server.memory();
    const connectionsAfter = await connectionsTo(opts.adminUrl, name);

    // Each stream: its owner's entries, each once, in the order they were written (entry ids grow
    // with each owner's sequence), at growing positions.
    let wrong = 0;
    for (const s of streams) {
      const expected = [...(written.get(s.ownerId) ?? [])].sort((a, b) => a - b);
      const positions = s.events.map((e) => e.position);
      const inOrder = positions.every((p, i) => i === 0 || p > (positions[i - 1] ?? Infinity));
      if (!inOrder || JSON.stringify(s.events.map((e) => e.entryId)) !== JSON.stringify(expected)) wrong += 1;
    }

    const stopStart = performance.now();
    server.kill("SIGTERM");
    const code = await Promise.race([server.exited, sleep(STOP_TIMEOUT_MS).then(() => "timeout" as const)]);
    const stopMs = performance.now() - stopStart;
    const endedStreams = (
      await Promise.all(streams.map((s) => Promise.race([s.ended.then(() => 1), sleep(1_000).then(() => 0)])))
    ).reduce((a: number, b) => a + b, 0);

    const growth = after.rss - before.rss;
    const budgetBytes = (SSE_BUDGET_MIB_PER_1000_STREAMS * MIB * opts.streams) / 1000;
    const rows: [string, string, string, string][] = [
      ["before (idle, warmed up)", mib(before.rss), mib(before.heapUsed), mib(before.external)],
      [`${opts.streams} streams open`, mib(open.rss), mib(open.heapUsed), mib(open.external)],
      [
        `after ${opts.owners * opts.writes} writes delivered`,
        mib(after.rss),
        mib(after.heapUsed),
        mib(after.external),
      ],
    ];
    const out = [
      `server: app1 (boot from @ledger/core/http) in a child process, pid ${server.pid}, on Postgres database ${name}`,
      `memory: the server's own process.memoryUsage() after a full GC (--expose-gc), asked over IPC`,
      "",
      "| server | rss | heap used | external |",
      "|---|---|---|---|",
      ...rows.map((r) => `| ${r.join(" | ")} |`),
      "",
      `rss growth for ${opts.streams} streams: ${mib(growth)} (${(growth / opts.streams / 1024).toFixed(1)} KiB a stream); heap growth ${mib(after.heapUsed - before.heapUsed)}`,
      `budget: ${mib(budgetBytes)} of rss growth for ${opts.streams} streams (${SSE_BUDGET_MIB_PER_1000_STREAMS} MiB per 1,000): ${growth <= budgetBytes ? "met" : "EXCEEDED"}`,
      `database connections held by the server: ${connectionsOpen} with the streams open, ${connectionsAfter} after the writes (pool of 10)`,
      `events: ${opts.owners * opts.writes} credits over ${opts.owners} owners, ${opts.writes} to each of ${opts.streams} streams; written and delivered to every stream in ${(deliveredMs / 1000).toFixed(1)} s`,
      `streams with exactly their owner's events, in order: ${opts.streams - wrong} of ${opts.streams}`,
      `SIGTERM with every stream open: ${code === "timeout" ? `still running after ${STOP_TIMEOUT_MS} ms` : `exited (code ${code}) in ${Math.round(stopMs)} ms`}; streams ended by the server: ${endedStreams} of ${opts.streams}`,
    ];
    process.stdout.write(`${out.join("\n")}\n`);
    if (code === "timeout") server.kill("SIGKILL");
    return wrong === 0 && growth <= budgetBytes && code === 0;
  } finally {
    server.kill("SIGKILL");
    await server.exited;
    agent.destroy();
    await dropDatabase(opts.adminUrl, name);
  }
}

async function main(): Promise<void> {
  if (process.argv.includes(SERVE_FLAG)) return serve();
  const parsed = parseCli(
    process.argv.slice(2),
    {
      streams: { type: "string", default: "1000" },
      owners: { type: "string", default: "100" },
      writes: { type: "string", default: "5" },
      "admin-url": { type: "string" },
    },
    optionsSchema,
    (v) => ({
      streams: v.streams,
      owners: v.owners,
      writes: v.writes,
      adminUrl: adminUrlFrom(v, process.env),
    }),
  );
  if (typeof parsed === "string") {
    process.stderr.write(`${parsed}\n${USAGE}\n`);
    process.exit(2);
  }
  if ("help" in parsed) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  try {
    process.exit((await run(parsed)) ? 0 : 1);
  } catch (error) {
    process.stderr.write(`sse-streams: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(2);
  }
}

await main();
