// RabbitMQ: every event is a persistent message on the durable topic exchange `ledger.events`, routing key
// `<app>.<type>`, message_id = the event id, type = the event type, sent on a confirm channel. A batch is
// done when the broker has confirmed every message: a confirmed persistent message is on disk in every
// durable queue it was routed to. RabbitMQ does not de-duplicate: a batch sent again after a failure
// reaches the queues again, and consumers de-duplicate by message_id (the consumer helper does).
//
// What no queue is bound for is dropped by the exchange, as RabbitMQ always does: bind the consumers'
// queues before relying on them, and replay what came earlier from GET /ledger/events.
import { once } from "node:events";
import { connect, type ChannelModel, type ConfirmChannel } from "amqplib";
import type { LedgerEvent } from "../envelope.js";
import { eventRoute } from "../envelope.js";
import { BrokerError, reasonOf, redact, type EventPublisher } from "./index.js";

export interface AmqpPublisherOptions {
  /** The topic exchange events are published to (declared durable if missing); default ledger.events. */
  exchange?: string;
  /** How long to wait for the connection and for a batch's confirms; default 10 s. */
  timeoutMs?: number;
}

export const AMQP_EXCHANGE_DEFAULT = "ledger.events";
const TIMEOUT_MS_DEFAULT = 10_000;
/** Seconds between heartbeats when the URL names none, so a silent broker is noticed in seconds. */
const HEARTBEAT_S_DEFAULT = 5;
/** How long close() waits for the broker's answer before it drops the socket. */
const CLOSE_WAIT_MS = 1_000;

export async function connectAmqp(url: string, opts: AmqpPublisherOptions = {}): Promise<EventPublisher> {
  const exchange = opts.exchange ?? AMQP_EXCHANGE_DEFAULT;
  const timeoutMs = opts.timeoutMs ?? TIMEOUT_MS_DEFAULT;
  const target = new URL(url);
  if (!target.searchParams.has("heartbeat"))
    target.searchParams.set("heartbeat", String(HEARTBEAT_S_DEFAULT));

  let conn: ChannelModel;
  try {
    conn = await connect(target.toString(), { timeout: timeoutMs });
  } catch (error) {
    throw new BrokerError("BROKER_CONNECT_FAILED", `RabbitMQ at ${redact(url)}: ${reasonOf(error)}`, {
      cause: error,
    });
  }
  let closed: Error | undefined;
  const lost = (why: Error) => {
    closed ??= why;
  };
  // Without listeners an 'error' event would crash the process; a 'close' follows every error.
  conn.on("error", (error: Error) => lost(error));
  conn.on("close", () => lost(new Error("the connection closed")));

  let ch: ConfirmChannel;
  try {
    ch = await conn.createConfirmChannel();
    ch.on("error", (error: Error) => lost(error));
    ch.on("close", () => lost(new Error("the channel closed")));
    await ch.assertExchange(exchange, "topic", { durable: true });
  } catch (error) {
    await conn.close().catch(() => {});
    throw new BrokerError(
      "BROKER_CONNECT_FAILED",
      `RabbitMQ at ${redact(url)}: could not declare the topic exchange ${exchange}: ${reasonOf(error)}`,
      { cause: error },
    );
  }

  const close = async () => {
    const wasOpen = closed === undefined;
    lost(new Error("closed by the relay"));
    if (!wasOpen) return;
    // A broker that went silent never answers the close: give it a moment, then drop the socket, so no
    // message still buffered reaches the exchange behind the relay's back.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      conn.close().catch(() => {}),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, CLOSE_WAIT_MS);
      }),
    ]);
    clearTimeout(timer);
    (conn.connection as unknown as { stream?: { destroy(): void } }).stream?.destroy();
  };

  return {
    kind: "amqp",
    async publish(events: readonly LedgerEvent[]) {
      if (closed) throw publishFailed(events[0], closed);
      const sending = (async () => {
        const confirms: Promise<void>[] = [];
        for (const e of events) {
          let written = true;
          const confirm = new Promise<void>((resolve, reject) => {
            written = ch.publish(
              exchange,
              eventRoute(e),
              Buffer.from(JSON.stringify(e)),
              {
                persistent: true,
                messageId: e.id,
                type: e.type,
                contentType: "application/json",
                timestamp: Math.floor(Date.parse(e.occurred_at) / 1000),
                appId: "ledger",
              },
              (error: unknown) => (error ? reject(publishFailed(e, error)) : resolve()),
            );
          });
          // Awaited below with the others; this only keeps an early failure from going unhandled.
          confirm.catch(() => {});
          confirms.push(confirm);
          // The socket's buffer is full: wait until it drains before writing more.
          if (!written) await drained(ch, () => closed);
        }
        await Promise.all(confirms);
      })();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no confirms within ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        await Promise.race([sending, timeout]);
      } catch (error) {
        // The channel's state is unknown now: close it, so the relay starts again on a fresh one.
        await close();
        throw error instanceof BrokerError ? error : publishFailed(events[0], error);
      } finally {
        clearTimeout(timer);
      }
    },
    isConnected: () => closed === undefined,
    close,
  };
}

/** Resolves when the channel's write buffer drained; rejects if it closed first. */
async function drained(ch: ConfirmChannel, closedWith: () => Error | undefined): Promise<void> {
  const error = closedWith();
  if (error) throw error;
  await Promise.race([
    once(ch, "drain"),
    once(ch, "close").then(() => {
      throw closedWith() ?? new Error("the channel closed");
    }),
  ]);
}

function publishFailed(e: LedgerEvent | undefined, error: unknown): BrokerError {
  const which = e ? `event ${e.position} (${e.id})` : "the batch";
  return new BrokerError("BROKER_PUBLISH_FAILED", `RabbitMQ did not confirm ${which}: ${reasonOf(error)}`, {
    cause: error,
  });
}
