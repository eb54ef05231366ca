// The events side of `pnpm chaos`: the outbox relayed to NATS JetStream (a stream of the run's own) by a
// relay process of its own and by the apps' in-process relays (one active at a time, by a lock), a
// consumer (@ledger/core's consumeLedgerEvents, recording what it handled in a database of its own), and
// the faults: the relay process SIGKILLed, nats-server stopped and started, the consumer stopped and
// started again from its durable checkpoint. At the end every event of the log must be on the stream
// exactly once (after JetStream's de-duplication by event id), one entry.created per entry, each owner's in
// its sequence order, valid against the envelope; and the consumer must have handled positions 1..head,
// each once: no gap.
import { setTimeout as sleep } from "node:timers/promises";
import { execFileSync } from "node:child_process";
import { createConnection } from "node:net";
import { join } from "node:path";
import { eventSchema } from "@ledger/core/events";
import { consumeLedgerEvents, type LedgerEventConsumer } from "@ledger/core/events/consumer";
import { deleteNatsStream, freshNatsStream, type TestStream } from "@ledger/core/testing/brokers";
import postgres from "postgres";
import type { Violation } from "./model.js";
import { REPO_ROOT } from "./paths.js";
import { createDatabase, dropDatabase } from "./postgres.js";
import { freePort, ServerProcess } from "./processes.js";

const RELAY_DIR = join(REPO_ROOT, "apps/relay");
/** The machine's own commands for its nats-server (see the env notes): stopped and started as a whole. */
const NATS_SERVER = "/usr/sbin/nats-server";
const NATS_START_ARGS = [
  "--start",
  "--oknodo",
  "--background",
  "--exec",
  NATS_SERVER,
  "--",
  "-a",
  "127.0.0.1",
  "-p",
  "4222",
  "-js",
  "-sd",
  "/var/lib/nats-server",
  "-l",
  "/var/log/nats-server.log",
];
const NATS_READY_TIMEOUT_MS = 30_000;
/** Once the load has stopped, the relay must have published everything, and the consumer handled it. */
const DRAIN_TIMEOUT_MS = 90_000;

export interface EventsSummary {
  stream: string;
  /** Events in the log (the head position; positions are gapless). */
  logEvents: number;
  entries: number;
  /** Messages on the stream (after de-duplication), and how many were entry.created. */
  onStream: number;
  entryCreatedOnStream: number;
  consumed: number;
  relayKills: number;
  brokerRestarts: number;
  /** From stopping nats-server to it answering again. */
  brokerOutageMs: number[];
  consumerRestarts: number;
  /** Over every consumer instance of the run: events it gave back to retry, and dead letters (must be 0). */
  consumerRetried: number;
  consumerDeadLettered: number;
  /** From the end of the load to the relay's checkpoint at the head. */
  relayDrainMs: number | null;
  consumerDrainMs: number | null;
}

export interface EventsRig {
  /** The apps' and the relay's configuration: publish to this run's stream. */
  readonly env: Record<string, string>;
  readonly relay: ServerProcess;
  readonly summary: EventsSummary;
  killRelay(): Promise<void>;
  restartBroker(downMs: number): Promise<number>;
  restartConsumer(): Promise<void>;
  /** Waits for the relay and the consumer to catch up, then holds the stream and the consumer to the log. */
  check(ledgerUrl: string): Promise<Violation[]>;
  close(keep: boolean): Promise<void>;
}

interface ConsumedRow {
  position: string;
  event_id: string;
}

