// NATS JetStream: every event is a message on `ledger.<app>.<type>` in the stream LEDGER (created if
// missing: subjects `ledger.>`, file storage), with Nats-Msg-Id = the event id, so the stream stores an id
// once however often the relay sends it within the stream's duplicate window. Only what nats-server 2.9
// supports is used.
//
// The connection does not reconnect by itself: a lost connection fails the publish in flight and closes
// the publisher, and the relay connects again with its own backoff, so there is one place that retries.
import {
  jetstreamManager,
  JetStreamApiCodes,
  JetStreamApiError,
  StorageType,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { connect, createInbox, headers, type Msg, type NatsConnection } from "@nats-io/transport-node";
import type { LedgerEvent } from "../envelope.js";
import { eventRoute } from "../envelope.js";
import { BrokerError, reasonOf, redact, type EventPublisher } from "./index.js";

export interface NatsPublisherOptions {
  /** The stream events are stored in; default LEDGER. */
  stream?: string;
  /** Subjects are `<prefix>.<app>.<type>`; default "ledger". The stream is created with `<prefix>.>`. */
  subjectPrefix?: string;
  /** How long to wait for the connection and for each acknowledgement; default 5 s. */
  timeoutMs?: number;
}

export const NATS_STREAM_DEFAULT = "LEDGER";
export const NATS_SUBJECT_PREFIX_DEFAULT = "ledger";
const TIMEOUT_MS_DEFAULT = 5_000;
/** The stream de-duplicates message ids seen within this window (NATS's own default, said out loud). */
const DUPLICATE_WINDOW_NS = 2 * 60 * 1_000_000_000;

export async function connectNats(url: string, opts: NatsPublisherOptions = {}): Promise<EventPublisher> {
  const stream = opts.stream ?? NATS_STREAM_DEFAULT;
  const prefix = opts.subjectPrefix ?? NATS_SUBJECT_PREFIX_DEFAULT;
  const timeoutMs = opts.timeoutMs ?? TIMEOUT_MS_DEFAULT;
  let nc: NatsConnection;
  try {
    nc = await connect({ servers: url, reconnect: false, timeout: timeoutMs, name: "ledger-relay" });
  } catch (error) {
    throw new BrokerError("BROKER_CONNECT_FAILED", `NATS at ${redact(url)}: ${reasonOf(error)}`, {
      cause: error,
    });
  }
  try {
    const jsm = await jetstreamManager(nc, { timeout: timeoutMs });
    await ensureStream(jsm, stream, `${prefix}.>`);
  } catch (error) {
    await nc.close().catch(() => {});
    if (error instanceof BrokerError) throw error;
    throw new BrokerError(
      "BROKER_CONNECT_FAILED",
      `NATS at ${redact(url)}: could not set up the stream ${stream} (is JetStream enabled, nats-server -js?): ${reasonOf(error)}`,
      { cause: error },
    );
  }
  const acks = ackInbox(nc);

  return {
    kind: "nats",
    async publish(events: readonly LedgerEvent[]) {
      // Sent back to back on one connection, so the server stores them in this order; then every ack is
      // awaited. A failure midway leaves at most a prefix stored, which the retry's ids de-duplicate.
      let failure: { at: number; reason: string; cause?: unknown } | undefined;
      try {
        const answers = acks.expect(events.length, timeoutMs);
        events.forEach((e, i) => {
          const h = headers();
          h.set("Nats-Msg-Id", e.id);
          // The stream refuses it rather than another stream storing it, should one take the subject.
          h.set("Nats-Expected-Stream", stream);
          nc.publish(`${prefix}.${eventRoute(e)}`, JSON.stringify(e), {
            reply: answers.replyTo(i),
            headers: h,
          });
        });
        const results = await answers.all;
        const at = results.findIndex((r) => r.stream !== stream);
        if (at >= 0) {
          const r = results[at] as PubAck;
          failure = { at, reason: r.error ?? `stored in the stream ${r.stream}, not ${stream}` };
        }
      } catch (error) {
        failure = { at: error instanceof AckFailure ? error.at : 0, reason: reasonOf(error), cause: error };
      }
      if (failure === undefined) return;
      // The connection's state is unknown now (a late ack, a half-sent batch): drop it, so nothing it
      // still holds reaches the stream behind the relay's back, and the relay starts on a fresh one.
      await nc.close().catch(() => {});
      const e = events[failure.at] as LedgerEvent;
      throw new BrokerError(
        "BROKER_PUBLISH_FAILED",
        `NATS did not store event ${e.position} (${e.id}) in the stream ${stream}: ${failure.reason}`,
        failure.cause === undefined ? undefined : { cause: failure.cause },
      );
    },
    isConnected: () => !nc.isClosed(),
    close: async () => {
      if (!nc.isClosed()) await nc.close();
    },
  };
}

/** What JetStream answered one message: the stream that stored it, or why none did. */
interface PubAck {
  stream: string;
  error?: string;
}

/** An ack that did not come (timeout, connection closed) for the message at `at` of a batch. */
class AckFailure extends Error {
  constructor(
    readonly at: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * JetStream's acks, collected on one subscription: each message of a batch names `<inbox>.<batch>.<i>` as
 * its reply subject and the stream answers there. This is the client's request/reply without its cost
 * per message (a timer, a promise, and an Error built for every request even when it succeeds: most of
 * the relay's CPU under load, in a profile of `pnpm bench`): one timer per batch instead.
 */
function ackInbox(nc: NatsConnection) {
  const inbox = createInbox();
  let batch = 0;
  /** The batch in flight (the relay publishes one at a time); acks of an earlier one are ignored. */
  let current:
    | { batch: number; results: (PubAck | undefined)[]; missing: number; settle: (failure?: string) => void }
    | undefined;
  nc.subscribe(`${inbox}.>`, {
    callback: (err, msg) => {
      if (err || current === undefined) return;
      const [b, i] = msg.subject
        .slice(inbox.length + 1)
        .split(".")
        .map(Number);
      if (b !== current.batch || i === undefined || current.results[i] !== undefined) return;
      current.results[i] = pubAckOf(msg);
      current.missing -= 1;
      if (current.missing === 0) current.settle();
    },
  });
  const closed = () => current?.settle("the connection closed before every acknowledgement came");
  void nc.closed().then(closed, closed);
  return {
    /** Starts a batch of n messages: their reply subjects, and every ack in order (rejects on a missing one). */
    expect(n: number, timeoutMs: number) {
      if (nc.isClosed()) throw new Error("the connection is closed");
      batch += 1;
      const b = batch;
      const results = new Array<PubAck | undefined>(n).fill(undefined);
      const all = new Promise<PubAck[]>((resolve, reject) => {
        const timer = setTimeout(
          () => current?.settle(`no acknowledgement within ${timeoutMs} ms`),
          timeoutMs,
        );
        current = {
          batch: b,
          results,
          missing: n,
          settle: (failure) => {
            clearTimeout(timer);
            current = undefined;
            if (failure === undefined) resolve(results as PubAck[]);
            else reject(new AckFailure(Math.max(0, results.indexOf(undefined)), failure));
          },
        };
        if (n === 0) current.settle();
      });
      return { replyTo: (i: number) => `${inbox}.${b}.${i}`, all };
    },
  };
}

/** A JetStream publish answer: `{stream, seq, duplicate?}`, `{error: {code, description}}`, or a status. */
function pubAckOf(msg: Msg): PubAck {
  if (msg.headers?.hasError || msg.data.length === 0) {
    const code = msg.headers?.code ?? 0;
    return {
      stream: "",
      error: code === 503 ? "no stream takes the subject (503 no responders)" : `status ${code}`,
    };
  }
  try {
    const body = msg.json<{ stream?: string; error?: { code?: number; description?: string } }>();
    if (body.error)
      return { stream: "", error: `${body.error.code ?? ""} ${body.error.description ?? ""}`.trim() };
    return { stream: body.stream ?? "" };
  } catch {
    return { stream: "", error: "an answer that is not JSON" };
  }
}

/** Creates the stream if it does not exist; an existing one must take the subjects, or nothing is stored. */
async function ensureStream(jsm: JetStreamManager, name: string, subjects: string): Promise<void> {
  let taken = await streamSubjects(jsm, name);
  if (taken === undefined) {
    try {
      await jsm.streams.add({
        name,
        subjects: [subjects],
        storage: StorageType.File,
        duplicate_window: DUPLICATE_WINDOW_NS,
      });
      return;
    } catch (error) {
      // Another relay created it meanwhile (with the same settings JetStream answers OK; else this).
      taken = await streamSubjects(jsm, name);
      if (taken === undefined) throw error;
    }
  }
  if (!taken.includes(subjects) && !taken.includes(">")) {
    throw new BrokerError(
      "BROKER_CONNECT_FAILED",
      `The NATS stream ${name} exists without the subjects ${subjects} (it has ${taken.join(", ") || "none"}): ` +
        "add them to it, or delete it and let the relay create it",
    );
  }
}

async function streamSubjects(jsm: JetStreamManager, name: string): Promise<string[] | undefined> {
  try {
    return (await jsm.streams.info(name)).config.subjects ?? [];
  } catch (error) {
    if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound)
      return undefined;
    throw error;
  }
}
