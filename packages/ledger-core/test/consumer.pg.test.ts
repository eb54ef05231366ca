// The consumer helper against the machine's real NATS JetStream and RabbitMQ, and a real Postgres for
// the consumer's own database: each event id is handled once (duplicates published on purpose, two
// instances sharing one consumer, a consumer cut off between its commit and its ack), a failing handler
// is retried, poison ends in the dead letters after the bound without holding up the rest, and stop() is
// clean. Every test makes its own stream or exchange and queues, under random names, and deletes them;
// the database is this file's own.
import { randomBytes, randomUUID } from "node:crypto";
import { once } from "node:events";
import net from "node:net";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect as connectNats } from "@nats-io/transport-node";
import { connect as connectAmqp } from "amqplib";
import postgres, { type Sql } from "postgres";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, onTestFinished } from "vitest";
import {
  consumeLedgerEvents,
  DEAD_LETTER_HEADERS,
  type ConsumeLedgerEventsOptions,
  type ConsumerError,
  type LedgerEventConsumer,
  type LedgerEventHandler,
} from "../src/features/events/consumer.js";
import {
  runDelivery,
  UNANSWERED_DELIVERIES,
  type ConsumerRuntime,
  type ConsumerStatus,
  type DeadLetter,
  type Delivery,
} from "../src/features/events/consumer/core.js";
import { ensureProcessedTable, pruneProcessedEvents } from "../src/features/events/consumer/processed.js";
import { eventRoute, eventSchema, type LedgerEvent } from "../src/features/events/envelope.js";
import { createDatabase, dropDatabase } from "../src/testing/postgres.js";
import { startTcpProxy } from "../src/testing/proxy.js";
import { testAmqpUrl, testNatsUrl } from "../src/testing/brokers.js";

const adminUrl = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const NATS_URL = testNatsUrl();
const AMQP_URL = testAmqpUrl();
/** Short, so that a delivery left unanswered (the cut-off consumer) comes again soon. */
const ACK_WAIT_MS = 1_500;

let dbName: string;
let dbUrl: string;
let sql: Sql;

beforeAll(async () => {
  ({ name: dbName, url: dbUrl } = await createDatabase(adminUrl, "ledger_consumer_test"));
  sql = postgres(dbUrl, { max: 8, onnotice: () => {} });
  await sql`create table consumer_effects (consumer text not null, event_id uuid not null, position bigint not null)`;
});

afterAll(async () => {
  await sql?.end({ timeout: 5 });
  if (dbName) await dropDatabase(adminUrl, dbName);
});

