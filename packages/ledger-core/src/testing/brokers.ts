// Test support for the brokers: a fresh JetStream stream (its own subjects) or a fresh RabbitMQ exchange
// with a queue bound to all of it, each with a random name, read back whole and deleted after. The real
// NATS and RabbitMQ of the machine are used (.ci/run starts them); nothing a test made is left behind, and
// no test reads what another made. No vitest here, so the harness can use it too.
import { randomBytes } from "node:crypto";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect as connectNatsServer } from "@nats-io/transport-node";
import { connect as connectRabbit, type ConsumeMessage } from "amqplib";
import type { PublisherOptions } from "../features/events/brokers/index.js";

/**
 * The brokers' URLs. This is test infrastructure, like TEST_DATABASE_URL: the one other place outside an
 * app's env that reads the environment.
 */
export const testNatsUrl = (): string => process.env.TEST_NATS_URL ?? "nats://127.0.0.1:4222";
export const testAmqpUrl = (): string => process.env.TEST_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";

const suffix = () => `${Date.now().toString(36)}_${randomBytes(4).toString("hex")}`;

/** A message as a test reads it back from a broker. */
export interface BrokerMessage {
  /** NATS: the subject; RabbitMQ: the routing key. */
  route: string;
  /** NATS: Nats-Msg-Id; RabbitMQ: message_id. */
  messageId: string | undefined;
  /** RabbitMQ's type property (NATS has none). */
  type: string | undefined;
  /** RabbitMQ: delivery mode 2 and the content type; undefined on NATS (the stream is on disk). */
  persistent: boolean | undefined;
  contentType: string | undefined;
  body: unknown;
}

export interface TestStream {
  readonly stream: string;
  readonly subjectPrefix: string;
  /** What the relay needs to publish into this stream. */
  readonly publisher: PublisherOptions;
  /** Every message in the stream, in stream order. */
  messages(): Promise<BrokerMessage[]>;
  /** How many messages the stream holds (after its de-duplication); 0 before the relay created it. */
  count(): Promise<number>;
  delete(): Promise<void>;
}

/**
 * A stream name and subject prefix no one else uses (JetStream refuses two streams with overlapping
 * subjects, so a test never publishes under `ledger.`). The relay creates the stream; delete() removes it.
 */
export async function freshNatsStream(url = testNatsUrl()): Promise<TestStream> {
  const id = suffix();
  const stream = `LEDGER_TEST_${id.toUpperCase()}`;
  const subjectPrefix = `ledgertest_${id}`;
  const nc = await connectNatsServer({ servers: url, name: "ledger-test" });
  const jsm = await jetstreamManager(nc);
  return {
    stream,
    subjectPrefix,
    publisher: { nats: { stream, subjectPrefix } },
    async messages() {
      const last = (await jsm.streams.info(stream)).state.last_seq;
      const found: BrokerMessage[] = [];
      for (let seq = 1; seq <= last; seq++) {
        const m = await jsm.streams.getMessage(stream, { seq });
        if (!m) continue;
        found.push({
          route: m.subject,
          messageId: m.header.get("Nats-Msg-Id") || undefined,
          type: undefined,
          persistent: undefined,
          contentType: undefined,
          body: m.json<unknown>(),
        });
      }
      return found;
    },
    async count() {
      try {
        return (await jsm.streams.info(stream)).state.messages;
      } catch {
        return 0;
      }
    },
    async delete() {
      try {
        await jsm.streams.delete(stream);
      } catch {
        // Never created (the test failed before the relay connected): nothing to remove.
      }
      await nc.close();
    },
  };
}

/** Deletes a stream by name if it exists (one a consumer made for its dead letters, say). */
export async function deleteNatsStream(name: string, url = testNatsUrl()): Promise<void> {
  const nc = await connectNatsServer({ servers: url, name: "ledger-test" });
  try {
    await (await jetstreamManager(nc)).streams.delete(name).catch(() => false);
  } finally {
    await nc.close();
  }
}

export interface TestExchange {
  readonly exchange: string;
  readonly queue: string;
  readonly publisher: PublisherOptions;
  /** Every message the bound queue has received so far, in arrival order. */
  messages(): BrokerMessage[];
  delete(): Promise<void>;
}

/**
 * A topic exchange no one else uses, declared here (durable, as the relay declares it) with a queue bound
 * to every routing key, consumed from the start; delete() removes both.
 */
export async function freshAmqpExchange(url = testAmqpUrl()): Promise<TestExchange> {
  const id = suffix();
  const exchange = `ledger.test.${id}`;
  const queue = `ledger.test.${id}.all`;
  const conn = await connectRabbit(url);
  const ch = await conn.createChannel();
  await ch.assertExchange(exchange, "topic", { durable: true });
  await ch.assertQueue(queue, { durable: true, autoDelete: false });
  await ch.bindQueue(queue, exchange, "#");
  const received: BrokerMessage[] = [];
  await ch.consume(
    queue,
    (m: ConsumeMessage | null) => {
      if (!m) return;
      received.push({
        route: m.fields.routingKey,
        messageId: m.properties.messageId as string | undefined,
        type: m.properties.type as string | undefined,
        persistent: m.properties.deliveryMode === 2,
        contentType: m.properties.contentType as string | undefined,
        body: JSON.parse(m.content.toString("utf8")) as unknown,
      });
    },
    { noAck: true },
  );
  return {
    exchange,
    queue,
    publisher: { amqp: { exchange } },
    messages: () => [...received],
    async delete() {
      await ch.deleteQueue(queue);
      await ch.deleteExchange(exchange);
      await conn.close();
    },
  };
}
