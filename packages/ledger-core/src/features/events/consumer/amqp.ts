// The consumer on RabbitMQ 3.10: a durable quorum queue bound to the ledger's topic exchange, manual
// acks, a prefetch window. A quorum queue because it counts deliveries (x-delivery-count, also for
// messages returned by a closed channel), which bounds redelivery the same way JetStream's count does;
// the bound is enforced here (core.ts), not by x-delivery-limit, so that changing maxDeliver never makes
// the queue's declaration inequivalent to the one the broker holds. Dead letters are published by the
// consumer to `<queue>.dead` with their reason (a broker-side dead-letter exchange would carry none).
//
// A failed message waits its retry delay unacked, in this process, then is nacked back to the queue: it
// keeps one of the prefetch slots meanwhile, so the ones behind it go on being handled.
import { connect, type ChannelModel, type ConfirmChannel, type ConsumeMessage, type Options } from "amqplib";
import {
  ConsumerError,
  DEAD_LETTER_HEADERS,
  pause,
  runDelivery,
  type BrokerConsumer,
  type ConsumerRuntime,
  type Delivery,
} from "./core.js";
import { reasonOf, redact } from "../brokers/index.js";

export interface AmqpConsumerOptions {
  /** The ledger's topic exchange, declared durable if missing. Default `ledger.events`. */
  exchange?: string;
  /** The binding key: `#` (default), `app1.entry.created`, `*.hold.*`. */
  bindingKey?: string;
  /** The durable queue. Default: the consumer's name. */
  queue?: string;
  /** Where dead letters go. Default `<queue>.dead`. */
  deadQueue?: string;
}

export interface AmqpSettings {
  exchange: string;
  bindingKey: string;
  queue: string;
  deadQueue: string;
  prefetch: number;
}

/** How long connecting may take. */
const CONNECT_TIMEOUT_MS = 10_000;
/** Seconds between heartbeats when the URL names none, so a silent broker is noticed in seconds. */
const HEARTBEAT_S_DEFAULT = 5;
/** Waits between sessions after a failure: doubled from the first, at most the last. */
const SESSION_RETRY_FIRST_MS = 500;
const SESSION_RETRY_MAX_MS = 10_000;
/** A quorum queue: the only kind that counts deliveries on RabbitMQ 3.10. */
const QUEUE_ARGUMENTS = { "x-queue-type": "quorum" } as const;

interface Session {
  /** Resolves when the connection or the channel closed, for whatever reason. */
  closed: Promise<void>;
  /** Ends the session: stops deliveries, waits for the message in flight, gives back the rest. */
  end(): Promise<void>;
}

export async function startAmqpConsumer(
  url: string,
  rt: ConsumerRuntime,
  o: AmqpSettings,
): Promise<BrokerConsumer> {
  let current: Session = await openSession(url, rt, o);

  const loop = (async () => {
    let failures = 0;
    while (!rt.stopped.aborted) {
      await current.closed;
      if (rt.stopped.aborted) break;
      await current.end();
      rt.status.state = "reconnecting";
      for (;;) {
        await pause(
          Math.min(SESSION_RETRY_FIRST_MS * 2 ** Math.min(failures, 20), SESSION_RETRY_MAX_MS),
          rt.stopped,
        );
        if (rt.stopped.aborted) return;
        try {
          current = await openSession(url, rt, o);
          failures = 0;
          rt.status.state = "running";
          break;
        } catch (error) {
          failures++;
          rt.report(error instanceof ConsumerError ? error : brokerUnavailable(url, error));
        }
      }
    }
  })();

  return {
    async stop() {
      await current.end();
      await loop;
      // The loop may have opened a session while the first end() ran.
      await current.end();
    },
  };
}

function brokerUnavailable(url: string, error: unknown): ConsumerError {
  return new ConsumerError("BROKER_UNAVAILABLE", `RabbitMQ at ${redact(url)}: ${reasonOf(error)}`, {
    cause: error,
  });
}

