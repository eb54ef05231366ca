// The console's route tests run against the real ledger apps in-process: app1 and app2 over one fresh
// database (PGlite in a temp directory, or a new Postgres database when the project is "postgres"), the
// client's fetch handing each request to the right app's app.request(). Keys are made the way an
// operator makes them, with `ledger keys create --json`, before the apps open the database.
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApp as createApp1 } from "@ledger/app1/app";
import { createApp as createApp2 } from "@ledger/app2/app";
import { createLedgerClient, type FetchLike, type LedgerClient, type LedgerPaths } from "@ledger/client";
import { openDatabase, type LedgerDatabase } from "@ledger/core/db";
import type { AppDeps } from "@ledger/core/http";
import { createDatabase, dropDatabase, testDatabaseUrl, testDriver } from "@ledger/core/testing";
import { silentLogger } from "@ledger/core/testing/http";
import { CORE_DIR, LEDGER_CLI } from "@ledger/harness";
import { createConsole, type ConsoleApp, type ConsoleOptions } from "../src/app.js";

export const APP1_URL = "http://app1.ledger.test";
export const APP2_URL = "http://app2.ledger.test";
export const SECRET = "a-test-secret-of-at-least-32-characters";

type Limits = NonNullable<AppDeps["auth"]>["limits"];

/** Rate limits that never limit: these tests are about who may do what, not how often. */
const unlimited: Limits = {
  consumeKey: () => Promise.resolve({ allowed: true, limit: 1_000_000, remaining: 1_000_000, resetS: 1 }),
  authAllowed: () => Promise.resolve({ allowed: true, limit: 1_000_000, remaining: 1_000_000, resetS: 60 }),
  authFailed: () => Promise.resolve(),
  stats: () => ({ refused: { key: 0, auth: 0 }, failOpen: 0 }),
};

export interface KeySpec {
  app: "app1" | "app2";
  scopes: readonly string[];
  name?: string;
}

export interface MadeKey {
  id: string;
  key: string;
  app: "app1" | "app2";
}

/** How long `ledger keys create` may take before it is killed (a cold tsx start is a few seconds). */
export const KEY_CLI_TIMEOUT_MS = 60_000;