const suffix = () => `${Date.now().toString(36)}${randomBytes(4).toString("hex")}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits for a condition the consumer brings about; the test's own timeout is the bound. */
async function until(what: string, cond: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 25_000;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`still waiting for ${what}`);
    await sleep(20);
  }
}

// ---- events, built and checked with the envelope's own schemas ----

let positions = 0;

function entryCreated(owner: string, sequence: number): LedgerEvent {
  const position = ++positions;
  const at = new Date().toISOString();
  return eventSchema.parse({
    id: randomUUID(),
    type: "entry.created",
    version: 1,
    occurred_at: at,
    app: "app1",
    owner_id: owner,
    sequence,
    position,
    request_id: `req-${position}`,
    data: {
      id: position,
      app: "app1",
      operation: "GRANT",
      owner_id: owner,
      amount: 10,
      balance_after: 10 * sequence,
      sequence,
      nonce: `nonce-${position}`,
      created_at: at,
      balance: 10 * sequence,
      available: 10 * sequence,
      held: 0,
    },
  });
}

function holdCreated(owner: string, sequence: number): LedgerEvent {
  const position = ++positions;
  const at = new Date().toISOString();
  return eventSchema.parse({
    id: randomUUID(),
    type: "hold.created",
    version: 1,
    occurred_at: at,
    app: "app1",
    owner_id: owner,
    sequence,
    position,
    request_id: null,
    data: {
      hold: {
        id: randomUUID(),
        owner_id: owner,
        app: "app1",
        operation: "SPEND",
        amount: 5,
        status: "active",
        expires_at: new Date(Date.now() + 60_000).toISOString(),
        created_at: at,
      },
      entry_id: position,
    },
  });
}

function someEvents(n: number): LedgerEvent[] {
  const owner = `owner-${suffix()}`;
  return Array.from({ length: n }, (_, i) =>
    i % 3 === 2 ? holdCreated(owner, i + 1) : entryCreated(owner, i + 1),
  );
}

// ---- the brokers, each with its own stream / exchange per test ----

interface DeadLetterRead {
  body: string;
  headers: Record<string, string>;
}

interface TestBroker {
  readonly kind: "nats" | "amqp";
  readonly url: string;
  /** The consumer's broker options for this test's stream / exchange. */
  options(name: string): Pick<ConsumeLedgerEventsOptions, "nats" | "amqp">;
  /** What must exist before publishing, so nothing is dropped (RabbitMQ drops what no queue is bound for). */
  prepare(name: string): Promise<void>;
  /** Publishes raw bytes on `<app>.<type>`, confirmed, without any de-duplication. */
  publish(body: string, route: string): Promise<void>;
  deadLetters(name: string): Promise<DeadLetterRead[]>;
  /** Messages of the consumer's source not yet acknowledged (ready, delivered and unanswered). */
  unfinished(name: string): Promise<number>;
  close(): Promise<void>;
}

async function natsBroker(): Promise<TestBroker> {
  const id = suffix();
  const stream = `CT_${id.toUpperCase()}`;
  const prefix = `ct_${id}`;
  const deadStream = `CTD_${id.toUpperCase()}`;
  const deadPrefix = `ctd_${id}`;
  const nc = await connectNats({ servers: NATS_URL, name: "consumer-test" });
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  await jsm.streams.add({ name: stream, subjects: [`${prefix}.>`] });
  return {
    kind: "nats",
    url: NATS_URL,
    options: (name) => ({
      nats: {
        stream,
        subject: `${prefix}.>`,
        deadStream,
        deadSubject: `${deadPrefix}.${name}`,
        ackWaitMs: ACK_WAIT_MS,
      },
    }),
    prepare: async () => {},
    async publish(body, route) {
      await js.publish(`${prefix}.${route}`, body);
    },
    async deadLetters(name) {
      const last = (await jsm.streams.info(deadStream)).state.last_seq;
      const found: DeadLetterRead[] = [];
      for (let seq = 1; seq <= last; seq++) {
        const m = await jsm.streams.getMessage(deadStream, { seq });
        if (!m || m.subject !== `${deadPrefix}.${name}`) continue;
        const headers: Record<string, string> = {};
        for (const h of Object.values(DEAD_LETTER_HEADERS)) {
          if (m.header.has(h)) headers[h] = m.header.get(h);
        }
        found.push({ body: Buffer.from(m.data).toString("utf8"), headers });
      }
      return found;
    },
    async unfinished(name) {
      const info = await jsm.consumers.info(stream, name);
      return info.num_pending + info.num_ack_pending;
    },
    async close() {
      for (const s of [stream, deadStream]) await jsm.streams.delete(s).catch(() => false);
      await nc.close();
    },
  };
}

async function amqpBroker(): Promise<TestBroker> {
  const id = suffix();
  const exchange = `ct.${id}`;
  const conn = await connectAmqp(AMQP_URL);
  conn.on("error", () => {});
  const ch = await conn.createConfirmChannel();
  await ch.assertExchange(exchange, "topic", { durable: true });
  const queueOf = (name: string) => `ct_${id}_${name}`;
  const made = new Set<string>();
  return {
    kind: "amqp",
    url: AMQP_URL,
    options: (name) => ({ amqp: { exchange, queue: queueOf(name) } }),
    async prepare(name) {
      const q = queueOf(name);
      made.add(q).add(`${q}.dead`);
      await ch.assertQueue(q, { durable: true, arguments: { "x-queue-type": "quorum" } });
      await ch.bindQueue(q, exchange, "#");
    },
    publish: (body, route) =>
      new Promise<void>((resolve, reject) => {
        ch.publish(
          exchange,
          route,
          Buffer.from(body),
          { persistent: true, contentType: "application/json" },
          (err) => (err ? reject(new Error(String(err))) : resolve()),
        );
      }),
    async deadLetters(name) {
      const found: DeadLetterRead[] = [];
      for (;;) {
        const m = await ch.get(`${queueOf(name)}.dead`, { noAck: true });
        if (m === false) return found;
        const headers: Record<string, string> = {};
        for (const h of Object.values(DEAD_LETTER_HEADERS)) {
          const v: unknown = m.properties.headers?.[h];
          if (typeof v === "string" || typeof v === "number") headers[h] = String(v);
        }
        found.push({ body: m.content.toString("utf8"), headers });
      }
    },
    async unfinished(name) {
      return (await ch.checkQueue(queueOf(name))).messageCount;
    },
    async close() {
      for (const q of made) await ch.deleteQueue(q).catch(() => undefined);
      await ch.deleteExchange(exchange).catch(() => undefined);
      await conn.close();
    },
  };
}

interface Recorder {
  /** Event ids, in the order the handler was called. */
  calls: string[];
  handler: LedgerEventHandler;
}

/** A handler that writes one effect row per call, or throws when `fails(event, call number)` says so. */
function recorder(
  name: string,
  fails: (event: LedgerEvent, call: number) => boolean = () => false,
): Recorder {
  const calls: string[] = [];
  return {
    calls,
    handler: async (event, tx) => {
      calls.push(event.id);
      if (fails(event, calls.filter((id) => id === event.id).length))
        throw new Error(`handler refused ${event.id}`);
      await tx`insert into consumer_effects (consumer, event_id, position) values (${name}, ${event.id}, ${event.position})`;
    },
  };
}

/** How many effect rows each event has. */
async function effects(name: string): Promise<Map<string, number>> {
  const rows = await sql<{ event_id: string; n: number }[]>`
    select event_id, count(*)::int as n from consumer_effects where consumer = ${name} group by event_id`;
  return new Map(rows.map((r) => [r.event_id, r.n]));
}

type TestConsumer = LedgerEventConsumer & { errors: ConsumerError[] };

async function start(
  b: TestBroker,
  name: string,
  handler: LedgerEventHandler,
  extra: Partial<ConsumeLedgerEventsOptions> = {},
): Promise<TestConsumer> {
  const errors: ConsumerError[] = [];
  const c = await consumeLedgerEvents({
    url: b.url,
    sql,
    name,
    handler,
    retryDelayMs: 50,
    onError: (e) => errors.push(e),
    ...b.options(name),
    ...extra,
  });
  onTestFinished(() => c.stop());
  return Object.assign(c, { errors });
}

const BROKERS = [
  { kind: "nats", open: natsBroker },
  { kind: "amqp", open: amqpBroker },
] as const;

describe.each(BROKERS)("consumer on $kind", ({ open }) => {
  // A stream / exchange of its own for each test: a new durable consumer reads its stream from the start.
  let b: TestBroker;
  beforeEach(async () => {
    b = await open();
  });
  afterEach(async () => {
    await b?.close();
  });

  it("handles each event once when it is published twice, with two instances sharing the consumer", async () => {
    const name = `dup_${suffix()}`;
    await b.prepare(name);
    const events = someEvents(6);
    const twice = new Set([events[1], events[3], events[4]].map((e) => e?.id));
    for (const e of events) {
      await b.publish(JSON.stringify(e), eventRoute(e));
      if (twice.has(e.id)) await b.publish(JSON.stringify(e), eventRoute(e));
    }
    const one = recorder(name);
    const other = recorder(name);
    const a = await start(b, name, one.handler);
    const c = await start(b, name, other.handler);
    const total = (f: (s: ConsumerStatus) => number) => f(a.status()) + f(c.status());
    await until(
      "6 handled and 3 skipped",
      () => total((s) => s.handled) === 6 && total((s) => s.skipped) === 3,
    );
    await Promise.all([a.stop(), c.stop()]);

    const counts = await effects(name);
    expect([...counts.keys()].sort()).toEqual(events.map((e) => e.id).sort());
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    expect(one.calls.length + other.calls.length).toBe(6);
    const processed = await sql<{ event_id: string; position: string }[]>`
      select event_id, position from ledger_consumer_processed where consumer = ${name}`;
    expect(new Map(processed.map((r) => [r.event_id, Number(r.position)]))).toEqual(
      new Map(events.map((e) => [e.id, e.position])),
    );
    expect(total((s) => s.retried + s.deadLettered)).toBe(0);
    expect(await b.unfinished(name)).toBe(0);
  });

  it("skips the redelivery of an event whose consumer was cut off between its commit and its ack", async () => {
    const name = `cut_${suffix()}`;
    await b.prepare(name);
    const [x, y, z] = someEvents(3);
    if (!x || !y || !z) throw new Error("three events");
    for (const e of [x, y, z]) await b.publish(JSON.stringify(e), eventRoute(e));

    const target = new URL(b.url);
    const proxy = await startTcpProxy(target.hostname, Number(target.port));
    onTestFinished(() => proxy.close());
    // The first instance commits x, then loses the broker before its ack can get there; anything else
    // it is handed fails (it is "gone"), so it commits nothing more.
    const first = recorder(name, (e) => e.id !== x.id);
    const cutOff = await start(
      b,
      name,
      async (event, tx) => {
        await first.handler(event, tx);
        await proxy.down("refuse");
      },
      { url: proxy.url(b.url), prefetch: 1 },
    );
    await until("the cut-off instance to commit x", () => cutOff.status().handled === 1);
    await cutOff.stop();
    expect((await effects(name)).get(x.id)).toBe(1);

    const second = recorder(name);
    const next = await start(b, name, second.handler);
    await until(
      "y and z handled, x skipped",
      () => next.status().handled === 2 && next.status().skipped === 1,
    );
    await next.stop();

    expect(second.calls.sort()).toEqual([y.id, z.id].sort());
    const counts = await effects(name);
    expect([x, y, z].map((e) => counts.get(e.id))).toEqual([1, 1, 1]);
    expect(await b.unfinished(name)).toBe(0);
  });

  it("reconnects after the broker went away and goes on", async () => {
    const name = `back_${suffix()}`;
    await b.prepare(name);
    const [before, during] = someEvents(2);
    if (!before || !during) throw new Error("two events");
    const target = new URL(b.url);
    const proxy = await startTcpProxy(target.hostname, Number(target.port));
    onTestFinished(() => proxy.close());
    const r = recorder(name);
    const c = await start(b, name, r.handler, { url: proxy.url(b.url) });
    await b.publish(JSON.stringify(before), eventRoute(before));
    await until("the first handled", () => c.status().handled === 1);

    await proxy.down("refuse");
    await until("the loss reported", () => c.errors.some((e) => e.code === "BROKER_UNAVAILABLE"));
    await b.publish(JSON.stringify(during), eventRoute(during));
    await proxy.up();
    await until("the second handled", () => c.status().handled === 2);
    await c.stop();

    expect(r.calls).toEqual([before.id, during.id]);
    expect(await b.unfinished(name)).toBe(0);
  });

  it("retries a handler that fails twice, handles it once, and handles the ones behind it meanwhile", async () => {
    const name = `retry_${suffix()}`;
    await b.prepare(name);
    const [flaky, ...rest] = someEvents(4);
    if (!flaky) throw new Error("an event");
    for (const e of [flaky, ...rest]) await b.publish(JSON.stringify(e), eventRoute(e));
    const r = recorder(name, (e, call) => e.id === flaky.id && call <= 2);
    const c = await start(b, name, r.handler, { retryDelayMs: 200 });
    await until("4 handled", () => c.status().handled === 4);
    await c.stop();

    expect(r.calls.filter((id) => id === flaky.id)).toHaveLength(3);
    const secondTry = r.calls.indexOf(flaky.id, 1);
    for (const e of rest) expect(r.calls.indexOf(e.id)).toBeLessThan(secondTry);
    const counts = await effects(name);
    expect([flaky, ...rest].map((e) => counts.get(e.id))).toEqual([1, 1, 1, 1]);
    expect(c.status()).toMatchObject({ handled: 4, retried: 2, deadLettered: 0, skipped: 0 });
    expect(c.errors.filter((e) => e.code === "HANDLER_FAILED")).toHaveLength(2);
    expect(await b.deadLetters(name)).toEqual([]);
    expect(await b.unfinished(name)).toBe(0);
  });

  it("dead-letters poison with its reason after the bound, acks it, and does not hold up the ones behind it", async () => {
    const name = `poison_${suffix()}`;
    await b.prepare(name);
    const [broken, doomed, v1, v2] = someEvents(4);
    if (!broken || !doomed || !v1 || !v2) throw new Error("four events");
    const notJson = "not json {";
    const notEnvelope = JSON.stringify({ hello: "world" });
    const badData = JSON.stringify({ ...broken, data: { ...broken.data, amount: "ten" } });
    const newer = JSON.stringify({ ...entryCreated("owner-v2", 1), version: 2 });
    const bodies = [
      notJson,
      notEnvelope,
      badData,
      newer,
      JSON.stringify(doomed),
      JSON.stringify(v1),
      JSON.stringify(v2),
    ];
    for (const body of bodies) await b.publish(body, "app1.entry.created");

    const r = recorder(name, (e) => e.id === doomed.id);
    const c = await start(b, name, r.handler, { maxDeliver: 3, retryDelayMs: 200 });
    await until(
      "4 dead letters and 2 handled",
      () => c.status().deadLettered === 4 && c.status().handled === 2,
    );
    await c.stop();

    expect(r.calls.filter((id) => id === doomed.id)).toHaveLength(3);
    const secondTry = r.calls.indexOf(doomed.id, r.calls.indexOf(doomed.id) + 1);
    expect(r.calls.indexOf(v1.id)).toBeLessThan(secondTry);
    expect(r.calls.indexOf(v2.id)).toBeLessThan(secondTry);
    const counts = await effects(name);
    expect([doomed, v1, v2].map((e) => counts.get(e.id) ?? 0)).toEqual([0, 1, 1]);
    expect(c.status()).toMatchObject({ handled: 2, ignored: 1, deadLettered: 4, retried: 2 });

    const dead = await b.deadLetters(name);
    const H = DEAD_LETTER_HEADERS;
    expect(dead.map((d) => [d.body, d.headers[H.reason], d.headers[H.eventId]])).toEqual([
      [notJson, "NOT_JSON", undefined],
      [notEnvelope, "INVALID_ENVELOPE", undefined],
      [badData, "INVALID_ENVELOPE", broken.id],
      [JSON.stringify(doomed), "HANDLER_FAILED", doomed.id],
    ]);
    expect(dead[2]?.headers[H.detail]).toContain("data.amount");
    expect(dead[3]?.headers).toMatchObject({
      [H.detail]: `handler refused ${doomed.id}`,
      [H.deliveries]: "3",
      [H.consumer]: name,
      [H.source]: expect.stringMatching(/app1\.entry\.created$/),
    });
    expect(await b.unfinished(name)).toBe(0);
  });

  it("stop() waits for the event in flight, gives back the rest, and the next instance goes on from there", async () => {
    const name = `stop_${suffix()}`;
    await b.prepare(name);
    const events = someEvents(6);
    for (const e of events) await b.publish(JSON.stringify(e), eventRoute(e));
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let inFlight: () => void = () => {};
    const entered = new Promise<void>((resolve) => {
      inFlight = resolve;
    });
    const first = recorder(name);
    const c = await start(b, name, async (event, tx) => {
      await first.handler(event, tx);
      if (first.calls.length === 2) {
        inFlight();
        await gate;
      }
    });
    await entered;
    let stopped = false;
    const stopping = c.stop().then(() => {
      stopped = true;
    });
    await sleep(100);
    expect(stopped).toBe(false);
    expect(c.status().state).toBe("stopping");
    release();
    await stopping;
    expect(c.stop()).toBe(c.stop());
    expect(c.status()).toMatchObject({ state: "stopped", handled: 2 });
    expect(first.calls).toEqual(events.slice(0, 2).map((e) => e.id));
    // Both acked before stop() resolved: only the 4 given back are left. The broker's counts of a
    // consumer settle a moment after the naks of a stop (seen once under CI's load: 5 for a moment);
    // a lost ack would keep it at 5 until the ack wait (30 s) redelivers it.
    await until("the broker to count the 4 given back", async () => (await b.unfinished(name)) === 4);

    const second = recorder(name);
    const next = await start(b, name, second.handler);
    await until("the other 4 handled", () => next.status().handled === 4);
    await next.stop();
    // Given back, they come again, though not necessarily in their first order.
    expect([...second.calls].sort()).toEqual(
      events
        .slice(2)
        .map((e) => e.id)
        .sort(),
    );

    const counts = await effects(name);
    expect(events.map((e) => counts.get(e.id))).toEqual([1, 1, 1, 1, 1, 1]);
    expect(await b.unfinished(name)).toBe(0);
  });
});

describe("consumer start", () => {
  const handler: LedgerEventHandler = () => {};
  it.each([
    ["a name with a dot", { name: "a.b" }],
    ["an http URL", { url: "http://127.0.0.1:4222" }],
    ["maxDeliver 0", { maxDeliver: 0 }],
    ["a fractional prefetch", { prefetch: 1.5 }],
    ["retryDelayMaxMs below retryDelayMs", { retryDelayMs: 5_000, retryDelayMaxMs: 1_000 }],
    ["a NATS subject with > inside", { nats: { subject: "ledger.>.x" } }],
    ["a dead subject with a wildcard", { nats: { deadSubject: "ledger_dead.*" } }],
    ["an ack wait under a second", { nats: { ackWaitMs: 10 } }],
  ] as const)("refuses %s with CONSUMER_OPTIONS_INVALID", async (_, bad) => {
    await expect(
      consumeLedgerEvents({ url: NATS_URL, sql, name: "ok", handler, ...bad }),
    ).rejects.toMatchObject({ code: "CONSUMER_OPTIONS_INVALID" });
  });

  it("says BROKER_UNAVAILABLE when nothing listens at the URL", async () => {
    // A port that was just free: listened on, then closed.
    const server = net.createServer().listen(0, "127.0.0.1");
    await once(server, "listening");
    const closedPort = (server.address() as net.AddressInfo).port;
    await new Promise((resolve) => server.close(resolve));
    for (const url of [`nats://127.0.0.1:${closedPort}`, `amqp://guest:guest@127.0.0.1:${closedPort}`]) {
      await expect(consumeLedgerEvents({ url, sql, name: "nobody", handler })).rejects.toMatchObject({
        code: "BROKER_UNAVAILABLE",
      });
    }
  });

  it("says CONSUMER_STREAM_NOT_FOUND when JetStream has no such stream", async () => {
    await expect(
      consumeLedgerEvents({
        url: NATS_URL,
        sql,
        name: "nostream",
        handler,
        nats: { stream: `NONE_${suffix()}` },
      }),
    ).rejects.toMatchObject({ code: "CONSUMER_STREAM_NOT_FOUND" });
  });

  it("says CONSUMER_CONFIG_CONFLICT when RabbitMQ holds a classic queue of that name", async () => {
    const queue = `ct_classic_${suffix()}`;
    const exchange = `ct.${suffix()}`;
    const conn = await connectAmqp(AMQP_URL);
    const ch = await conn.createChannel();
    await ch.assertQueue(queue, { durable: true });
    onTestFinished(async () => {
      await ch.deleteQueue(queue);
      await ch.deleteQueue(`${queue}.dead`);
      await ch.deleteExchange(exchange);
      await conn.close();
    });
    await expect(
      consumeLedgerEvents({ url: AMQP_URL, sql, name: "classic", handler, amqp: { exchange, queue } }),
    ).rejects.toMatchObject({ code: "CONSUMER_CONFIG_CONFLICT" });
  });
});

