// The relay against the machine's real NATS JetStream and RabbitMQ, on Postgres (the lock is Postgres's).
// A mixed load goes through the app (credits, debits, holds captured and released, reversals, transfers,
// suspension with a refused write, batches atomic and not) while relays publish to a test stream and a
// test exchange: every entry appears exactly once on each broker (after de-duplication by event id), in
// each owner's sequence order, every message valid against the envelope's schema and equal to what the
// log holds. Then: two relays on one database, one active, the other taking over when the holder's lock
// connection dies and when it stops; and both brokers cut and restored while writes go on.
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { sql } from "drizzle-orm";
import postgres from "postgres";
import { eventSchema, type LedgerEvent } from "../src/features/events/envelope.js";
import { toLedgerEvent } from "../src/features/events/outbox.js";
import { RELAY_LOCK_KEY, startRelay, type Relay, type RelayOptions } from "../src/features/events/relay.js";
import { ledgerAppFactory } from "../src/http/index.js";
import { queryRows } from "../src/store/client.js";
import { lastEventPosition, readEvents, relayCheckpoint } from "../src/store/events.js";
import { sqlClientOf } from "../src/store/sql-client.js";
import { expectBatch, postBatch } from "../src/testing/batch.js";
import {
  freshAmqpExchange,
  freshNatsStream,
  testAmqpUrl,
  testNatsUrl,
  type BrokerMessage,
  type TestExchange,
  type TestStream,
} from "../src/testing/brokers.js";
import { silentLogger } from "../src/testing/deps.js";
import { capture, fund, hold, holdOf, release } from "../src/testing/holds.js";
import {
  expectLedgerInvariants,
  freshOwner,
  openTestDatabase,
  testDatabaseUrl,
  type TestDatabase,
} from "../src/testing/index.js";
import { reverse, transfer } from "../src/testing/moves.js";
import { expectProblem } from "../src/testing/problems.js";
import { startTcpProxy, type TcpProxy } from "../src/testing/proxy.js";
import { apply, op, postJson, type RequestApp } from "../src/testing/requests.js";
import { reinstate, suspend } from "../src/testing/suspension.js";
import { testCatalog } from "./fixtures.js";

const APP = "relay-test";
/**
 * Each test runs several phases, each waiting (within its own bound, `until`) for the relays: under a
 * loaded CI machine (every package's suites at once) the relays' broker requests and standby retries add
 * up past vitest's default 30 s, once seen in CI (the takeover test); the bound is the waits', not this.
 */
const RELAY_TEST_TIMEOUT_MS = 180_000;
const createApp = ledgerAppFactory({ name: APP, catalog: testCatalog, title: "relay test", version: "0" });

