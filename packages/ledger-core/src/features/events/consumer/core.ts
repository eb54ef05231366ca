// What a consumer does with one message, whichever broker handed it over: decode it, run the handler once
// per event id (processed.ts), and answer the broker: ack, retry later, or dead-letter. The brokers'
// modules (nats.ts, amqp.ts) only say how each answer is given.
//
// Deliveries are counted by the broker (JetStream's delivery count, a quorum queue's x-delivery-count), so
// a delivery that ended without an answer (a stop with messages still buffered, a crash, an ack_wait that
// ran out) counts too. A handler that fails on delivery maxDeliver or later sends the message to the
// dead letters. The broker's own bound is UNANSWERED_DELIVERIES above that, so such unanswered deliveries
// do not take the handler's last tries away; the delivery that reaches it dead-letters the message without
// calling the handler, so even an event that kills its consumer every time ends in the dead letters
// instead of coming back forever (RabbitMQ) or being dropped by the server (JetStream's max_deliver).
import type { Sql, TransactionSql } from "postgres";
import { z } from "@hono/zod-openapi";
import { isUnavailable } from "../../../store/errors.js";
import { EVENT_TYPES, EVENT_VERSION, eventSchema, type LedgerEvent } from "../envelope.js";
import { reasonOf } from "../brokers/index.js";
import { processOnce } from "./processed.js";

export type ConsumerErrorCode =
  /** An option out of its bounds or pattern (at start). */
  | "CONSUMER_OPTIONS_INVALID"
  /** JetStream has no source stream (at start): the relay creates it; start it first, or create it. */
  | "CONSUMER_STREAM_NOT_FOUND"
  /** The broker holds a consumer, stream or queue of that name that this configuration cannot take. */
  | "CONSUMER_CONFIG_CONFLICT"
  /** The broker cannot be reached (at start), or the connection was lost (then it is retried). */
  | "BROKER_UNAVAILABLE"
  /** The consumer's Postgres cannot be reached: the message is held and tried again, not counted. */
  | "DATABASE_UNAVAILABLE"
  /** The handler (or its transaction) failed: the message is retried, then dead-lettered. */
  | "HANDLER_FAILED"
  /** The ack after a commit did not reach the broker: the message comes again and is skipped. */
  | "ACK_FAILED"
  /** A dead letter could not be published: the message is retried instead. */
  | "DEAD_LETTER_FAILED";

export class ConsumerError extends Error {
  readonly code: ConsumerErrorCode;
  /** Machine-readable facts: the event id, the delivery, the broker's answer. */
  readonly details: Record<string, unknown>;

  constructor(
    code: ConsumerErrorCode,
    message: string,
    opts: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "ConsumerError";
    this.code = code;
    this.details = opts.details ?? {};
  }
}

/** Why a message went to the dead letters (the `Ledger-Dead-Reason` header). */
export type DeadLetterReason =
  /** The body is not JSON. */
  | "NOT_JSON"
  /** JSON, but not an event of a known type and version valid against its schema. */
  | "INVALID_ENVELOPE"
  /** The handler failed on delivery maxDeliver (or later). */
  | "HANDLER_FAILED"
  /** Delivered maxDeliver + UNANSWERED_DELIVERIES times without an answer; the handler was not called. */
  | "DELIVERY_LIMIT";

/** The headers a dead letter carries, on both brokers; its body is the message's, byte for byte. */
export const DEAD_LETTER_HEADERS = {
  reason: "Ledger-Dead-Reason",
  /** The error's message or the validation issues, on one line, at most DEAD_LETTER_DETAIL_MAX chars. */
  detail: "Ledger-Dead-Detail",
  consumer: "Ledger-Consumer",
  /** The subject (JetStream) or routing key (RabbitMQ) the message came on. */
  source: "Ledger-Source",
  /** The delivery that dead-lettered it (1 is the first). */
  deliveries: "Ledger-Deliveries",
  /** The event's id, when the body had one. */
  eventId: "Ledger-Event-Id",
} as const;

export const DEAD_LETTER_DETAIL_MAX = 1000;

/** Deliveries the broker allows above maxDeliver, for those that end without an answer (see the top). */
export const UNANSWERED_DELIVERIES = 2;

/**
 * Called once per event id, inside the transaction that records the id: write the effect through `tx`
 * and it commits with the record, or not at all. Throwing rolls both back, and the event is retried.
 */
export type LedgerEventHandler = (event: LedgerEvent, tx: TransactionSql) => unknown;

