// The brokers the relay publishes to. LEDGER_EVENTS_URL's scheme picks one: nats:// is NATS JetStream,
// amqp:// or amqps:// is RabbitMQ. Each publisher sends a batch in position order and resolves only once
// the broker has acknowledged every event as stored (a JetStream PubAck, a RabbitMQ publisher confirm),
// so the relay may move its checkpoint past them; any failure throws, and the relay sends the batch again.
// Redelivery is safe: on NATS the stream drops a message id it already has (Nats-Msg-Id, within the
// stream's duplicate window), and on both every message carries the event id for consumers to
// de-duplicate by.
import type { LedgerEvent } from "../envelope.js";
import { connectAmqp, type AmqpPublisherOptions } from "./amqp.js";
import { connectNats, type NatsPublisherOptions } from "./nats.js";

export type BrokerKind = "nats" | "amqp";

export interface EventPublisher {
  readonly kind: BrokerKind;
  /**
   * Sends the events in order and resolves once the broker has acknowledged (persisted) every one of them.
   * Throws BrokerError (BROKER_PUBLISH_FAILED) if any was refused or not acknowledged in time; some of
   * them may have been stored even then.
   */
  publish(events: readonly LedgerEvent[]): Promise<void>;
  /** False once the connection is gone (closed by close() or lost): connect a new publisher then. */
  isConnected(): boolean;
  /** Closes the connection; safe to call twice, and after the connection was lost. */
  close(): Promise<void>;
}

export type BrokerErrorCode =
  /** LEDGER_EVENTS_URL is not a nats://, amqp:// or amqps:// URL. */
  | "EVENTS_URL_INVALID"
  /** The broker could not be reached, or refused the setup (the stream, the exchange). */
  | "BROKER_CONNECT_FAILED"
  /** An event was refused, or its acknowledgement did not come in time. */
  | "BROKER_PUBLISH_FAILED";

export class BrokerError extends Error {
  readonly code: BrokerErrorCode;
  constructor(code: BrokerErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "BrokerError";
    this.code = code;
  }
}

export interface PublisherOptions {
  nats?: NatsPublisherOptions;
  amqp?: AmqpPublisherOptions;
}

/** What a broker URL's scheme names; throws BrokerError (EVENTS_URL_INVALID) for any other. */
export function brokerKindOf(url: string): BrokerKind {
  let scheme: string;
  try {
    scheme = new URL(url).protocol;
  } catch {
    throw new BrokerError("EVENTS_URL_INVALID", `LEDGER_EVENTS_URL is not a URL: ${redact(url)}`);
  }
  if (scheme === "nats:") return "nats";
  if (scheme === "amqp:" || scheme === "amqps:") return "amqp";
  throw new BrokerError(
    "EVENTS_URL_INVALID",
    `LEDGER_EVENTS_URL must be nats://host:port (NATS JetStream) or amqp(s)://user:password@host:port ` +
      `(RabbitMQ); got the scheme ${JSON.stringify(scheme)}`,
  );
}

/** Connects to the broker the URL names and prepares what it publishes into (stream or exchange). */
export async function connectPublisher(url: string, opts: PublisherOptions = {}): Promise<EventPublisher> {
  return brokerKindOf(url) === "nats" ? connectNats(url, opts.nats) : connectAmqp(url, opts.amqp);
}

/** The URL without its password, for messages and logs. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparseable)";
  }
}

/** The error's message, for BrokerError messages: the broker's own words, never a stack. */
export function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export { connectAmqp, type AmqpPublisherOptions } from "./amqp.js";
export { connectNats, type NatsPublisherOptions } from "./nats.js";
