// The consumer helper other services use to take the ledger's events from its broker (`@ledger/core/
// events/consumer`): a durable JetStream consumer or RabbitMQ queue, explicit acks, bounded redelivery,
// dead letters for poison messages, and a handler called once per event id, in the same Postgres
// transaction as the record that it was processed (consumer/processed.ts).
//
// One consumer handles one message at a time, in the order the broker delivers them (which, for one
// owner, is its sequence order, retries and messages given back aside). To go faster, start more instances with the same name:
// they share the durable consumer or queue, and the processed table keeps each event to one of them.
import type { Sql } from "postgres";
import { startAmqpConsumer, type AmqpConsumerOptions, type AmqpSettings } from "./consumer/amqp.js";
import {
  ConsumerError,
  type BrokerConsumer,
  type ConsumerRuntime,
  type ConsumerStatus,
  type LedgerEventHandler,
} from "./consumer/core.js";
import { startNatsConsumer, type NatsConsumerOptions, type NatsSettings } from "./consumer/nats.js";
import { ensureProcessedTable } from "./consumer/processed.js";
import { AMQP_EXCHANGE_DEFAULT } from "./brokers/amqp.js";
import { NATS_STREAM_DEFAULT, NATS_SUBJECT_PREFIX_DEFAULT } from "./brokers/nats.js";

export {
  ConsumerError,
  DEAD_LETTER_DETAIL_MAX,
  DEAD_LETTER_HEADERS,
  decodeEvent,
  UNANSWERED_DELIVERIES,
  type ConsumerErrorCode,
  type ConsumerStatus,
  type DeadLetterReason,
  type Decoded,
  type LedgerEventHandler,
} from "./consumer/core.js";
export { PROCESSED_TABLE, pruneProcessedEvents } from "./consumer/processed.js";
export type { AmqpConsumerOptions } from "./consumer/amqp.js";
export type { NatsConsumerOptions } from "./consumer/nats.js";
export type { LedgerEvent } from "./envelope.js";

export interface ConsumeLedgerEventsOptions {
  /** `nats://host:4222` (JetStream) or `amqp://user:pass@host:5672` (RabbitMQ). */
  url: string;
  /**
   * The consumer's own Postgres (postgres.js). Its table ledger_consumer_processed is created if missing;
   * the handler's transaction is taken from it. The caller owns it: stop() does not end it.
   */
  sql: Sql;
  /** The durable consumer's / queue's name and the key of its processed ids: [A-Za-z0-9_-], 1 to 64. */
  name: string;
  handler: LedgerEventHandler;
  /** Deliveries on which the handler may fail before the message is dead-lettered: 1 to 100, default 5. */
  maxDeliver?: number;
  /** The wait before a failed event's next delivery, doubled each time: 0 to 3,600,000, default 1,000. */
  retryDelayMs?: number;
  /** The longest such wait: retryDelayMs to 3,600,000, default 60,000. */
  retryDelayMaxMs?: number;
  /**
   * Messages the broker may hand over ahead of the one being handled (JetStream's pull batch, RabbitMQ's
   * prefetch): 1 to 1,000, default 16. On RabbitMQ a message waiting for its retry keeps one.
   */
  prefetch?: number;
  /** Every failure the consumer recovers from (a failed handler, a lost connection...), as it happens. */
  onError?: (error: ConsumerError) => void;
  nats?: NatsConsumerOptions;
  amqp?: AmqpConsumerOptions;
}

export interface LedgerEventConsumer {
  readonly name: string;
  /** Counters since start, the state, and the last failure. */
  status(): ConsumerStatus;
  /**
   * Stops taking messages, waits for the one being handled (its commit and ack; a handler that never
   * returns keeps stop waiting), gives back the ones buffered, and disconnects from the broker.
   */
  stop(): Promise<void>;
}

const NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
/** AMQP short strings (exchange, queue, binding key) are at most 255 bytes. */
const AMQP_NAME_BYTES_MAX = 255;
const DELAY_MS_MAX = 3_600_000;

/**
 * Connects, makes sure of the processed table and the broker's consumer (or queue), and starts handling
 * events. Rejects with a ConsumerError: CONSUMER_OPTIONS_INVALID, then BROKER_UNAVAILABLE,
 * CONSUMER_STREAM_NOT_FOUND (JetStream), CONSUMER_CONFIG_CONFLICT; or with the database's error.
 * Once started, failures are retried and reported through onError and status().lastError.
 */
