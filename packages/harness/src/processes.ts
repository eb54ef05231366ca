// The apps as real OS processes: started from their entry points with `node --import tsx` (no wrapper
// in between, so a SIGKILL hits the server itself), on a port of their own, against one database.
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { APP_DIRS, APP_ENTRY, CORE_DIR, LEDGER_CLI, type AppName } from "./paths.js";

/** A server process: a TypeScript entry run with `node --import tsx`, listening on 127.0.0.1:port. */
export interface ServerProcessOptions {
  /** For messages: "app1", "echo", ... */
  name: string;
  cwd: string;
  /** The entry file, relative to cwd. */
  entry: string;
  port: number;
  /** The process's configuration besides PORT and HOST. */
  env: Record<string, string>;
  /** Arguments to node before the entry (`--cpu-prof`, say). */
  nodeArgs?: string[];
  /** Lines of the process's output kept for failure reports. */
  logLinesMax?: number;
}

export interface AppProcessOptions {
  app: AppName;
  port: number;
  /** Unset: the app runs on embedded PGlite (and refuses more than one worker). */
  databaseUrl?: string;
  /** Connections in the app's postgres.js pool (DB_POOL_SIZE). */
  poolSizeMax?: number;
  logLevel?: string;
  /** Server processes sharing the port (LEDGER_WORKERS); default 1. */
  workers?: number | "auto";
  /** More configuration (NODE_ENV, LEDGER_BATCH_SIZE_MAX, ...); wins over the options above. */
  env?: Record<string, string>;
  nodeArgs?: string[];
  logLinesMax?: number;
  /**
   * The API key the harness's requests to this app carry (client.ts's Endpoint), for an app run with
   * LEDGER_AUTH=required. Unset: requests carry none.
   */
  apiKey?: string;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface WaitHealthyOptions {
  timeoutMs: number;
  /** Start the process again whenever it has exited (an app booted while Postgres is down exits 1). */
  respawn?: boolean;
  signal?: AbortSignal;
}

const HEALTH_TIMEOUT_MS = 1_000;
const HEALTH_POLL_MS = 150;
/** Between two boots of one app, so an app that cannot boot yet does not spin. */
const RESPAWN_DELAY_MS = 500;
const STOP_GRACE_MS = 5_000;

/**
 * The environment an app starts with: only what Node needs from ours, plus the app's configuration.
 * Inheriting everything would hand the app whatever the caller runs under (vitest's variables, a
 * NODE_OPTIONS, a LEDGER_DATA_DIR) and make a run depend on the shell it was started from.
 */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const key of ["PATH", "HOME", "TMPDIR", "LANG", "TZ"]) {
    const value = process.env[key];
    if (value !== undefined) env[key] = value;
  }
  return { ...env, ...extra };
}

/** One server process, which can be killed and started again on the same port. */
export class ServerProcess {
  readonly name: string;
  readonly port: number;
  readonly baseUrl: string;
  /** Processes spawned so far. */
  spawned = 0;
  /** Processes that exited on their own before they answered /health (booted while Postgres was down, say). */
  failedBoots = 0;
  /** Processes that exited on their own after they had answered /health: a crash nobody asked for. */
  crashes = 0;
  /** For each crash: the exit status and the last lines the process wrote that were not JSON logs. */
  readonly crashReports: string[] = [];
  /** Log lines at level error or fatal, over every process. */
  errorLines = 0;
  readonly #opts: ServerProcessOptions;
  readonly #logLines: string[] = [];
  #child: ChildProcess | undefined;
  #exited: Promise<ExitInfo> | undefined;
  #healthySinceSpawn = false;
  #lastSpawnAt = 0;
  #killRequested = false;

