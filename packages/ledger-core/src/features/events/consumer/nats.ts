// The consumer on NATS JetStream: a durable pull consumer on the ledger's stream, explicit acks, one
// filter subject (nats-server 2.9 has no multi-filter consumers: to take several subjects, use a wildcard
// such as `ledger.*.hold.*`, or one consumer per subject), max_deliver bounded, and dead letters published
// to their own stream, outside `ledger.>`, so the ledger's stream never holds them.
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type ConsumerMessages,
  type JetStreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import { headers, nanos, type NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import {
  ConsumerError,
  DEAD_LETTER_HEADERS,
  pause,
  runDelivery,
  UNANSWERED_DELIVERIES,
  type BrokerConsumer,
  type ConsumerRuntime,
  type Delivery,
} from "./core.js";
import { reasonOf, redact } from "../brokers/index.js";

export interface NatsConsumerOptions {
  /** The ledger's stream. Default `LEDGER`. */
  stream?: string;
  /** The one filter subject: `ledger.>` (default), `ledger.app1.entry.created`, `ledger.*.hold.*`. */
  subject?: string;
  /** How long the server waits for an answer before delivering again; kept alive while a handler runs. */
  ackWaitMs?: number;
  /** The dead letters' stream, created if missing over `<first token of deadSubject>.>`. Default `LEDGER_DEAD`. */
  deadStream?: string;
  /** Where this consumer's dead letters go. Default `ledger_dead.<name>`. */
  deadSubject?: string;
  /** A new durable starts at the stream's next message instead of its first. Ignored once it exists. */
  deliverNew?: boolean;
}

export interface NatsSettings {
  stream: string;
  subject: string;
  ackWaitMs: number;
  deadStream: string;
  deadSubject: string;
  deliverNew: boolean;
  prefetch: number;
}

/** How long an ack, or a dead letter's publish, may wait for the server's answer. */
const ANSWER_TIMEOUT_MS = 5_000;
/** Waits between sessions after a failure: doubled from the first, at most the last. */
const SESSION_RETRY_FIRST_MS = 500;
const SESSION_RETRY_MAX_MS = 10_000;

export async function startNatsConsumer(
  url: string,
  rt: ConsumerRuntime,
  o: NatsSettings,
): Promise<BrokerConsumer> {
  let nc: NatsConnection;
  try {
    nc = await connect({ servers: url, name: `ledger-consumer:${rt.name}`, maxReconnectAttempts: -1 });
  } catch (error) {
    throw new ConsumerError(
      "BROKER_UNAVAILABLE",
      `NATS at ${redact(url)} cannot be reached: ${reasonOf(error)}`,
      {
        cause: error,
      },
    );
  }
  let jsm: JetStreamManager;
  try {
    jsm = await jetstreamManager(nc);
    await checkStream(jsm, o.stream);
    await ensureDeadStream(jsm, o);
    await ensureDurable(jsm, rt, o);
  } catch (error) {
    await nc.close();
    throw error;
  }
  const js = jetstream(nc);

  void (async () => {
    for await (const s of nc.status()) {
      if (rt.stopped.aborted) continue;
      if (s.type === "disconnect") {
        rt.status.state = "reconnecting";
        rt.report(
          new ConsumerError("BROKER_UNAVAILABLE", `disconnected from NATS (${s.server}); reconnecting`),
        );
      } else if (s.type === "reconnect") {
        rt.status.state = "running";
      }
    }
  })();

  const delivery = (m: JsMsg): Delivery => ({
    body: m.data,
    attempt: m.info.deliveryCount,
    source: m.subject,
    keepAliveMs: Math.max(Math.floor(o.ackWaitMs / 3), 1),
    working: () => m.working(),
    ack: async () => {
      await m.ackAck({ timeout: ANSWER_TIMEOUT_MS });
    },
    retry: (delayMs) => m.nak(delayMs),
    release: () => m.nak(),
    deadLetter: async (letter) => {
      const h = headers();
      h.set(DEAD_LETTER_HEADERS.reason, letter.reason);
      h.set(DEAD_LETTER_HEADERS.detail, letter.detail);
      h.set(DEAD_LETTER_HEADERS.consumer, rt.name);
      h.set(DEAD_LETTER_HEADERS.source, m.subject);
      h.set(DEAD_LETTER_HEADERS.deliveries, String(m.info.deliveryCount));
      if (letter.eventId !== null) h.set(DEAD_LETTER_HEADERS.eventId, letter.eventId);
      // The id makes the dead stream drop the copy a redelivery would publish again (within its
      // duplicate window) if this process died between the publish and the ack.
      await js.publish(o.deadSubject, m.data, {
        msgID: `${rt.name}:${m.info.stream}:${m.seq}`,
        headers: h,
        timeout: ANSWER_TIMEOUT_MS,
      });
      await m.ackAck({ timeout: ANSWER_TIMEOUT_MS });
    },
  });

  let messages: ConsumerMessages | null = null;
  const session = async (first: boolean) => {
    if (!first) await ensureDurable(jsm, rt, o);
    const consumer = await js.consumers.get(o.stream, rt.name);
    const iter = await consumer.consume({ max_messages: o.prefetch });
    messages = iter;
    if (rt.stopped.aborted) await iter.close();
    void (async () => {
      for await (const s of iter.status()) {
        // consume() keeps pulling from a consumer that is gone; a new session recreates it instead.
        if (
          s.type === "consumer_deleted" ||
          s.type === "consumer_not_found" ||
          s.type === "stream_not_found"
        ) {
          rt.report(
            new ConsumerError(
              "BROKER_UNAVAILABLE",
              `JetStream says ${s.type} for ${o.stream}/${rt.name}; recreating it`,
            ),
          );
          await iter.close();
        }
      }
    })();
    if (!first) rt.status.state = "running";
    const unhandled: JsMsg[] = [];
    for await (const m of iter) {
      if (rt.stopped.aborted) unhandled.push(m);
      else await runDelivery(delivery(m), rt);
    }
    // Stopping: what was still buffered goes back at once, for another instance to take; only now that
    // the iterator has ended, and its pull request's inbox with it, or the server would hand it straight
    // back to that request, where no one reads any more.
    for (const m of unhandled) m.nak();
  };

  const loop = (async () => {
    let failures = 0;
    for (let first = true; !rt.stopped.aborted; first = false) {
      try {
        await session(first);
        failures = 0;
      } catch (error) {
        failures++;
        rt.status.state = "reconnecting";
        rt.report(
          error instanceof ConsumerError
            ? error
            : new ConsumerError("BROKER_UNAVAILABLE", `JetStream session ended: ${reasonOf(error)}`, {
                cause: error,
              }),
        );
      }
      if (rt.stopped.aborted) break;
      await pause(
        Math.min(SESSION_RETRY_FIRST_MS * 2 ** Math.min(failures, 20), SESSION_RETRY_MAX_MS),
        rt.stopped,
      );
    }
  })();

  return {
    async stop() {
      await messages?.close();
      await loop;
      // close() drops what is still in the outbound buffer (the naks above): flush it first, if the
      // server answers.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        nc.flush().catch(() => {}),
        new Promise((resolve) => {
          timer = setTimeout(resolve, ANSWER_TIMEOUT_MS);
        }),
      ]);
      clearTimeout(timer);
      await nc.close();
    },
  };
}

