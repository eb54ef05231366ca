// The publishers against the machine's real NATS JetStream and RabbitMQ (.ci/run starts them): what a
// message carries, that a publish resolves only with every event stored and in order, that NATS keeps one
// message per event id however often it is sent, and that a broker that went away fails the publish
// instead of swallowing it. Each test publishes into a stream or exchange of its own, deleted after.
import { randomUUID } from "node:crypto";
import net from "node:net";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect as connectNatsServer } from "@nats-io/transport-node";
import { describe, expect, it, onTestFinished } from "vitest";
import {
  BrokerError,
  brokerKindOf,
  connectPublisher,
  type EventPublisher,
} from "../src/features/events/brokers/index.js";
import type { LedgerEvent } from "../src/features/events/envelope.js";
import {
  freshAmqpExchange,
  freshNatsStream,
  testAmqpUrl,
  testNatsUrl,
  type BrokerMessage,
} from "../src/testing/brokers.js";
import { startTcpProxy } from "../src/testing/proxy.js";

let position = 0;
/** An entry.created envelope for app "brokers-test", at the next position. */
function sampleEvent(owner = "owner-1", sequence = 1): LedgerEvent {
  position += 1;
  const at = new Date(Date.UTC(2026, 2, 1, 10, 0, 0, position)).toISOString();
  return {
    id: randomUUID(),
    type: "entry.created",
    version: 1,
    occurred_at: at,
    app: "brokers-test",
    owner_id: owner,
    sequence,
    position,
    request_id: null,
    actor: null,
    trace_id: null,
    data: {
      id: position,
      app: "brokers-test",
      operation: "CREDIT_ADD",
      owner_id: owner,
      amount: 10,
      balance_after: 10 * sequence,
      sequence,
      nonce: `n-${position}`,
      created_at: at,
      balance: 10 * sequence,
      available: 10 * sequence,
      held: 0,
    },
  };
}

const samples = (n: number) => Array.from({ length: n }, (_, i) => sampleEvent("owner-1", i + 1));

async function publisherFor(url: string, opts: Parameters<typeof connectPublisher>[1]) {
  const publisher = await connectPublisher(url, opts);
  onTestFinished(() => publisher.close());
  return publisher;
}

async function rejection(p: Promise<unknown>): Promise<BrokerError> {
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(BrokerError);
  return error as BrokerError;
}

/** A TCP port nothing listens on: one the kernel gave and took back. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** What the brokers hold, as the events' ids and positions in the order stored. */
const idsOf = (messages: readonly BrokerMessage[]) => messages.map((m) => m.messageId);

describe("the broker URL", () => {
  it.each([
    ["nats://127.0.0.1:4222", "nats"],
    ["amqp://guest:guest@127.0.0.1:5672", "amqp"],
    ["amqps://user:pw@rabbit.example:5671/vhost", "amqp"],
  ] as const)("%s is %s", (url, kind) => {
    expect(brokerKindOf(url)).toBe(kind);
  });

  it.each(["http://127.0.0.1:4222", "kafka://broker:9092", "127.0.0.1:4222", "nats", ""])(
    "%j is refused as EVENTS_URL_INVALID",
    async (url) => {
      expect(() => brokerKindOf(url)).toThrow(BrokerError);
      expect((await rejection(connectPublisher(url))).code).toBe("EVENTS_URL_INVALID");
    },
  );

  it("never shows the password of a refused URL", async () => {
    const error = await rejection(connectPublisher(`amqp://guest:hunter2@127.0.0.1:${await closedPort()}`));
    expect(error.code).toBe("BROKER_CONNECT_FAILED");
    expect(error.message).not.toContain("hunter2");
  });
});