  constructor(opts: ServerProcessOptions) {
    this.#opts = opts;
    this.name = opts.name;
    this.port = opts.port;
    this.baseUrl = `http://127.0.0.1:${opts.port}`;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** The last lines the app wrote, for a failure message. */
  recentOutput(lines = 30): string {
    return this.#logLines.slice(-lines).join("\n");
  }

  start(): void {
    if (this.#child) throw new Error(`${this.name} is already running (pid ${this.#child.pid})`);
    const child = spawn(
      process.execPath,
      [...(this.#opts.nodeArgs ?? []), "--import", "tsx", this.#opts.entry],
      {
        cwd: this.#opts.cwd,
        env: childEnv({ ...this.#opts.env, PORT: String(this.port), HOST: "127.0.0.1" }),
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    this.spawned += 1;
    this.#healthySinceSpawn = false;
    this.#killRequested = false;
    this.#lastSpawnAt = Date.now();
    this.#child = child;
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream }).on("line", (line) => this.#record(line));
    }
    child.once("error", (error) => this.#record(`[harness] ${this.name}: ${error.message}`));
    // "close", not "exit": it comes after the output pipes are drained, so a crash's last words are in.
    this.#exited = new Promise<ExitInfo>((resolve) => {
      child.once("close", (code, signal) => {
        if (this.#child === child) this.#child = undefined;
        if (!this.#killRequested) {
          if (this.#healthySinceSpawn) {
            this.crashes += 1;
            const plain = this.#logLines.filter((l) => !l.startsWith("{")).slice(-8);
            this.crashReports.push(`pid ${child.pid} exited with code ${code}:\n${plain.join("\n")}`);
          } else {
            this.failedBoots += 1;
          }
        }
        this.#record(`[harness] ${this.name} pid ${child.pid} exited: code ${code}, signal ${signal}`);
        resolve({ code, signal });
      });
    });
  }

  #record(line: string): void {
    // pino levels: 50 error, 60 fatal.
    if (/"level":(50|60)\b/.test(line)) this.errorLines += 1;
    this.#logLines.push(line);
    const max = this.#opts.logLinesMax ?? 200;
    if (this.#logLines.length > max) this.#logLines.splice(0, this.#logLines.length - max);
  }

  /** Sends the signal and waits for the process to be gone. A no-op when it is not running. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<ExitInfo | undefined> {
    const child = this.#child;
    const exited = this.#exited;
    if (!child || !exited) return undefined;
    this.#killRequested = true;
    child.kill(signal);
    return exited;
  }

  /** SIGKILL without waiting: for a process 'exit' handler, where nothing asynchronous runs any more. */
  killNow(): void {
    this.#killRequested = true;
    this.#child?.kill("SIGKILL");
  }

  /**
   * SIGTERM (the app closes its server and pool), then SIGKILL if it is still there after a grace
   * period. Returns how it exited: `signal` SIGKILL means the grace period ran out.
   */
  async stop(): Promise<ExitInfo | undefined> {
    const exited = this.#exited;
    if (!this.#child || !exited) return undefined;
    this.#killRequested = true;
    this.#child.kill("SIGTERM");
    const done = await Promise.race([exited, sleep(STOP_GRACE_MS).then(() => undefined)]);
    return done ?? (await this.kill("SIGKILL"));
  }

  /** GET /health answered 200 within a second. */
  async healthy(): Promise<boolean> {
    try {
      const res = await fetch(`${this.baseUrl}/health`, { signal: AbortSignal.timeout(HEALTH_TIMEOUT_MS) });
      await res.arrayBuffer();
      return res.status === 200;
    } catch {
      return false;
    }
  }

  /**
   * Waits until /health answers 200. With respawn, an exited process is started again (no more often
   * than every RESPAWN_DELAY_MS). Throws with the app's last output when the time is up.
   */
  async waitHealthy(opts: WaitHealthyOptions): Promise<void> {
    const deadline = Date.now() + opts.timeoutMs;
    while (Date.now() < deadline) {
      opts.signal?.throwIfAborted();
      if (!this.#child) {
        if (!opts.respawn)
          throw new Error(`${this.name} exited before it was healthy:\n${this.recentOutput()}`);
        const wait = this.#lastSpawnAt + RESPAWN_DELAY_MS - Date.now();
        if (wait > 0) await sleep(wait);
        this.start();
      }
      if (await this.healthy()) {
        this.#healthySinceSpawn = true;
        return;
      }
      await sleep(HEALTH_POLL_MS);
    }
    throw new Error(
      `${this.name} not healthy within ${opts.timeoutMs} ms; last output:\n${this.recentOutput()}`,
    );
  }
}

/** One ledger app (app1 or app2) as a server process on its own port. */
export class AppProcess extends ServerProcess {
  readonly app: AppName;
  readonly apiKey: string | undefined;

  constructor(opts: AppProcessOptions) {
    super({
      name: opts.app,
      cwd: APP_DIRS[opts.app],
      entry: APP_ENTRY,
      port: opts.port,
      nodeArgs: opts.nodeArgs,
      logLinesMax: opts.logLinesMax,
      env: {
        ...(opts.databaseUrl === undefined ? {} : { DATABASE_URL: opts.databaseUrl }),
        DB_POOL_SIZE: String(opts.poolSizeMax ?? 8),
        LOG_LEVEL: opts.logLevel ?? "warn",
        LEDGER_WORKERS: String(opts.workers ?? 1),
        ...opts.env,
      },
    });
    this.app = opts.app;
    this.apiKey = opts.apiKey;
  }
}

/** A port nothing listens on right now, on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error("no port assigned"))));
    });
  });
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `ledger <args>` (packages/ledger-core/src/cli/ledger.ts) as its own process against a database. */
export async function runLedgerCli(
  args: string[],
  databaseUrl: string,
  timeoutMs = 60_000,
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", LEDGER_CLI, ...args], {
      cwd: CORE_DIR,
      env: childEnv({ DATABASE_URL: databaseUrl }),
      stdio: ["ignore", "pipe", "pipe"],
      timeout: timeoutMs,
      killSignal: "SIGKILL",
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => err.push(chunk));
    child.once("error", reject);
    child.once("close", (code) =>
      resolve({
        code,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      }),
    );
  });
}

/** Creates an API key with `ledger keys create --json` on a database; returns the key itself. */
export async function createKey(
  databaseUrl: string,
  opts: { app: string; scopes: readonly string[]; ratePerS?: number; name?: string },
): Promise<string> {
  const args = ["keys", "create", "--app", opts.app, ...opts.scopes.flatMap((s) => ["--scope", s]), "--json"];
  if (opts.ratePerS !== undefined) args.push("--rate", String(opts.ratePerS));
  if (opts.name !== undefined) args.push("--name", opts.name);
  const made = await runLedgerCli(args, databaseUrl);
  if (made.code !== 0) throw new Error(`ledger keys create failed (exit ${made.code}): ${made.stderr}`);
  return (JSON.parse(made.stdout) as { key: string }).key;
}