export async function startEventsRig(opts: {
  adminUrl: string;
  databaseUrl: string;
  natsUrl: string;
  runId: string;
  log: (line: string) => void;
}): Promise<EventsRig> {
  const stream: TestStream = await freshNatsStream(opts.natsUrl);
  const env = {
    LEDGER_EVENTS_URL: opts.natsUrl,
    LEDGER_EVENTS_STREAM: stream.stream,
    LEDGER_EVENTS_SUBJECT_PREFIX: stream.subjectPrefix,
  };
  const relay = new ServerProcess({
    name: "relay",
    cwd: RELAY_DIR,
    entry: "src/main.ts",
    // The relay serves nothing: the port is only the harness's bookkeeping.
    port: await freePort(),
    env: { DATABASE_URL: opts.databaseUrl, LOG_LEVEL: "warn", ...env },
  });
  relay.start();
  const consumerDb = await createDatabase(opts.adminUrl, "ledger_chaos_consumer");
  const sql = postgres(consumerDb.url, { max: 4, onnotice: () => {} });
  // No unique key: a second handling of one event would be a second row, counted below, not a refusal
  // the consumer would retry until it dead-letters.
  await sql`create table chaos_consumed (position bigint not null, event_id uuid not null,
    type text not null, owner_id text not null, sequence bigint not null)`;
  const name = `chaos_${opts.runId}`;
  const deadStream = `${stream.stream}_DEAD`;
  const startConsumer = () =>
    consumeLedgerEvents({
      url: opts.natsUrl,
      sql,
      name,
      prefetch: 64,
      retryDelayMs: 200,
      nats: {
        stream: stream.stream,
        subject: `${stream.subjectPrefix}.>`,
        deadStream,
        deadSubject: `${stream.subjectPrefix}_dead.${name}`,
      },
      handler: async (event, tx) => {
        await tx`insert into chaos_consumed (position, event_id, type, owner_id, sequence)
          values (${event.position}, ${event.id}, ${event.type}, ${event.owner_id}, ${event.sequence})`;
      },
    });
  // The consumer's durable needs the stream, which the relay creates on its first connection.
  let consumer: LedgerEventConsumer | undefined;
  for (let tries = 0; consumer === undefined; tries += 1) {
    try {
      consumer = await startConsumer();
    } catch (error) {
      if (tries >= 60) throw error;
      await sleep(500);
    }
  }
  const summary: EventsSummary = {
    stream: stream.stream,
    logEvents: 0,
    entries: 0,
    onStream: 0,
    entryCreatedOnStream: 0,
    consumed: 0,
    relayKills: 0,
    brokerRestarts: 0,
    brokerOutageMs: [],
    consumerRestarts: 0,
    consumerRetried: 0,
    consumerDeadLettered: 0,
    relayDrainMs: null,
    consumerDrainMs: null,
  };
  const ledgerSql = postgres(opts.databaseUrl, { max: 1, onnotice: () => {} });
  const count = (c: LedgerEventConsumer | undefined) => countInto(summary, c);

  return {
    env,
    relay,
    summary,
    async killRelay() {
      await relay.kill("SIGKILL");
      relay.start();
      summary.relayKills += 1;
    },
    async restartBroker(downMs) {
      const stoppedAt = Date.now();
      execFileSync("start-stop-daemon", ["--stop", "--oknodo", "--retry", "10", "--exec", NATS_SERVER]);
      try {
        await sleep(downMs);
      } finally {
        execFileSync("start-stop-daemon", NATS_START_ARGS);
        await natsAnswering(opts.natsUrl, NATS_READY_TIMEOUT_MS);
      }
      const outageMs = Date.now() - stoppedAt;
      summary.brokerRestarts += 1;
      summary.brokerOutageMs.push(outageMs);
      return outageMs;
    },
    async restartConsumer() {
      await consumer?.stop();
      count(consumer);
      consumer = await startConsumer();
      summary.consumerRestarts += 1;
    },
    async check(ledgerUrl) {
      const violations: Violation[] = [];
      const head = async () =>
        Number(
          (await ledgerSql<{ p: string }[]>`select last_position::text as p from ledger_event_counter`)[0]?.p,
        );
      const total = await head();
      summary.logEvents = total;
      summary.relayDrainMs = await until(async () => {
        const [row] = await ledgerSql<{ p: string | null }[]>`
          select max(position)::text as p from ledger_event_relays where name = 'nats'`;
        return Number(row?.p ?? 0) >= total;
      });
      summary.consumerDrainMs = await until(async () => {
        const [row] = await sql<{ n: number }[]>`select count(*)::int as n from chaos_consumed`;
        return (row?.n ?? 0) >= total;
      });
      if (summary.relayDrainMs === null)
        violations.push({
          kind: "events-relay",
          detail: `the relay did not reach the head (${total}) within ${DRAIN_TIMEOUT_MS} ms`,
        });
      if ((await head()) !== total)
        violations.push({
          kind: "events-log",
          detail: `events were written after the load had ended (${ledgerUrl})`,
        });

      const log = await ledgerSql<{ position: string; id: string }[]>`
        select v.position::text as position, v.id::text as id from ledger_events v order by v.position`;
      const logIds = new Map(log.map((r) => [Number(r.position), r.id]));
      const [counts] = await ledgerSql<
        { entries: number }[]
      >`select count(*)::int as entries from ledger_entries`;
      summary.entries = counts?.entries ?? 0;
      if (log.length !== total || log[0]?.position !== "1")
        violations.push({
          kind: "events-log",
          detail: `the log holds ${log.length} events from position ${log[0]?.position ?? "-"}, the head is ${total} (nothing was pruned)`,
        });

      const messages = await stream.messages();
      summary.onStream = messages.length;
      const seenIds = new Set<string>();
      const positions = new Set<number>();
      const lastSequence = new Map<string, number>();
      let entryCreated = 0;
      for (const m of messages) {
        const parsed = eventSchema.safeParse(m.body);
        if (!parsed.success) {
          violations.push({
            kind: "events-stream",
            detail: `a message that is not a valid envelope: ${JSON.stringify(m.body).slice(0, 200)}`,
          });
          continue;
        }
        const e = parsed.data;
        if (m.messageId !== e.id)
          violations.push({ kind: "events-stream", detail: `event ${e.id} has Nats-Msg-Id ${m.messageId}` });
        if (seenIds.has(e.id))
          violations.push({
            kind: "events-stream",
            detail: `event ${e.id} (position ${e.position}) is on the stream twice`,
          });
        seenIds.add(e.id);
        positions.add(e.position);
        if (logIds.get(e.position) !== e.id)
          violations.push({
            kind: "events-stream",
            detail: `position ${e.position} is ${logIds.get(e.position) ?? "not in the log"} in the log, ${e.id} on the stream`,
          });
        if (e.type === "entry.created") {
          entryCreated += 1;
          const previous = lastSequence.get(e.owner_id) ?? 0;
          if (e.sequence <= previous)
            violations.push({
              kind: "events-order",
              detail: `${e.owner_id} #${e.sequence} came after #${previous} on the stream`,
            });
          lastSequence.set(e.owner_id, e.sequence);
        }
      }
      summary.entryCreatedOnStream = entryCreated;
      const missing = [...logIds.keys()].filter((p) => !positions.has(p));
      if (missing.length > 0)
        violations.push({
          kind: "events-stream",
          detail: `${missing.length} events of the log are not on the stream, from position ${missing[0]}`,
        });
      if (entryCreated !== summary.entries)
        violations.push({
          kind: "events-stream",
          detail: `${entryCreated} entry.created on the stream for ${summary.entries} entries`,
        });

      const consumed = await sql<
        ConsumedRow[]
      >`select c.position::text as position, c.event_id::text as event_id from chaos_consumed c order by c.position`;
      summary.consumed = consumed.length;
      count(consumer);
      if (summary.consumerDeadLettered > 0)
        violations.push({
          kind: "events-consumer",
          detail: `the consumer dead-lettered ${summary.consumerDeadLettered} events`,
        });
      const gaps = consumed.filter((r, i) => Number(r.position) !== i + 1);
      if (consumed.length !== total || gaps.length > 0)
        violations.push({
          kind: "events-consumer",
          detail: `the consumer handled ${consumed.length} events for ${total} in the log${gaps[0] ? `, the first out of place at position ${gaps[0].position}` : ""}`,
        });
      const wrongIds = consumed.filter((r) => logIds.get(Number(r.position)) !== r.event_id);
      if (wrongIds.length > 0)
        violations.push({
          kind: "events-consumer",
          detail: `${wrongIds.length} handled events have another id than the log's`,
        });
      return violations;
    },
    async close(keep) {
      await relay.stop();
      await consumer?.stop().catch(() => {});
      await ledgerSql.end({ timeout: 5 });
      await sql.end({ timeout: 5 });
      if (keep) opts.log(`chaos: kept stream ${stream.stream} and consumer database ${consumerDb.name}`);
      else {
        await deleteNatsStream(deadStream, opts.natsUrl);
        await stream.delete();
        await dropDatabase(opts.adminUrl, consumerDb.name);
      }
    },
  };
}