describe("NATS JetStream", () => {
  async function stream() {
    const s = await freshNatsStream();
    onTestFinished(() => s.delete());
    return s;
  }

  it("creates the stream if missing (file storage, the prefix's subjects) and stores each event with its id", async () => {
    const s = await stream();
    const publisher = await publisherFor(testNatsUrl(), s.publisher);
    expect(publisher.kind).toBe("nats");
    expect(publisher.isConnected()).toBe(true);
    const events = [sampleEvent(), { ...sampleEvent(), type: "hold.created" as const }] as LedgerEvent[];
    await publisher.publish(events);

    const nc = await connectNatsServer({ servers: testNatsUrl() });
    onTestFinished(() => nc.close());
    const info = await (await jetstreamManager(nc)).streams.info(s.stream);
    expect(info.config.subjects).toEqual([`${s.subjectPrefix}.>`]);
    expect(info.config.storage).toBe("file");

    const stored = await s.messages();
    expect(stored.map((m) => m.route)).toEqual([
      `${s.subjectPrefix}.brokers-test.entry.created`,
      `${s.subjectPrefix}.brokers-test.hold.created`,
    ]);
    expect(idsOf(stored)).toEqual(events.map((e) => e.id));
    expect(stored.map((m) => m.body)).toEqual(events);
  });

  it("keeps one message per event id: a batch sent again, and again with more, adds only the new", async () => {
    const s = await stream();
    const publisher = await publisherFor(testNatsUrl(), s.publisher);
    const events = samples(50);
    await publisher.publish(events.slice(0, 30));
    await publisher.publish(events.slice(0, 30));
    await publisher.publish(events);
    // Another connection (another relay taking over) sends them once more.
    const other = await publisherFor(testNatsUrl(), s.publisher);
    await other.publish(events.slice(10));

    const stored = await s.messages();
    expect(idsOf(stored)).toEqual(events.map((e) => e.id));
    expect(stored.map((m) => (m.body as LedgerEvent).position)).toEqual(events.map((e) => e.position));
  });

  it("publishes a batch of 500 in order, every one acknowledged", async () => {
    const s = await stream();
    const publisher = await publisherFor(testNatsUrl(), s.publisher);
    const events = samples(500);
    await publisher.publish(events);
    expect(idsOf(await s.messages())).toEqual(events.map((e) => e.id));
  });

  it("refuses a stream of that name that does not take the subjects", async () => {
    const s = await stream();
    const nc = await connectNatsServer({ servers: testNatsUrl() });
    onTestFinished(() => nc.close());
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: s.stream, subjects: [`${s.subjectPrefix}_other.>`] });
    const error = await rejection(connectPublisher(testNatsUrl(), s.publisher));
    expect(error.code).toBe("BROKER_CONNECT_FAILED");
    expect(error.message).toContain(`${s.subjectPrefix}.>`);
  });

  it("fails the publish, naming the event, when the stream was deleted under it (no stream takes the subject)", async () => {
    const s = await stream();
    const publisher = await publisherFor(testNatsUrl(), s.publisher);
    await publisher.publish(samples(2));
    await s.delete();
    const events = samples(3);
    const error = await rejection(publisher.publish(events));
    expect(error.code).toBe("BROKER_PUBLISH_FAILED");
    expect(error.message).toContain(`event ${events[0]?.position} (${events[0]?.id})`);
    expect(error.message).toContain("no stream takes the subject");
    expect(publisher.isConnected()).toBe(false);
  });

  it("fails the publish when another stream took the subjects: nothing is stored there", async () => {
    const s = await stream();
    const publisher = await publisherFor(testNatsUrl(), s.publisher);
    await s.delete();
    const nc = await connectNatsServer({ servers: testNatsUrl() });
    onTestFinished(() => nc.close());
    const jsm = await jetstreamManager(nc);
    const other = `${s.stream}_OTHER`;
    await jsm.streams.add({ name: other, subjects: [`${s.subjectPrefix}.>`] });
    onTestFinished(() => jsm.streams.delete(other).then(() => undefined));
    const error = await rejection(publisher.publish(samples(2)));
    expect(error.code).toBe("BROKER_PUBLISH_FAILED");
    expect(error.message).toContain(`in the stream ${s.stream}`);
    expect((await jsm.streams.info(other)).state.messages).toBe(0);
  });

  it("an empty batch is published at once", async () => {
    const s = await stream();
    const publisher = await publisherFor(testNatsUrl(), s.publisher);
    await publisher.publish([]);
    expect(await s.messages()).toEqual([]);
  });

  it("fails to connect to a port with no NATS as BROKER_CONNECT_FAILED", async () => {
    const error = await rejection(connectPublisher(`nats://127.0.0.1:${await closedPort()}`));
    expect(error.code).toBe("BROKER_CONNECT_FAILED");
  });

  it.each(["refuse", "blackhole"] as const)(
    "fails the publish when the server goes away (%s); the batch sent again on a new connection is stored once, in order",
    async (mode) => {
      const s = await stream();
      const target = new URL(testNatsUrl());
      const proxy = await startTcpProxy(target.hostname, Number(target.port || 4222));
      onTestFinished(() => proxy.close());
      const publisher = await publisherFor(proxy.url(testNatsUrl()), {
        nats: { ...s.publisher.nats, timeoutMs: 500 },
      });
      const before = samples(3);
      await publisher.publish(before);
      await proxy.down(mode);
      const failed = samples(3);
      const error = await rejection(publisher.publish(failed));
      expect(error.code).toBe("BROKER_PUBLISH_FAILED");
      expect(publisher.isConnected()).toBe(false);
      await proxy.up();
      // The relay's move: a new connection, the failed batch again, then more.
      const again = await publisherFor(proxy.url(testNatsUrl()), s.publisher);
      const after = samples(2);
      await again.publish([...failed, ...after]);
      const ids = idsOf(await s.messages());
      expect(ids).toEqual([...before, ...failed, ...after].map((e) => e.id));
    },
  );
});