export interface ConsumerStatus {
  broker: "nats" | "amqp";
  state: "running" | "reconnecting" | "stopping" | "stopped";
  /** Events whose handler committed. */
  handled: number;
  /** Deliveries of events already handled (redeliveries, duplicates): acked, handler not called. */
  skipped: number;
  /** Events of a type or version this code does not know (newer than it): acked, handler not called. */
  ignored: number;
  /** Handler failures that were given back to the broker for a later delivery. */
  retried: number;
  deadLettered: number;
  lastError: { code: ConsumerErrorCode; message: string; at: string } | null;
}

/** The state a running consumer shares with its broker module. */
export interface ConsumerRuntime {
  readonly name: string;
  readonly sql: Sql;
  readonly handler: LedgerEventHandler;
  readonly maxDeliver: number;
  readonly retryDelayMs: number;
  readonly retryDelayMaxMs: number;
  /** Aborted by stop(): waits end at once. */
  readonly stopped: AbortSignal;
  readonly status: ConsumerStatus;
  report(error: ConsumerError): void;
}

export interface DeadLetter {
  reason: DeadLetterReason;
  detail: string;
  eventId: string | null;
}

/** One message as its broker handed it over, and the answers it can be given. */
export interface Delivery {
  readonly body: Uint8Array;
  /** The broker's count: 1 on the first delivery. */
  readonly attempt: number;
  /** The subject or routing key it came on. */
  readonly source: string;
  /** Tells the broker the message is still being worked on (JetStream's ack_wait); may be a no-op. */
  readonly keepAliveMs: number | null;
  working(): void;
  /** Acknowledges it; resolves once the broker has it where the broker can say so (JetStream). */
  ack(): Promise<void>;
  /** Gives it back for a delivery in delayMs. */
  retry(delayMs: number): void;
  /** Gives it back at once (the consumer stops). */
  release(): void;
  /** Publishes the dead letter (confirmed), then acknowledges the message. */
  deadLetter(letter: DeadLetter): Promise<void>;
}

export type Decoded =
  | { kind: "event"; event: LedgerEvent }
  | { kind: "unknown"; eventId: string; type: string; version: number }
  | { kind: "poison"; reason: "NOT_JSON" | "INVALID_ENVELOPE"; detail: string; eventId: string | null };

const KNOWN_TYPES: ReadonlySet<string> = new Set(EVENT_TYPES);
const eventIdSchema = z.uuid();

/**
 * A message's body as the event it carries. An envelope of a type or version this code does not know is
 * not poison: additive changes bring new types, and a breaking change publishes a new version beside the
 * old one, so a consumer built against version 1 passes the others by.
 */
export function decodeEvent(body: Uint8Array): Decoded {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("utf8"));
  } catch (error) {
    return { kind: "poison", reason: "NOT_JSON", detail: reasonOf(error), eventId: null };
  }
  const fields = typeof value === "object" && value !== null ? (value as Record<string, unknown>) : {};
  const id = eventIdSchema.safeParse(fields.id);
  const eventId = id.success ? id.data : null;
  const { type, version } = fields;
  if (
    eventId !== null &&
    typeof type === "string" &&
    typeof version === "number" &&
    (!KNOWN_TYPES.has(type) || version !== EVENT_VERSION)
  ) {
    return { kind: "unknown", eventId, type, version };
  }
  const parsed = eventSchema.safeParse(value);
  if (!parsed.success) {
    const detail = parsed.error.issues
      .map((i) => (i.path.length > 0 ? `${i.path.join(".")}: ${i.message}` : i.message))
      .join("; ");
    return { kind: "poison", reason: "INVALID_ENVELOPE", detail, eventId };
  }
  return { kind: "event", event: parsed.data };
}

/** The wait before the delivery after `attempt`: retryDelayMs, doubled each time, at most retryDelayMaxMs. */
export function retryDelayMs(rt: Pick<ConsumerRuntime, "retryDelayMs" | "retryDelayMaxMs">, attempt: number) {
  return Math.min(rt.retryDelayMs * 2 ** Math.min(attempt - 1, 30), rt.retryDelayMaxMs);
}

/** Waits while the consumer's Postgres is away: doubled from the first, at most the last. */
const OUTAGE_RETRY_FIRST_MS = 200;
const OUTAGE_RETRY_MAX_MS = 5_000;
/** How long `select 1` may take before the database counts as away. */
const PROBE_TIMEOUT_MS = 5_000;

class DeliveryLimitReached extends Error {}

