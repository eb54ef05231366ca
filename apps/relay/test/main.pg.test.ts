// apps/relay as a process: it refuses to start without its two URLs (exit 2, saying which); with them it
// opens the database, takes the relay's lock, publishes the outbox to the stream its env names, and on
// SIGTERM stops and exits 0 with the lock released. One run has a broker on a port nothing listens on (the
// relay keeps retrying it, as while a broker is down), the other a test stream of its own, deleted after.
import { spawn } from "node:child_process";
import net from "node:net";
import { defineCatalog, LedgerService, sharedOperations } from "@ledger/core";
import { openDatabase } from "@ledger/core/db";
import { createDatabase, dropDatabase, freshNonce, testDatabaseUrl } from "@ledger/core/testing";
import { freshNatsStream, testNatsUrl } from "@ledger/core/testing/brokers";
import postgres from "postgres";
import { describe, expect, it, onTestFinished } from "vitest";

const APP_DIR = new URL("..", import.meta.url).pathname;

interface Started {
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stdout: () => string;
  stderr: () => string;
  kill: (signal: NodeJS.Signals) => void;
}

function startRelayProcess(env: Record<string, string | undefined>): Started {
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    cwd: APP_DIR,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  return { exited, stdout: () => out, stderr: () => err, kill: (s) => child.kill(s) };
}

/** A TCP port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Waits (bounded) for a condition that the process makes true. */
async function until(what: string, check: () => boolean | Promise<boolean>, limitMs = 30_000): Promise<void> {
  const giveUpAt = Date.now() + limitMs;
  while (!(await check())) {
    if (Date.now() > giveUpAt) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("apps/relay", () => {
  it.each([
    [{ LEDGER_EVENTS_URL: "nats://127.0.0.1:4222" }, "DATABASE_URL is required"],
    [{ DATABASE_URL: "postgres://postgres@127.0.0.1:5432/postgres" }, "LEDGER_EVENTS_URL is required"],
    [
      { DATABASE_URL: "mysql://127.0.0.1/ledger", LEDGER_EVENTS_URL: "nats://127.0.0.1:4222" },
      "DATABASE_URL must be a postgres:// URL",
    ],
    [
      {
        DATABASE_URL: "postgres://postgres@127.0.0.1:5432/postgres",
        LEDGER_EVENTS_URL: "kafka://127.0.0.1:9092",
      },
      "LEDGER_EVENTS_URL must be nats://",
    ],
  ])("refuses to start with %j: exit 2, %s", async (env, message) => {
    const p = startRelayProcess(env);
    expect((await p.exited).code).toBe(2);
    expect(p.stderr()).toContain("Invalid configuration");
    expect(p.stderr()).toContain(message);
  });

  async function database() {
    const adminUrl = testDatabaseUrl();
    const { name, url } = await createDatabase(adminUrl, "ledger_relay_app");
    onTestFinished(() => dropDatabase(adminUrl, name));
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    onTestFinished(() => sql.end({ timeout: 5 }));
    return { url, sql };
  }

  it("publishes the outbox to the stream its env names, from the first event, and stops on SIGTERM", async () => {
    const { url, sql } = await database();
    const opened = await openDatabase({ url });
    onTestFinished(() => opened.close());
    const service = new LedgerService({
      db: opened.db,
      app: "relay-app-test",
      catalog: defineCatalog({ ...sharedOperations }),
    });
    for (let i = 0; i < 20; i++) {
      await service.post({ owner_id: `owner-${i % 3}`, operation: "CREDIT_ADD", nonce: freshNonce() });
    }
    const stream = await freshNatsStream();
    onTestFinished(() => stream.delete());

    const p = startRelayProcess({
      DATABASE_URL: url,
      LEDGER_EVENTS_URL: testNatsUrl(),
      LEDGER_EVENTS_STREAM: stream.stream,
      LEDGER_EVENTS_SUBJECT_PREFIX: stream.subjectPrefix,
    });
    const checkpoint = async () =>
      Number(
        (
          await sql<{ p: string }[]>`select position::text as p from ledger_event_relays where name = 'nats'`
        )[0]?.p ?? 0,
      );
    await until("the relay to publish all 20 events", async () => (await checkpoint()) === 20);
    const stored = await stream.messages();
    expect(stored.map((m) => (m.body as { position: number }).position)).toEqual(
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    expect(stored.every((m) => m.route === `${stream.subjectPrefix}.relay-app-test.entry.created`)).toBe(
      true,
    );

    p.kill("SIGTERM");
    expect(await p.exited).toEqual({ code: 0, signal: null });
  });

  it("takes the relay's lock, and on SIGTERM exits 0 with the lock released", async () => {
    const { url, sql } = await database();
    // This database's relay only: other tests run relays of their own databases at the same time.
    const relayLocks = async () =>
      Number(
        (
          await sql<
            { n: string }[]
          >`select count(*)::text as n from pg_locks l join pg_stat_activity a on a.pid = l.pid
            where l.locktype = 'advisory' and l.classid = 7245002 and l.granted and a.application_name = 'ledger-relay'
              and a.datname = current_database()`
        )[0]?.n ?? 0,
      );

    const p = startRelayProcess({
      DATABASE_URL: url,
      LEDGER_EVENTS_URL: `amqp://guest:guest@127.0.0.1:${await closedPort()}`,
    });
    await until("the relay to become active", () => p.stdout().includes("relay active"));
    await until("the broker to be retried", () => p.stdout().includes("broker unavailable"));
    expect(await relayLocks()).toBe(1);

    p.kill("SIGTERM");
    expect(await p.exited).toEqual({ code: 0, signal: null });
    expect(p.stdout()).toContain("shutting down");
    await until("the lock to be released", async () => (await relayLocks()) === 0);
  });
});