/** `ledger keys create ... --json` as its own process, on the database `dbEnv` names. */
export async function createKeyWithCli(
  dbEnv: Record<string, string>,
  spec: KeySpec,
  opts: { timeoutMs?: number } = {},
): Promise<MadeKey> {
  const args = ["keys", "create", "--app", spec.app, ...spec.scopes.flatMap((s) => ["--scope", s]), "--json"];
  if (spec.name) args.push("--name", spec.name);
  const timeoutMs = opts.timeoutMs ?? KEY_CLI_TIMEOUT_MS;
  const out = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
    (resolve, reject) => {
      const child = spawn(process.execPath, ["--import", "tsx", LEDGER_CLI, ...args], {
        cwd: CORE_DIR,
        env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...dbEnv },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      // A CLI stuck on a lock or a database that does not answer must fail the suite, not hang it.
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(
          new Error(
            `ledger keys create (${spec.app}, ${spec.scopes.join(",")}) did not finish within ${timeoutMs} ms and was killed; stderr so far: ${stderr || "(none)"}`,
          ),
        );
      }, timeoutMs);
      child.stdout.on("data", (b: Buffer) => (stdout += b.toString("utf8")));
      child.stderr.on("data", (b: Buffer) => (stderr += b.toString("utf8")));
      child.once("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
      child.once("close", (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    },
  );
  if (out.code !== 0) throw new Error(`ledger keys create failed (exit ${out.code}): ${out.stderr}`);
  const made = JSON.parse(out.stdout) as { id: string; key: string };
  return { id: made.id, key: made.key, app: spec.app };
}

export interface World {
  consoleApp: ConsoleApp;
  /** Another console over the same apps (its own sign-in limiter, say). */
  newConsole(opts?: Partial<ConsoleOptions>): ConsoleApp;
  /** The URL of every request a console or client of this world sent to an app, in order. */
  requests: string[];
  /** A direct client of an app (setting up owners the way an app would, through the API). */
  ledger(app: "app1" | "app2", apiKey?: string): LedgerClient<LedgerPaths>;
  keys: MadeKey[];
  close(): Promise<void>;
}

/**
 * Both apps over a fresh database, auth required when keys are asked for (else LEDGER_AUTH=off), and
 * the console over them.
 */
export async function openWorld(keySpecs: readonly KeySpec[] | "auth-off"): Promise<World> {
  const cleanups: (() => Promise<void>)[] = [];
  let dbEnv: Record<string, string>;
  if (testDriver() === "postgres") {
    const adminUrl = testDatabaseUrl();
    const made = await createDatabase(adminUrl, "console_test");
    cleanups.push(() => dropDatabase(adminUrl, made.name));
    dbEnv = { DATABASE_URL: made.url };
  } else {
    const dir = await mkdtemp(join(tmpdir(), "console-test-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    dbEnv = { LEDGER_DATA_DIR: dir };
  }
  const keys: MadeKey[] = [];
  if (keySpecs !== "auth-off") for (const spec of keySpecs) keys.push(await createKeyWithCli(dbEnv, spec));
  const database: LedgerDatabase = await openDatabase(
    dbEnv.DATABASE_URL ? { url: dbEnv.DATABASE_URL } : { dataDir: dbEnv.LEDGER_DATA_DIR ?? "" },
  );
  cleanups.unshift(() => database.close());
  const deps: AppDeps = {
    db: database.db,
    ping: () => database.ping(),
    logger: silentLogger,
    ...(keySpecs === "auth-off" ? {} : { auth: { limits: unlimited, defaultRatePerS: 1_000_000 } }),
  };
  const apps = { [new URL(APP1_URL).host]: createApp1(deps), [new URL(APP2_URL).host]: createApp2(deps) };
  const requests: string[] = [];
  const fetch: FetchLike = async (request) => {
    requests.push(request.url);
    const app = apps[new URL(request.url).host];
    if (!app) throw new TypeError(`fetch failed: no app at ${request.url}`);
    return app.request(request);
  };
  const newConsole = (opts: Partial<ConsoleOptions> = {}) =>
    createConsole({
      urls: { app1: APP1_URL, app2: APP2_URL },
      secret: SECRET,
      fetch,
      // These tests sign in many times from one "address" (app.request() has none); one test sets its own.
      signInFailuresPerMin: 1_000,
      ...opts,
    });
  const consoleApp = newConsole();
  return {
    consoleApp,
    newConsole,
    requests,
    keys,
    ledger: (app, apiKey) =>
      createLedgerClient<LedgerPaths>({
        baseUrl: app === "app1" ? APP1_URL : APP2_URL,
        fetch,
        ...(apiKey ? { apiKey } : {}),
      }),
    close: async () => {
      for (const cleanup of cleanups) await cleanup();
    },
  };
}

/** A browser's session with the console: its cookie jar of one cookie, and form posts. */
export class Browser {
  cookie: string | undefined;
  constructor(readonly app: ConsoleApp) {}

  async get(path: string): Promise<Response> {
    return this.app.request(path, { headers: this.headers() });
  }

  async post(
    path: string,
    form: Record<string, string>,
    extra: Record<string, string> = {},
  ): Promise<Response> {
    const res = await this.app.request(path, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", ...this.headers(), ...extra },
      body: new URLSearchParams(form).toString(),
    });
    this.remember(res);
    return res;
  }

  async signIn(apiKey: string, app: "app1" | "app2" = "app1"): Promise<Response> {
    return this.post("/sign-in", { api_key: apiKey, app }, { origin: "http://localhost" });
  }

  /** The CSRF token of the page at `path`'s forms. */
  async csrf(path = "/"): Promise<string> {
    const html = await (await this.get(path)).text();
    const m = /name="csrf" value="([^"]+)"/.exec(html);
    if (!m?.[1]) throw new Error(`no CSRF token on ${path}`);
    return m[1];
  }

  private headers(): Record<string, string> {
    return this.cookie ? { cookie: this.cookie, host: "localhost" } : { host: "localhost" };
  }

  private remember(res: Response): void {
    const set = res.headers.get("set-cookie");
    if (!set) return;
    const [pair] = set.split(";");
    if (!pair) return;
    const [name, value] = pair.split("=");
    if (name !== "console_session") return;
    this.cookie = value ? pair : undefined;
  }
}