/** Adds a consumer instance's counters to the run's (once: it is then forgotten). */
const counted = new WeakSet<LedgerEventConsumer>();
function countInto(summary: EventsSummary, consumer: LedgerEventConsumer | undefined): void {
  if (!consumer || counted.has(consumer)) return;
  counted.add(consumer);
  const s = consumer.status();
  summary.consumerRetried += s.retried;
  summary.consumerDeadLettered += s.deadLettered;
}

/** Resolves with the wait when check() holds within DRAIN_TIMEOUT_MS, null when it never did. */
async function until(check: () => Promise<boolean>): Promise<number | null> {
  const started = Date.now();
  while (Date.now() - started < DRAIN_TIMEOUT_MS) {
    try {
      if (await check()) return Date.now() - started;
    } catch {
      // The database or broker is still coming back: asked again below.
    }
    await sleep(200);
  }
  return null;
}

/** nats-server takes TCP connections again (JetStream reloads its streams from disk just after). */
async function natsAnswering(url: string, timeoutMs: number): Promise<void> {
  const { hostname, port } = new URL(url);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host: hostname, port: Number(port || 4222) });
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (up) return;
    await sleep(200);
  }
  throw new Error(`nats-server at ${url} did not answer within ${timeoutMs} ms of being started`);
}