/** Waits, within a bound, for what the relays make true; never a timing assertion. */
async function until(what: string, check: () => boolean | Promise<boolean>, limitMs = 60_000): Promise<void> {
  const giveUpAt = Date.now() + limitMs;
  while (!(await check())) {
    if (Date.now() > giveUpAt) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One owner's story: every kind of write, and one that is refused (no event may come of it). */
async function ownerStory(app: RequestApp, owner: string, sink: string): Promise<void> {
  await fund(app, owner, 3);
  const debit = await apply(app, op(owner, "TEST_DEBIT", { amount: 5 }));
  await reverse(app, debit.entry.id, { amount: 2 });
  const captured = await hold(app, holdOf(owner, "TEST_DEBIT", { amount: 4 }));
  await capture(app, captured.hold.id, { amount: 3 });
  const released = await hold(app, holdOf(owner, "TEST_DEBIT", { amount: 6 }));
  await release(app, released.hold.id);
  await transfer(app, owner, sink, 2);
  const loose = await expectBatch(
    await postBatch(app, [
      op(owner, "CREDIT_SPEND"),
      op(owner, "TEST_DEBIT", { amount: 3 }),
      op(owner, "CREDIT_ADD"),
    ]),
  );
  expect(loose.results.map((r) => r.status)).toEqual([201, 201, 201]);
  await expectBatch(await postBatch(app, [op(owner, "CREDIT_SPEND"), op(owner, "CREDIT_ADD")], true), 201);
  await suspend(app, owner);
  await expectProblem(await postJson(app, op(owner, "CREDIT_SPEND")), 422, "OWNER_SUSPENDED");
  await reinstate(app, owner);
}

/** The load: owners' stories side by side, all transferring to one sink. */
async function mixedLoad(app: RequestApp, owners = 8): Promise<void> {
  const sink = freshOwner("sink");
  await fund(app, sink);
  await Promise.all(Array.from({ length: owners }, () => ownerStory(app, freshOwner(), sink)));
}

interface World {
  tdb: TestDatabase;
  app: RequestApp;
  relays: Relay[];
  relay(overrides: Partial<RelayOptions> & Pick<RelayOptions, "eventsUrl">): Relay;
  head(): Promise<number>;
  log(): Promise<LedgerEvent[]>;
  entries(): Promise<{ id: number; owner_id: string; sequence: number }[]>;
  delivered(name: "nats" | "amqp"): Promise<boolean>;
}

async function world(): Promise<World> {
  const tdb = await openTestDatabase("postgres");
  const relays: Relay[] = [];
  onTestFinished(async () => {
    await Promise.all(relays.map((r) => r.stop()));
    await expectLedgerInvariants(tdb);
    await tdb.close();
  });
  const runner = sqlClientOf(tdb.db);
  const head = () => lastEventPosition(runner);
  return {
    tdb,
    relays,
    app: createApp({ db: tdb.db, ping: () => tdb.ping(), logger: silentLogger }),
    relay(overrides) {
      const relay = startRelay({
        db: tdb.db,
        databaseUrl: tdb.url,
        retentionDays: 30,
        logger: silentLogger,
        ...overrides,
      });
      relays.push(relay);
      return relay;
    },
    head,
    log: async () => (await readEvents(runner, 0, 100_000)).map(toLedgerEvent),
    entries: () =>
      queryRows<{ id: number; owner_id: string; sequence: number }>(
        tdb.db,
        sql`select id::int as id, owner_id, sequence::int as sequence from ledger_entries order by id`,
      ),
    delivered: async (name) => (await relayCheckpoint(runner, name)) === (await head()),
  };
}

/** First occurrence of each event id, in the order the broker holds or delivered them. */
function deduplicated(messages: readonly BrokerMessage[]): BrokerMessage[] {
  const seen = new Set<string | undefined>();
  return messages.filter((m) => !seen.has(m.messageId) && seen.add(m.messageId));
}

/**
 * What every broker must show after de-duplication: the whole log once, each message's id its event's,
 * valid against the envelope schema, equal to the log's copy, with its route; each owner's entries in
 * sequence order, gapless; each entry's entry.created exactly once.
 */
async function expectWholeLog(
  w: World,
  messages: readonly BrokerMessage[],
  routePrefix: string,
): Promise<void> {
  const unique = deduplicated(messages);
  const log = await w.log();
  const head = await w.head();
  expect(log).toHaveLength(head);
  expect(unique).toHaveLength(head);
  const byId = new Map(log.map((e) => [e.id, e] as const));
  for (const m of unique) {
    const event = eventSchema.parse(m.body);
    expect(m.messageId).toBe(event.id);
    expect(m.route).toBe(`${routePrefix}${event.app}.${event.type}`);
    expect(event).toEqual(byId.get(event.id));
  }
  const events = unique.map((m) => m.body as LedgerEvent);
  const sequences = new Map<string, number[]>();
  for (const e of events.filter((e) => e.type === "entry.created")) {
    sequences.set(e.owner_id, [...(sequences.get(e.owner_id) ?? []), e.sequence]);
  }
  for (const [owner, seq] of sequences) {
    expect(seq, owner).toEqual(Array.from({ length: seq.length }, (_, i) => i + 1));
  }
  const created = new Map<number, number>();
  for (const e of events) {
    if (e.type === "entry.created") created.set(e.data.id, (created.get(e.data.id) ?? 0) + 1);
  }
  const entries = await w.entries();
  expect(entries.length).toBeGreaterThan(0);
  expect(entries.filter((e) => created.get(e.id) !== 1)).toEqual([]);
  expect(created.size).toBe(entries.length);
}

async function testStream(): Promise<TestStream> {
  const s = await freshNatsStream();
  onTestFinished(() => s.delete());
  return s;
}

async function testExchange(): Promise<TestExchange> {
  const x = await freshAmqpExchange();
  onTestFinished(() => x.delete());
  return x;
}

describe("the relay over a mixed load", () => {
  it(
    "puts every entry exactly once on NATS and on RabbitMQ, in each owner's order, checkpoints at the head",
    async () => {
      const w = await world();
      const stream = await testStream();
      const exchange = await testExchange();
      const nats = w.relay({ eventsUrl: testNatsUrl(), publisher: stream.publisher });
      const amqp = w.relay({ eventsUrl: testAmqpUrl(), publisher: exchange.publisher });
      await until(
        "both relays active",
        () => nats.state().role === "active" && amqp.state().role === "active",
      );

      await mixedLoad(w.app);
      await until("NATS to have the whole log", () => w.delivered("nats"));
      await until("RabbitMQ to have the whole log", () => w.delivered("amqp"));
      const head = await w.head();

      const onStream = await stream.messages();
      // The stream de-duplicates: nothing twice, and stored in position order.
      expect(onStream.map((m) => (m.body as LedgerEvent).position)).toEqual(
        Array.from({ length: head }, (_, i) => i + 1),
      );
      await expectWholeLog(w, onStream, `${stream.subjectPrefix}.`);
      const types = onStream.map((m) => (m.body as LedgerEvent).type);
      expect(new Set(types)).toEqual(
        new Set(["entry.created", "hold.created", "hold.captured", "hold.released"]),
      );
      expect(types.filter((t) => t === "hold.created")).toHaveLength(2 * 8);
      await until("the queue to receive every confirmed message", () => exchange.messages().length >= head);
      const received = exchange.messages();
      expect(received.every((m) => m.persistent === true && m.type === (m.body as LedgerEvent).type)).toBe(
        true,
      );
      await expectWholeLog(w, received, "");

      expect(await relayCheckpoint(sqlClientOf(w.tdb.db), "nats")).toBe(head);
      expect(await relayCheckpoint(sqlClientOf(w.tdb.db), "amqp")).toBe(head);
      await until(
        "the lag to show nothing pending",
        () => nats.state().pending === 0 && amqp.state().pending === 0,
      );
      expect(nats.state()).toMatchObject({
        role: "active",
        broker: "nats",
        broker_connected: true,
        pending: 0,
      });
      expect(amqp.state()).toMatchObject({
        role: "active",
        broker: "amqp",
        broker_connected: true,
        pending: 0,
      });
    },
    RELAY_TEST_TIMEOUT_MS,
  );
});

describe("two relays on one database", () => {
  let admin: postgres.Sql;
  beforeAll(() => {
    admin = postgres(testDatabaseUrl(), { max: 1, onnotice: () => {} });
  });
  afterAll(() => admin.end({ timeout: 5 }));

  /** The backend holding the NATS relay's lock in a database, if any. */
  async function lockHolder(database: string): Promise<number | undefined> {
    const rows = await admin<{ pid: number }[]>`select l.pid from pg_locks l
      where l.locktype = 'advisory' and l.classid = ${RELAY_LOCK_KEY} and l.objid = 1 and l.objsubid = 2 and l.granted
        and l.database = (select oid from pg_database where datname = ${database})`;
    return rows[0]?.pid;
  }

  it(
    "has one active; when the holder's lock connection dies, and when it stops, the other takes over and nothing is lost",
    async () => {
      const w = await world();
      const database = new URL(w.tdb.url as string).pathname.slice(1);
      const stream = await testStream();
      const a = w.relay({ eventsUrl: testNatsUrl(), publisher: stream.publisher });
      const b = w.relay({ eventsUrl: testNatsUrl(), publisher: stream.publisher });
      const roles = () => [a.state().role, b.state().role].sort();
      await until("one active, one standby", () => roles().join() === "active,standby");

      await mixedLoad(w.app, 3);
      const killed = await lockHolder(database);
      expect(killed).toBeTypeOf("number");
      // The holder's connection dies (a crashed process's does the same): its lock goes with it.
      await admin`select pg_terminate_backend(${killed as number})`;
      await Promise.all([
        mixedLoad(w.app, 3),
        until("another connection to hold the lock", async () => {
          const holder = await lockHolder(database);
          return holder !== undefined && holder !== killed;
        }),
      ]);
      await until("one active again", () => roles().join() === "active,standby");

      const active = a.state().role === "active" ? a : b;
      const standby = active === a ? b : a;
      await active.stop();
      expect(active.state().role).toBe("off");
      await until("the standby to take over", () => standby.state().role === "active");
      await mixedLoad(w.app, 3);

      await until("NATS to have the whole log", () => w.delivered("nats"));
      const head = await w.head();
      const onStream = await stream.messages();
      expect(onStream.map((m) => (m.body as LedgerEvent).position)).toEqual(
        Array.from({ length: head }, (_, i) => i + 1),
      );
      await expectWholeLog(w, onStream, `${stream.subjectPrefix}.`);
    },
    RELAY_TEST_TIMEOUT_MS,
  );
});

describe("a broker outage", () => {
  async function proxyTo(url: string, port: number): Promise<TcpProxy> {
    const target = new URL(url);
    const proxy = await startTcpProxy(target.hostname, Number(target.port || port));
    onTestFinished(() => proxy.close());
    return proxy;
  }

  it(
    "lets writes go on while NATS and RabbitMQ are cut, reports the lag, and catches up when they are back",
    async () => {
      const w = await world();
      const stream = await testStream();
      const exchange = await testExchange();
      const natsProxy = await proxyTo(testNatsUrl(), 4222);
      const amqpProxy = await proxyTo(testAmqpUrl(), 5672);
      const retries = { backoffMinMs: 100, backoffMaxMs: 1_000 };
      const nats = w.relay({
        eventsUrl: natsProxy.url(testNatsUrl()),
        publisher: { nats: { ...stream.publisher.nats, timeoutMs: 1_000 } },
        ...retries,
      });
      const amqp = w.relay({
        eventsUrl: amqpProxy.url(testAmqpUrl()),
        publisher: { amqp: { ...exchange.publisher.amqp, timeoutMs: 1_000 } },
        ...retries,
      });
      const app = createApp({
        db: w.tdb.db,
        ping: () => w.tdb.ping(),
        logger: silentLogger,
        relayState: () => nats.state(),
      });

      await mixedLoad(app, 2);
      await until(
        "the first part on both brokers",
        async () => (await w.delivered("nats")) && (await w.delivered("amqp")),
      );

      // NATS goes silent (connections open, nothing answers); RabbitMQ goes away (connections reset).
      await natsProxy.down("blackhole");
      await amqpProxy.down("refuse");
      await mixedLoad(app, 3);
      await until("both relays to see their broker down, with events pending", () =>
        [nats, amqp].every((r) => {
          const s = r.state();
          return !s.broker_connected && s.pending > 0 && s.last_error !== undefined;
        }),
      );
      const health = await app.request("/health");
      expect(health.status).toBe(200);
      const body = (await health.json()) as { status: string; events: Record<string, unknown> };
      expect(body.status).toBe("ok");
      expect(body.events).toMatchObject({
        status: "degraded",
        role: "active",
        broker: "nats",
        broker_connected: false,
      });
      expect(body.events.pending).toBeGreaterThan(0);
      expect(body.events.oldest_pending_at).toEqual(expect.any(String));
      expect(body.events.detail).toContain("writes go on");

      await natsProxy.up();
      await amqpProxy.up();
      await until("NATS to catch up", () => w.delivered("nats"));
      await until("RabbitMQ to catch up", () => w.delivered("amqp"));
      const head = await w.head();
      const onStream = await stream.messages();
      expect(onStream.map((m) => (m.body as LedgerEvent).position)).toEqual(
        Array.from({ length: head }, (_, i) => i + 1),
      );
      await expectWholeLog(w, onStream, `${stream.subjectPrefix}.`);
      await until(
        "the queue to receive every confirmed message",
        () => deduplicated(exchange.messages()).length >= head,
      );
      await expectWholeLog(w, exchange.messages(), "");
      await until(
        "the health to be ok again",
        () => nats.state().broker_connected && nats.state().pending === 0,
      );
      const healthy = (await (await app.request("/health")).json()) as { events: Record<string, unknown> };
      expect(healthy.events).toMatchObject({ status: "ok", broker_connected: true, pending: 0 });
      expect(healthy.events).not.toHaveProperty("last_error");
    },
    RELAY_TEST_TIMEOUT_MS,
  );
});
