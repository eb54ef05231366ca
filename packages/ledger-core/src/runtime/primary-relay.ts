// The relay of a server of several worker processes (LEDGER_WORKERS > 1): it runs in the primary, the
// process that only supervises, not in a worker. A relay in a worker shares that worker's event loop with
// its HTTP requests, and the cluster hands each worker an equal share of the connections, so the whole
// server slowed to the pace of the one worker that also relayed (`pnpm bench`, uniform against
// uniform-events: the gap closed once the relay ran apart from the workers).
//
// The primary sends its relay's state to every worker once a second over the cluster's IPC channel, and
// each worker's /health reports it; until the first one arrives (the first second after a fork), a
// worker reports the lag it reads itself, as a standby.
import type { Logger } from "pino";
import type { LedgerDb } from "../store/client.js";
import { observeRelay, type Relay, type RelayState } from "../features/events/relay.js";

/** How often the primary sends its relay's state to the workers. */
export const RELAY_STATE_EVERY_MS = 1_000;

/** The IPC message's one key, so a worker tells it from any other message it may get. */
const MESSAGE_KEY = "ledgerRelayState";

interface StateMessage {
  [MESSAGE_KEY]: RelayState;
}

function isStateMessage(m: unknown): m is StateMessage {
  return typeof m === "object" && m !== null && MESSAGE_KEY in m;
}

/** Somewhere a state message can go: a cluster worker as the primary sees it. */
export interface StateReceiver {
  isConnected(): boolean;
  send(message: StateMessage): unknown;
}

/**
 * The primary's side: sends `relay`'s state to every worker from `workers()` now and every
 * RELAY_STATE_EVERY_MS, until the returned function is called.
 */
export function broadcastRelayState(relay: Relay, workers: () => readonly StateReceiver[]): () => void {
  const send = () => {
    const message: StateMessage = { [MESSAGE_KEY]: relay.state() };
    for (const w of workers()) {
      // A worker that is exiting has closed its channel; it gets nothing more.
      if (w.isConnected()) w.send(message);
    }
  };
  send();
  const timer = setInterval(send, RELAY_STATE_EVERY_MS);
  timer.unref();
  return () => clearInterval(timer);
}

/** Where a worker hears from its primary: the process itself, or a test's emitter. */
export interface StateSource {
  on(event: "message", listener: (m: unknown) => void): unknown;
  off(event: "message", listener: (m: unknown) => void): unknown;
}

/**
 * A worker's side: the primary's relay as this worker's /health reports it. The age of the oldest
 * pending event is counted again when read, so it is not a second stale.
 */
export function relayOfPrimary(
  opts: { db: LedgerDb; eventsUrl: string | undefined; logger: Logger },
  source: StateSource = process,
): Relay {
  const observed = observeRelay(opts);
  let latest: RelayState | undefined;
  const listener = (m: unknown) => {
    if (!isStateMessage(m)) return;
    // The primary's state has the lag too: this worker stops reading it itself.
    if (latest === undefined) void observed.stop();
    latest = m[MESSAGE_KEY];
  };
  source.on("message", listener);
  return {
    state() {
      if (latest === undefined) return { ...observed.state(), role: "standby" };
      const oldest = latest.oldest_pending_at;
      return {
        ...latest,
        oldest_pending_age_ms: oldest === null ? null : Math.max(0, Date.now() - Date.parse(oldest)),
      };
    },
    async stop() {
      source.off("message", listener);
      await observed.stop();
    },
  };
}