describe("RabbitMQ", () => {
  async function exchange() {
    const x = await freshAmqpExchange();
    onTestFinished(() => x.delete());
    return x;
  }

  /** Waits until the bound queue has received n messages (confirms precede delivery to consumers). */
  async function received(x: Awaited<ReturnType<typeof exchange>>, n: number): Promise<BrokerMessage[]> {
    for (let i = 0; i < 500 && x.messages().length < n; i++) await new Promise((r) => setTimeout(r, 10));
    return x.messages();
  }

  it("publishes persistent JSON messages with message_id and type to the topic exchange, in order, confirmed", async () => {
    const x = await exchange();
    const publisher = await publisherFor(testAmqpUrl(), x.publisher);
    expect(publisher.kind).toBe("amqp");
    const events = samples(200);
    await publisher.publish(events);
    const got = await received(x, events.length);
    expect(got).toHaveLength(events.length);
    expect(got.map((m) => m.route)).toEqual(events.map(() => "brokers-test.entry.created"));
    expect(idsOf(got)).toEqual(events.map((e) => e.id));
    expect(got.every((m) => m.type === "entry.created")).toBe(true);
    expect(got.every((m) => m.persistent === true && m.contentType === "application/json")).toBe(true);
    expect(got.map((m) => m.body)).toEqual(events);
  });

  it("declares a missing exchange durable and topic", async () => {
    const x = await exchange();
    const name = `${x.exchange}.declared`;
    const publisher = await publisherFor(testAmqpUrl(), { amqp: { exchange: name } });
    await publisher.publish(samples(1));
    // Declaring it again as anything but a durable topic exchange would close the channel.
    const again = await publisherFor(testAmqpUrl(), { amqp: { exchange: name } });
    await again.close();
    const { connect } = await import("amqplib");
    const conn = await connect(testAmqpUrl());
    onTestFinished(() => conn.close());
    const ch = await conn.createChannel();
    await ch.assertExchange(name, "topic", { durable: true });
    await ch.deleteExchange(name);
  });

  it("fails to connect to a port with no RabbitMQ as BROKER_CONNECT_FAILED", async () => {
    const error = await rejection(connectPublisher(`amqp://guest:guest@127.0.0.1:${await closedPort()}`));
    expect(error.code).toBe("BROKER_CONNECT_FAILED");
  });

  it.each(["refuse", "blackhole"] as const)(
    "fails the publish when the broker goes away (%s) and says it is no longer connected",
    async (mode) => {
      const x = await exchange();
      const target = new URL(testAmqpUrl());
      const proxy = await startTcpProxy(target.hostname, Number(target.port || 5672));
      onTestFinished(() => proxy.close());
      const publisher: EventPublisher = await publisherFor(proxy.url(testAmqpUrl()), {
        amqp: { ...x.publisher.amqp, timeoutMs: 500 },
      });
      const before = samples(3);
      await publisher.publish(before);
      await proxy.down(mode);
      const failed = samples(3);
      const error = await rejection(publisher.publish(failed));
      expect(error.code).toBe("BROKER_PUBLISH_FAILED");
      expect(publisher.isConnected()).toBe(false);
      expect((await rejection(publisher.publish(samples(1)))).code).toBe("BROKER_PUBLISH_FAILED");
      await proxy.up();
      const again = await publisherFor(proxy.url(testAmqpUrl()), x.publisher);
      await again.publish(before);
      // No de-duplication on RabbitMQ: the queue has the batch twice; consumers de-duplicate by message_id.
      // The unconfirmed batch may arrive too (the silent network delivers what it held once it is back).
      const twice = () => before.every((e) => idsOf(x.messages()).filter((id) => id === e.id).length === 2);
      for (let i = 0; i < 500 && !twice(); i++) await new Promise((r) => setTimeout(r, 10));
      expect(twice()).toBe(true);
      const published = new Set([...before, ...failed].map((e) => e.id));
      expect(idsOf(x.messages()).every((id) => id !== undefined && published.has(id))).toBe(true);
    },
  );
});