/** Decodes one delivery, runs the handler once per event id, and answers the broker. Never throws. */
export async function runDelivery(d: Delivery, rt: ConsumerRuntime): Promise<void> {
  const decoded = decodeEvent(d.body);
  if (decoded.kind === "poison") {
    await deadLetter(d, rt, { reason: decoded.reason, detail: decoded.detail, eventId: decoded.eventId });
    return;
  }
  if (decoded.kind === "unknown") {
    if (await ack(d, rt, decoded.eventId)) rt.status.ignored++;
    return;
  }
  const { event } = decoded;
  const lastDelivery = d.attempt >= rt.maxDeliver + UNANSWERED_DELIVERIES;
  const handler: LedgerEventHandler = lastDelivery
    ? () => {
        throw new DeliveryLimitReached();
      }
    : rt.handler;

  let outcome: "handled" | "skipped";
  for (let outage = 0; ; outage++) {
    try {
      outcome = await keptAlive(d, () => processOnce(rt.sql, rt.name, event, handler));
      break;
    } catch (error) {
      if (error instanceof DeliveryLimitReached) {
        const detail = `delivered ${d.attempt} times without an answer; maxDeliver is ${rt.maxDeliver}`;
        await deadLetter(d, rt, { reason: "DELIVERY_LIMIT", detail, eventId: event.id });
        return;
      }
      // A lost connection inside the handler may be the handler's own doing (a call to another service):
      // only a database that does not answer `select 1` is an outage, and an outage is not the event's fault.
      if (isUnavailable(error) && !(await answers(rt.sql))) {
        rt.report(
          new ConsumerError(
            "DATABASE_UNAVAILABLE",
            `the consumer's database is unavailable: ${reasonOf(error)}`,
            {
              cause: error,
              details: { eventId: event.id },
            },
          ),
        );
        const waitMs = Math.min(OUTAGE_RETRY_FIRST_MS * 2 ** Math.min(outage, 20), OUTAGE_RETRY_MAX_MS);
        if (!(await keptAlive(d, () => pause(waitMs, rt.stopped)))) {
          d.release();
          return;
        }
        continue;
      }
      rt.report(
        new ConsumerError(
          "HANDLER_FAILED",
          `handler failed on event ${event.id} (delivery ${d.attempt}, maxDeliver ${rt.maxDeliver}): ${reasonOf(error)}`,
          { cause: error, details: { eventId: event.id, attempt: d.attempt } },
        ),
      );
      if (d.attempt >= rt.maxDeliver) {
        await deadLetter(d, rt, { reason: "HANDLER_FAILED", detail: reasonOf(error), eventId: event.id });
      } else {
        d.retry(retryDelayMs(rt, d.attempt));
        rt.status.retried++;
      }
      return;
    }
  }
  rt.status[outcome]++;
  await ack(d, rt, event.id);
}

async function ack(d: Delivery, rt: ConsumerRuntime, eventId: string): Promise<boolean> {
  try {
    await d.ack();
    return true;
  } catch (error) {
    rt.report(
      new ConsumerError("ACK_FAILED", `ack of event ${eventId} failed: ${reasonOf(error)}`, {
        cause: error,
        details: { eventId, attempt: d.attempt },
      }),
    );
    return false;
  }
}

async function deadLetter(d: Delivery, rt: ConsumerRuntime, letter: DeadLetter): Promise<void> {
  const detail = oneLine(letter.detail).slice(0, DEAD_LETTER_DETAIL_MAX);
  try {
    await d.deadLetter({ ...letter, detail });
    rt.status.deadLettered++;
  } catch (error) {
    rt.report(
      new ConsumerError(
        "DEAD_LETTER_FAILED",
        `dead letter (${letter.reason}) not published: ${reasonOf(error)}`,
        {
          cause: error,
          details: { eventId: letter.eventId, attempt: d.attempt },
        },
      ),
    );
    d.retry(retryDelayMs(rt, d.attempt));
  }
}

/** Runs fn, telling the broker every keepAliveMs that the message is still being worked on. */
async function keptAlive<T>(d: Delivery, fn: () => Promise<T>): Promise<T> {
  if (d.keepAliveMs === null) return fn();
  const timer = setInterval(() => d.working(), d.keepAliveMs);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}

/** Whether the database answers `select 1` within PROBE_TIMEOUT_MS. */
async function answers(sql: Sql): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), PROBE_TIMEOUT_MS);
  });
  try {
    return await Promise.race([
      sql`select 1`.then(
        () => true,
        () => false,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits ms; false when the signal ended the wait first. */
export function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** Header values are one line (NATS refuses CR and LF in them). */
export function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, " ");
}

/** What a broker's module hands back: the consumer, running. */
export interface BrokerConsumer {
  /** Stops taking messages, waits for the one in flight, gives back what is buffered, and disconnects. */
  stop(): Promise<void>;
}
