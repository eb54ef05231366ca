// NATS JetStream: every event is a message on `ledger.<app>.<type>` in the stream LEDGER (created if
// missing: subjects `ledger.>`, file storage), with Nats-Msg-Id = the event id, so the stream stores an id
// once however often the relay sends it within the stream's duplicate window. Only what nats-server 2.9
// supports is used.
//
// The connection does not reconnect by itself: a lost connection fails the publish in flight and closes
// the publisher, and the relay connects again with its own backoff, so there is one place that retries.
import {
  jetstream,
  jetstreamManager,
  JetStreamApiCodes,
  JetStreamApiError,
  StorageType,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
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
  const js = jetstream(nc, { timeout: timeoutMs });

  return {
    kind: "nats",
    async publish(events: readonly LedgerEvent[]) {
      // Sent back to back on one connection, so the server stores them in this order; then every ack is
      // awaited. A failure midway leaves at most a prefix stored, which the retry's ids de-duplicate.
      const acks = events.map((e) =>
        js.publish(`${prefix}.${eventRoute(e)}`, JSON.stringify(e), { msgID: e.id, timeout: timeoutMs }),
      );
      const settled = await Promise.allSettled(acks);
      const failure = settled.findIndex((s) => s.status === "rejected" || s.value.stream !== stream);
      if (failure < 0) return;
      // The connection's state is unknown now (a late ack, a half-sent batch): drop it, so nothing it
      // still holds reaches the stream behind the relay's back, and the relay starts on a fresh one.
      await nc.close().catch(() => {});
      const e = events[failure] as LedgerEvent; // settled has one result per event
      const s = settled[failure] as PromiseSettledResult<{ stream: string }>;
      throw new BrokerError(
        "BROKER_PUBLISH_FAILED",
        s.status === "rejected"
          ? `NATS did not store event ${e.position} (${e.id}): ${reasonOf(s.reason)}`
          : `NATS stored event ${e.position} (${e.id}) in the stream ${s.value.stream}, not ${stream}`,
        s.status === "rejected" ? { cause: s.reason } : undefined,
      );
    },
    isConnected: () => !nc.isClosed(),
    close: async () => {
      if (!nc.isClosed()) await nc.close();
    },
  };
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