export async function consumeLedgerEvents(opts: ConsumeLedgerEventsOptions): Promise<LedgerEventConsumer> {
  const { url, sql, name, handler } = opts;
  const scheme = schemeOf(url);
  check(NAME_PATTERN.test(name), `name must match ${NAME_PATTERN.source}, got ${JSON.stringify(name)}`);
  check(typeof handler === "function", "handler must be a function");
  const maxDeliver = int("maxDeliver", opts.maxDeliver, 5, 1, 100);
  const retryDelayMs = int("retryDelayMs", opts.retryDelayMs, 1_000, 0, DELAY_MS_MAX);
  const retryDelayMaxMs = int(
    "retryDelayMaxMs",
    opts.retryDelayMaxMs,
    Math.max(60_000, retryDelayMs),
    retryDelayMs,
    DELAY_MS_MAX,
  );
  const prefetch = int("prefetch", opts.prefetch, 16, 1, 1_000);
  const settings =
    scheme === "nats"
      ? ({ broker: "nats", nats: natsSettings(name, prefetch, opts.nats ?? {}) } as const)
      : ({ broker: "amqp", amqp: amqpSettings(name, prefetch, opts.amqp ?? {}) } as const);

  await ensureProcessedTable(sql);

  const abort = new AbortController();
  const status: ConsumerStatus = {
    broker: scheme,
    state: "running",
    handled: 0,
    skipped: 0,
    ignored: 0,
    retried: 0,
    deadLettered: 0,
    lastError: null,
  };
  const rt: ConsumerRuntime = {
    name,
    sql,
    handler,
    maxDeliver,
    retryDelayMs,
    retryDelayMaxMs,
    stopped: abort.signal,
    status,
    report(error) {
      status.lastError = { code: error.code, message: error.message, at: new Date().toISOString() };
      try {
        opts.onError?.(error);
      } catch {
        // A throwing listener must not stop the consumer; the failure is in status().lastError anyway.
      }
    },
  };
  const broker: BrokerConsumer =
    settings.broker === "nats"
      ? await startNatsConsumer(url, rt, settings.nats)
      : await startAmqpConsumer(url, rt, settings.amqp);

  let stopped: Promise<void> | null = null;
  return {
    name,
    status: () => ({ ...status, lastError: status.lastError && { ...status.lastError } }),
    stop() {
      stopped ??= (async () => {
        status.state = "stopping";
        abort.abort();
        await broker.stop();
        status.state = "stopped";
      })();
      return stopped;
    },
  };
}

function check(ok: boolean, message: string): asserts ok {
  if (!ok) throw new ConsumerError("CONSUMER_OPTIONS_INVALID", message);
}

function schemeOf(url: string): "nats" | "amqp" {
  let protocol: string;
  try {
    protocol = new URL(url).protocol;
  } catch {
    throw new ConsumerError("CONSUMER_OPTIONS_INVALID", "url is not a URL (nats://... or amqp://...)");
  }
  if (protocol === "nats:") return "nats";
  if (protocol === "amqp:" || protocol === "amqps:") return "amqp";
  throw new ConsumerError(
    "CONSUMER_OPTIONS_INVALID",
    `url must be nats:// or amqp:// (or amqps://), got ${protocol}//`,
  );
}

function int(field: string, value: number | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  check(
    Number.isInteger(value) && value >= min && value <= max,
    `${field} must be an integer from ${min} to ${max}, got ${String(value)}`,
  );
  return value;
}

/** A JetStream subject: dot-separated tokens, `*` a whole token, `>` only the whole last one. */
function isSubject(s: string, wildcards: boolean): boolean {
  if (s.length === 0 || s.length > 255 || /\s/.test(s)) return false;
  const tokens = s.split(".");
  return tokens.every((t, i) => {
    if (t.length === 0) return false;
    if (t === "*" || (t === ">" && i === tokens.length - 1)) return wildcards;
    return !t.includes("*") && !t.includes(">");
  });
}

function natsSettings(name: string, prefetch: number, o: NatsConsumerOptions): NatsSettings {
  const s: NatsSettings = {
    stream: o.stream ?? NATS_STREAM_DEFAULT,
    subject: o.subject ?? `${NATS_SUBJECT_PREFIX_DEFAULT}.>`,
    ackWaitMs: int("nats.ackWaitMs", o.ackWaitMs, 30_000, 1_000, DELAY_MS_MAX),
    deadStream: o.deadStream ?? "LEDGER_DEAD",
    deadSubject: o.deadSubject ?? `ledger_dead.${name}`,
    deliverNew: o.deliverNew ?? false,
    prefetch,
  };
  check(NAME_PATTERN.test(s.stream), `nats.stream must match ${NAME_PATTERN.source}`);
  check(NAME_PATTERN.test(s.deadStream), `nats.deadStream must match ${NAME_PATTERN.source}`);
  check(isSubject(s.subject, true), `nats.subject is not a subject: ${JSON.stringify(s.subject)}`);
  check(isSubject(s.deadSubject, false), `nats.deadSubject is not a subject without wildcards`);
  return s;
}

function amqpSettings(name: string, prefetch: number, o: AmqpConsumerOptions): AmqpSettings {
  const queue = o.queue ?? name;
  const s: AmqpSettings = {
    exchange: o.exchange ?? AMQP_EXCHANGE_DEFAULT,
    bindingKey: o.bindingKey ?? "#",
    queue,
    deadQueue: o.deadQueue ?? `${queue}.dead`,
    prefetch,
  };
  for (const [field, value] of Object.entries(s)) {
    if (typeof value !== "string") continue;
    const bytes = Buffer.byteLength(value);
    check(bytes >= 1 && bytes <= AMQP_NAME_BYTES_MAX, `amqp.${field} must be 1 to 255 bytes`);
  }
  check(
    !s.queue.startsWith("amq.") && !s.deadQueue.startsWith("amq."),
    "amqp queues may not start with amq.",
  );
  check(s.queue !== s.deadQueue, "amqp.deadQueue must differ from amqp.queue");
  return s;
}