async function openSession(url: string, rt: ConsumerRuntime, o: AmqpSettings): Promise<Session> {
  const target = new URL(url);
  if (!target.searchParams.has("heartbeat"))
    target.searchParams.set("heartbeat", String(HEARTBEAT_S_DEFAULT));
  let conn: ChannelModel;
  try {
    conn = await connect(target.toString(), {
      timeout: CONNECT_TIMEOUT_MS,
      clientProperties: { connection_name: `ledger-consumer:${rt.name}` },
    });
  } catch (error) {
    throw brokerUnavailable(url, error);
  }
  let isClosed = false;
  let onClosed: () => void = () => {};
  const closed = new Promise<void>((resolve) => {
    onClosed = () => {
      isClosed = true;
      resolve();
    };
  });
  // Without listeners an 'error' event would crash the process; a 'close' follows every error.
  conn.on("error", (error: Error) => {
    if (!rt.stopped.aborted) rt.report(brokerUnavailable(url, error));
  });
  conn.on("close", onClosed);

  let ch: ConfirmChannel;
  try {
    ch = await conn.createConfirmChannel();
    ch.on("error", (error: Error) => {
      if (!rt.stopped.aborted) rt.report(brokerUnavailable(url, error));
    });
    ch.on("close", onClosed);
    await declare(ch, o);
  } catch (error) {
    await conn.close().catch(() => {});
    throw error instanceof ConsumerError ? error : brokerUnavailable(url, error);
  }

  // Deliveries wait here and are handled one at a time, in the order they came.
  const buffered: ConsumeMessage[] = [];
  let wake: () => void = () => {};
  const retries = new Set<NodeJS.Timeout>();
  let ending = false;

  const settle = (what: string, fn: () => void) => {
    if (isClosed) throw new Error(`the channel closed before the ${what}`);
    fn();
  };
  const giveBack = (m: ConsumeMessage) => {
    // A closed channel gave the message back already (and counted the delivery); one closing under us
    // throws, and then it does the same.
    if (isClosed) return;
    try {
      ch.nack(m, false, true);
    } catch {
      // see above
    }
  };
  const delivery = (m: ConsumeMessage): Delivery => ({
    body: m.content,
    attempt: deliveryCount(m) + 1,
    source: m.fields.routingKey,
    keepAliveMs: null,
    working: () => {},
    // AMQP 0-9-1 acks get no answer; the channel's close, at stop, is sent after them.
    ack: () => {
      settle("ack", () => ch.ack(m));
      return Promise.resolve();
    },
    retry: (delayMs) => {
      const timer = setTimeout(() => {
        retries.delete(timer);
        giveBack(m);
      }, delayMs);
      retries.add(timer);
    },
    release: () => giveBack(m),
    deadLetter: async (letter) => {
      const headers: Record<string, string | number> = {
        [DEAD_LETTER_HEADERS.reason]: letter.reason,
        [DEAD_LETTER_HEADERS.detail]: letter.detail,
        [DEAD_LETTER_HEADERS.consumer]: rt.name,
        [DEAD_LETTER_HEADERS.source]: m.fields.routingKey,
        [DEAD_LETTER_HEADERS.deliveries]: deliveryCount(m) + 1,
      };
      if (letter.eventId !== null) headers[DEAD_LETTER_HEADERS.eventId] = letter.eventId;
      const props: Options.Publish = { persistent: true, headers };
      if (typeof m.properties.messageId === "string") props.messageId = m.properties.messageId;
      if (typeof m.properties.contentType === "string") props.contentType = m.properties.contentType;
      if (typeof m.properties.type === "string") props.type = m.properties.type;
      await new Promise<void>((resolve, reject) => {
        settle("dead letter", () =>
          ch.sendToQueue(o.deadQueue, m.content, props, (err: unknown) =>
            err
              ? reject(err instanceof Error ? err : new Error("the broker refused the dead letter"))
              : resolve(),
          ),
        );
      });
      settle("ack", () => ch.ack(m));
    },
  });

  let consumerTag: string;
  try {
    ({ consumerTag } = await ch.consume(
      o.queue,
      (m) => {
        if (m === null) {
          // The broker cancelled the consumer (the queue was deleted): a new session declares it again.
          if (!rt.stopped.aborted) {
            rt.report(
              new ConsumerError("BROKER_UNAVAILABLE", `RabbitMQ cancelled the consumer of ${o.queue}`),
            );
          }
          void conn.close().catch(() => {});
          return;
        }
        buffered.push(m);
        wake();
      },
      { noAck: false },
    ));
  } catch (error) {
    await conn.close().catch(() => {});
    throw brokerUnavailable(url, error);
  }

  void closed.then(() => wake());
  const worker = (async () => {
    for (;;) {
      if (ending || isClosed) return;
      const m = buffered.shift();
      if (m) {
        await runDelivery(delivery(m), rt);
        continue;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  })();

  let ended: Promise<void> | null = null;
  return {
    closed,
    end() {
      ended ??= (async () => {
        ending = true;
        if (!isClosed) await ch.cancel(consumerTag).catch(() => {});
        wake();
        await worker;
        for (const timer of retries) clearTimeout(timer);
        retries.clear();
        // Closing the channel gives back what was delivered and not answered (buffered, waiting a retry).
        await ch.close().catch(() => {});
        await conn.close().catch(() => {});
      })();
      return ended;
    },
  };
}

/** The exchange, the queue and its dead letters' queue, the binding, and the prefetch window. */
async function declare(ch: ConfirmChannel, o: AmqpSettings): Promise<void> {
  try {
    await ch.assertExchange(o.exchange, "topic", { durable: true });
    await ch.assertQueue(o.queue, { durable: true, arguments: QUEUE_ARGUMENTS });
    await ch.assertQueue(o.deadQueue, { durable: true, arguments: QUEUE_ARGUMENTS });
    await ch.bindQueue(o.queue, o.exchange, o.bindingKey);
    await ch.prefetch(o.prefetch);
  } catch (error) {
    // 406 PRECONDITION_FAILED: the broker holds an exchange or queue of that name declared otherwise
    // (a classic queue, another exchange type).
    if ((error as { code?: unknown }).code === 406) {
      throw new ConsumerError(
        "CONSUMER_CONFIG_CONFLICT",
        `RabbitMQ refused the declaration: ${reasonOf(error)}`,
        {
          cause: error,
          details: { exchange: o.exchange, queue: o.queue, deadQueue: o.deadQueue },
        },
      );
    }
    throw error;
  }
}

/** The quorum queue's count of earlier deliveries (0 on the first). */
function deliveryCount(m: ConsumeMessage): number {
  const n: unknown = m.properties.headers?.["x-delivery-count"];
  return typeof n === "number" && Number.isInteger(n) && n >= 0 ? n : 0;
}