function apiCode(error: unknown): number | null {
  return error instanceof JetStreamApiError ? error.code : null;
}

async function checkStream(jsm: JetStreamManager, stream: string): Promise<void> {
  try {
    await jsm.streams.info(stream);
  } catch (error) {
    if (apiCode(error) !== JetStreamApiCodes.StreamNotFound) throw error;
    throw new ConsumerError(
      "CONSUMER_STREAM_NOT_FOUND",
      `JetStream has no stream ${stream}: the relay creates it when it first runs (or create it over ledger.>)`,
      { cause: error, details: { stream } },
    );
  }
}

/** The dead letters' stream holds deadSubject: found, or created, or the subject is someone else's. */
async function ensureDeadStream(jsm: JetStreamManager, o: NatsSettings): Promise<void> {
  let holder: string | null;
  try {
    holder = await jsm.streams.find(o.deadSubject);
  } catch (error) {
    if (apiCode(error) !== JetStreamApiCodes.StreamNotFound) throw error;
    holder = null;
  }
  if (holder === o.deadStream) return;
  if (holder !== null) {
    throw new ConsumerError(
      "CONSUMER_CONFIG_CONFLICT",
      `dead-letter subject ${o.deadSubject} is held by stream ${holder}, not ${o.deadStream}`,
      { details: { deadSubject: o.deadSubject, holder } },
    );
  }
  const first = o.deadSubject.split(".")[0] ?? o.deadSubject;
  const subjects = [o.deadSubject.includes(".") ? `${first}.>` : o.deadSubject];
  try {
    // A stream added with the same config as one that exists is answered as created.
    await jsm.streams.add({
      name: o.deadStream,
      subjects,
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
    });
  } catch (error) {
    if (apiCode(error) === null) throw error;
    throw new ConsumerError(
      "CONSUMER_CONFIG_CONFLICT",
      `dead-letter stream ${o.deadStream} over ${subjects.join(", ")} cannot be created: ${reasonOf(error)}`,
      { cause: error, details: { deadStream: o.deadStream, subjects } },
    );
  }
}

/** The durable consumer, created, or brought to this configuration (nats-server 2.9 can edit these fields). */
async function ensureDurable(jsm: JetStreamManager, rt: ConsumerRuntime, o: NatsSettings): Promise<void> {
  const editable = {
    filter_subject: o.subject,
    ack_wait: nanos(o.ackWaitMs),
    max_deliver: rt.maxDeliver + UNANSWERED_DELIVERIES,
  };
  try {
    let exists = true;
    try {
      const info = await jsm.consumers.info(o.stream, rt.name);
      const c = info.config;
      if (
        c.filter_subject === editable.filter_subject &&
        c.ack_wait === editable.ack_wait &&
        c.max_deliver === editable.max_deliver
      ) {
        return;
      }
    } catch (error) {
      if (apiCode(error) !== JetStreamApiCodes.ConsumerNotFound) throw error;
      exists = false;
    }
    if (exists) await jsm.consumers.update(o.stream, rt.name, editable);
    else {
      await jsm.consumers.add(o.stream, {
        durable_name: rt.name,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: o.deliverNew ? DeliverPolicy.New : DeliverPolicy.All,
        ...editable,
      });
    }
  } catch (error) {
    if (apiCode(error) === null || error instanceof ConsumerError) throw error;
    throw new ConsumerError(
      "CONSUMER_CONFIG_CONFLICT",
      `durable consumer ${o.stream}/${rt.name} cannot take this configuration: ${reasonOf(error)}`,
      { cause: error, details: { stream: o.stream, consumer: rt.name, ...editable } },
    );
  }
}