// ---- one delivery, with a stand-in for the broker: what only a crash or an outage would show ----

interface Answers {
  delivery: Delivery;
  answers: string[];
}

function standIn(event: LedgerEvent, attempt: number): Answers {
  const answers: string[] = [];
  return {
    answers,
    delivery: {
      body: Buffer.from(JSON.stringify(event)),
      attempt,
      source: eventRoute(event),
      keepAliveMs: null,
      working: () => {},
      ack: () => {
        answers.push("ack");
        return Promise.resolve();
      },
      retry: (delayMs) => answers.push(`retry ${delayMs}`),
      release: () => answers.push("release"),
      deadLetter: (letter: DeadLetter) => {
        answers.push(`dead ${letter.reason}`);
        return Promise.resolve();
      },
    },
  };
}

function runtime(
  on: Sql,
  name: string,
  handler: LedgerEventHandler,
  reported: ConsumerError[] = [],
): ConsumerRuntime {
  return {
    name,
    sql: on,
    handler,
    maxDeliver: 3,
    retryDelayMs: 100,
    retryDelayMaxMs: 150,
    stopped: new AbortController().signal,
    status: {
      broker: "nats",
      state: "running",
      handled: 0,
      skipped: 0,
      ignored: 0,
      retried: 0,
      deadLettered: 0,
      lastError: null,
    },
    report: (e) => reported.push(e),
  };
}

describe("one delivery", () => {
  beforeAll(() => ensureProcessedTable(sql));

  it("retries with doubled, capped delays, then dead-letters on delivery maxDeliver", async () => {
    const name = `bound_${suffix()}`;
    const r = recorder(name, () => true);
    const rt = runtime(sql, name, r.handler);
    const event = entryCreated("owner-bound", 1);
    const answers: string[] = [];
    for (const attempt of [1, 2, 3]) {
      const s = standIn(event, attempt);
      await runDelivery(s.delivery, rt);
      answers.push(...s.answers);
    }
    expect(answers).toEqual(["retry 100", "retry 150", "dead HANDLER_FAILED"]);
    expect(r.calls).toHaveLength(3);
  });

  it("dead-letters the broker's last delivery without calling the handler, unless the event was handled", async () => {
    const name = `limit_${suffix()}`;
    const r = recorder(name);
    const rt = runtime(sql, name, r.handler);
    const [handled, unhandled] = [entryCreated("owner-limit", 1), entryCreated("owner-limit", 2)];
    const first = standIn(handled, 1);
    await runDelivery(first.delivery, rt);
    const last = 3 + UNANSWERED_DELIVERIES;
    const again = standIn(handled, last);
    await runDelivery(again.delivery, rt);
    const never = standIn(unhandled, last);
    await runDelivery(never.delivery, rt);
    expect([first.answers, again.answers, never.answers]).toEqual([
      ["ack"],
      ["ack"],
      ["dead DELIVERY_LIMIT"],
    ]);
    expect(r.calls).toEqual([handled.id]);
    expect(rt.status).toMatchObject({ handled: 1, skipped: 1, deadLettered: 1 });
  });

  it("holds a delivery while its database is away, without counting it, and handles it when it returns", async () => {
    const name = `outage_${suffix()}`;
    const target = new URL(dbUrl);
    const proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
    const viaProxy = postgres(proxy.url(dbUrl), { max: 2, connect_timeout: 2, onnotice: () => {} });
    onTestFinished(async () => {
      await proxy.up();
      await viaProxy.end({ timeout: 1 });
      await proxy.close();
    });
    const r = recorder(name);
    const reported: ConsumerError[] = [];
    const rt = runtime(viaProxy, name, r.handler, reported);
    const event = entryCreated("owner-outage", 1);
    await viaProxy`select 1`;
    await proxy.down("refuse");
    const s = standIn(event, 1);
    const running = runDelivery(s.delivery, rt);
    await until(
      "the outage reported twice",
      () => reported.filter((e) => e.code === "DATABASE_UNAVAILABLE").length >= 2,
    );
    expect(s.answers).toEqual([]);
    await proxy.up();
    await running;
    expect(s.answers).toEqual(["ack"]);
    expect(r.calls).toEqual([event.id]);
    expect(rt.status).toMatchObject({ handled: 1, retried: 0 });
    expect((await effects(name)).get(event.id)).toBe(1);
  });

  it("prunes processed ids older than a date, and only the consumer's", async () => {
    const name = `prune_${suffix()}`;
    const rt = runtime(sql, name, recorder(name).handler);
    const other = runtime(sql, `${name}_other`, recorder(`${name}_other`).handler);
    const event = entryCreated("owner-prune", 1);
    await runDelivery(standIn(event, 1).delivery, rt);
    await runDelivery(standIn(event, 1).delivery, other);
    expect(await pruneProcessedEvents(sql, { consumer: name, before: new Date(Date.now() - 60_000) })).toBe(
      0,
    );
    expect(await pruneProcessedEvents(sql, { consumer: name, before: new Date(Date.now() + 60_000) })).toBe(
      1,
    );
    const left = await sql<{ consumer: string }[]>`
      select consumer from ledger_consumer_processed where event_id = ${event.id}`;
    expect(left.map((row) => row.consumer)).toEqual([`${name}_other`]);
  });
});
