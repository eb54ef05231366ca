// The relay: moves the outbox to the broker. It reads the events after its checkpoint in position order,
// publishes them, and moves the checkpoint only once the broker has acknowledged every one, so an event
// is delivered at least once whatever dies when; NATS's de-duplication by event id makes it once.
//
// One relay is active per database and broker: each contends for a session advisory lock held on a
// connection of its own (a one-connection postgres.js client, never recycled), and the others wait as
// standbys, trying again every second. The lock goes with its connection: a holder that dies loses it as
// soon as Postgres sees the connection close (TCP keepalives on that session bound it for a vanished
// host too), and a standby takes over within seconds. The relay runs in every app server by default
// (LEDGER_RELAY=on: in its one process, or in its primary when it has several workers, see
// runtime/primary-relay.ts) or alone (apps/relay); on embedded PGlite, one process by construction, it
// simply runs.
//
// What goes wrong is waited out, never passed on to the writers: a broker that is down or refuses is
// retried with backoff (250 ms doubling to 5 s) on a new connection, from the same checkpoint; a database
// error drops the lock's connection, backs off and contends again. The active holder also applies
// retention: events older than the retention period that every live relay has delivered are pruned.
import { PGlite } from "@electric-sql/pglite";
import type { Logger } from "pino";
import postgres from "postgres";
import type { LedgerDb } from "../../store/client.js";
import {
  pruneEvents,
  retentionHorizon,
  readEvents,
  relayCheckpoint,
  relayLag,
  saveRelayCheckpoint,
  type RelayLag,
} from "../../store/events.js";
import { driverClientOf, sqlClientOf, type Rows, type SqlRunner } from "../../store/sql-client.js";
import {
  brokerKindOf,
  connectPublisher,
  reasonOf,
  type BrokerKind,
  type EventPublisher,
  type PublisherOptions,
} from "./brokers/index.js";
import { toLedgerEvent } from "./outbox.js";
import { eventSignalFor } from "./signal.js";

export type RelayRole = "active" | "standby" | "off";

/** What /health reports of the relay (the lag is the database's, so a standby reports it too). */
export interface RelayState {
  /** active: this process holds the lock and relays; standby: another does (or the database is away); off: not running here. */
  role: RelayRole;
  broker: BrokerKind | null;
  /** This process has a working connection to the broker (only the active relay has one). */
  broker_connected: boolean;
  /** Events committed and not yet acknowledged by the broker (0 without a broker). */
  pending: number;
  /** When the oldest of them occurred. */
  oldest_pending_at: string | null;
  /** How long it has waited, when the state was read. */
  oldest_pending_age_ms: number | null;
  /** The last failure (broker or database), until the relay next makes progress. */
  last_error?: string;
}

export interface Relay {
  state(): RelayState;
  /** Stops relaying, closes the broker and the lock's connection (which releases the lock). */
  stop(): Promise<void>;
}

export interface RelayOptions {
  /** The ledger's database: its signal wakes the relay when this process commits. */
  db: LedgerDb;
  /** db's postgres:// URL, for the lock's own connection. Unset only on embedded PGlite. */
  databaseUrl?: string | undefined;
  /** LEDGER_EVENTS_URL; unset: no broker, and the relay only applies retention. */
  eventsUrl?: string | undefined;
  /** LEDGER_EVENTS_RETENTION_DAYS: delivered events older than this are pruned. */
  retentionDays: number;
  logger: Logger;
  /** The stream / exchange to publish into (tests use their own). */
  publisher?: PublisherOptions;
  /** Longest wait for new events when caught up (other processes' commits are found by this poll). */
  pollMs?: number;
  /** How often a standby tries to take the lock. */
  standbyRetryMs?: number;
  /** How often the active relay prunes. */
  pruneEveryMs?: number;
  /** Most events deleted by one statement of a prune. */
  pruneChunkMax?: number;
  /** Most events read and published as one batch. */
  batchSizeMax?: number;
  /**
   * A batch smaller than batchSizeMax is followed by this pause before the next read, so that under load
   * the relay publishes fewer, larger batches (each costs a read, a publish and its acks).
   */
  gatherMs?: number;
  /**
   * While events keep coming, the checkpoint is saved at most this often (and always once caught up, and
   * on stop): a relay that dies in between publishes up to this much again, which the broker's
   * de-duplication (JetStream's window, 2 minutes) or the consumer's once-per-id drops.
   */
  checkpointEveryMs?: number;
  /** The backoff of broker and database retries: doubles from min to max. */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** What "now" is for retention (tests move it). */
  clock?: () => Date;
}

const POLL_MS_DEFAULT = 200;
const STANDBY_RETRY_MS_DEFAULT = 1_000;
const PRUNE_EVERY_MS_DEFAULT = 5 * 60_000;
const PRUNE_CHUNK_MAX_DEFAULT = 5_000;
const BATCH_SIZE_MAX_DEFAULT = 500;
const GATHER_MS_DEFAULT = 20;
const CHECKPOINT_EVERY_MS_DEFAULT = 1_000;
const BACKOFF_MIN_MS_DEFAULT = 250;
const BACKOFF_MAX_MS_DEFAULT = 5_000;
/** The lag shown by state() is at most this old. */
const LAG_REFRESH_MS = 1_000;
const DAY_MS = 86_400_000;

/**
 * The relays' advisory locks: (RELAY_LOCK_KEY, one per broker), the two-int form, which never collides
 * with the migration lock (7_245_001, a bigint key). One lock per broker kind, so a NATS relay and a
 * RabbitMQ relay over one database each run once, with checkpoints of their own.
 */
export const RELAY_LOCK_KEY = 7_245_002;
const LOCK_SUBKEY: Record<BrokerKind | "none", number> = { none: 0, nats: 1, amqp: 2 };

/** The lock's session: a short statement timeout, and keepalives so Postgres sees a vanished holder in ~11 s. */
const LOCK_SESSION = {
  application_name: "ledger-relay",
  statement_timeout: 10_000,
  tcp_keepalives_idle: 5,
  tcp_keepalives_interval: 2,
  tcp_keepalives_count: 3,
};

/** Starts relaying in the background; throws at once on a bad configuration (URL, missing databaseUrl). */
export function startRelay(opts: RelayOptions): Relay {
  const broker = opts.eventsUrl === undefined ? null : brokerKindOf(opts.eventsUrl);
  const embedded = isEmbedded(opts.db);
  if (!embedded && !opts.databaseUrl) {
    throw new TypeError(
      "startRelay: a Postgres database needs databaseUrl (the lock has a connection of its own)",
    );
  }
  const pollMs = opts.pollMs ?? POLL_MS_DEFAULT;
  const standbyRetryMs = opts.standbyRetryMs ?? STANDBY_RETRY_MS_DEFAULT;
  const pruneEveryMs = opts.pruneEveryMs ?? PRUNE_EVERY_MS_DEFAULT;
  const pruneChunkMax = opts.pruneChunkMax ?? PRUNE_CHUNK_MAX_DEFAULT;
  const batchSizeMax = opts.batchSizeMax ?? BATCH_SIZE_MAX_DEFAULT;
  const gatherMs = opts.gatherMs ?? GATHER_MS_DEFAULT;
  const checkpointEveryMs = opts.checkpointEveryMs ?? CHECKPOINT_EVERY_MS_DEFAULT;
  const backoffMinMs = opts.backoffMinMs ?? BACKOFF_MIN_MS_DEFAULT;
  const backoffMaxMs = opts.backoffMaxMs ?? BACKOFF_MAX_MS_DEFAULT;
  const clock = opts.clock ?? (() => new Date());
  const signal = eventSignalFor(opts.db);
  const log = opts.logger.child({ component: "relay", broker: broker ?? "none" });

  const abort = new AbortController();
  const status = {
    role: "standby" as RelayRole,
    connected: false,
    lag: { pending: 0, oldestPendingAt: null as string | null },
    lagAt: 0,
    lastError: undefined as string | undefined,
  };
  const stopping = () => abort.signal.aborted;
  const sleep = (ms: number) => abortableSleep(ms, abort.signal);

  const setRole = (role: RelayRole) => {
    if (status.role === role) return;
    status.role = role;
    log.info({ role }, role === "active" ? "relay active: this process relays" : `relay ${role}`);
  };
  const failed = (what: string, error: unknown) => {
    status.lastError = `${what}: ${reasonOf(error)}`;
  };

  /** The lag, read at most every LAG_REFRESH_MS; a failure to read it is left to the caller's next query. */
  const refreshLag = async (runner: SqlRunner) => {
    if (broker === null || Date.now() - status.lagAt < LAG_REFRESH_MS) return;
    const lag: RelayLag = await relayLag(runner, broker);
    status.lag = { pending: lag.pending, oldestPendingAt: lag.oldestPendingAt };
    status.lagAt = Date.now();
  };

  /** Applies retention; a failure waits for the next round. */
  const prune = async (runner: SqlRunner, checkpoint: number | null, holds: () => boolean) => {
    const before = new Date(clock().getTime() - opts.retentionDays * DAY_MS);
    try {
      const { pruned, through } = await applyRetention(runner, {
        before,
        checkpoint,
        chunkMax: pruneChunkMax,
        goOn: () => !stopping() && holds(),
      });
      if (pruned > 0) {
        log.info({ pruned, through, before: before.toISOString() }, "pruned delivered events past retention");
      }
    } catch (error) {
      failed("retention", error);
      log.warn({ err: error }, "retention prune failed; trying again at the next round");
    }
  };

  /** Relays while this process holds the lock; returns when it stops or loses it, throws on a database error. */
  const relayWhileHolding = async (runner: SqlRunner, holds: () => boolean) => {
    let publisher: EventPublisher | undefined;
    let brokerDelayMs = backoffMinMs;
    let brokerRetryAt = 0;
    let brokerAttempt = 0;
    const brokerFailed = (error: unknown) => {
      failed("broker", error);
      brokerAttempt += 1;
      brokerRetryAt = Date.now() + brokerDelayMs;
      log.warn(
        { err: error, attempt: brokerAttempt, retry_in_ms: brokerDelayMs },
        "broker unavailable; events wait in the outbox, writes go on",
      );
      brokerDelayMs = Math.min(brokerDelayMs * 2, backoffMaxMs);
    };
    const dropPublisher = async () => {
      const p = publisher;
      publisher = undefined;
      status.connected = false;
      await p?.close().catch(() => {});
    };

    let checkpoint = broker === null ? 0 : await relayCheckpoint(runner, broker);
    /** What the database holds; `checkpoint` may be ahead of it by what was published since. */
    let saved = checkpoint;
    let saveAt = 0;
    const save = async () => {
      if (broker === null || checkpoint <= saved) return;
      await saveRelayCheckpoint(runner, broker, checkpoint);
      saved = checkpoint;
      saveAt = Date.now() + checkpointEveryMs;
    };
    let pruneAt = 0;
    try {
      while (!stopping() && holds()) {
        if (Date.now() >= pruneAt) {
          await prune(runner, broker === null ? null : checkpoint, holds);
          pruneAt = Date.now() + pruneEveryMs;
        }
        if (broker === null || opts.eventsUrl === undefined) {
          status.lastError = undefined;
          // Woken every standbyRetryMs to see whether the lock's connection is still there.
          await sleep(Math.min(standbyRetryMs, Math.max(0, pruneAt - Date.now())));
          continue;
        }
        await refreshLag(runner);
        if (publisher && !publisher.isConnected()) {
          brokerFailed(new Error("the connection to the broker was lost"));
          await dropPublisher();
        }
        if (!publisher) {
          const waitMs = brokerRetryAt - Date.now();
          if (waitMs > 0) {
            await sleep(Math.min(waitMs, standbyRetryMs));
            continue;
          }
          try {
            publisher = await connectPublisher(opts.eventsUrl, opts.publisher);
          } catch (error) {
            brokerFailed(error);
            continue;
          }
          status.connected = true;
          log.info({ after_attempts: brokerAttempt }, "broker connected");
        }
        const stored = await readEvents(runner, checkpoint, batchSizeMax);
        // The read may have run on a connection postgres.js opened anew: the new holder sends these.
        if (!holds()) break;
        if (stored.length === 0) {
          status.lastError = undefined;
          await save();
          await signal.next(pollMs);
          continue;
        }
        try {
          await publisher.publish(stored.map(toLedgerEvent));
        } catch (error) {
          brokerFailed(error);
          await dropPublisher();
          continue;
        }
        checkpoint = (stored[stored.length - 1] as (typeof stored)[number]).position; // stored is not empty
        if (Date.now() >= saveAt) await save();
        brokerDelayMs = backoffMinMs;
        brokerAttempt = 0;
        status.lastError = undefined;
        if (stored.length < batchSizeMax) await sleep(gatherMs);
      }
    } finally {
      await dropPublisher();
      // What was published is kept, if the database still answers on the lock's connection.
      if (holds()) await save().catch(() => {});
    }
  };

  const run = async () => {
    let lock: LockConnection | undefined;
    let dbDelayMs = backoffMinMs;
    const subkey = LOCK_SUBKEY[broker ?? "none"];
    while (!stopping()) {
      try {
        if (embedded) {
          setRole("active");
          await relayWhileHolding(sqlClientOf(opts.db), () => true);
          continue;
        }
        lock ??= openLockConnection(opts.databaseUrl as string); // checked at start: not embedded
        if (!(await lock.tryLock(subkey))) {
          setRole("standby");
          await refreshLag(lock.runner);
          status.lastError = undefined;
          dbDelayMs = backoffMinMs;
          await sleep(standbyRetryMs);
          continue;
        }
        setRole("active");
        dbDelayMs = backoffMinMs;
        await relayWhileHolding(lock.runner, lock.holds);
        if (!stopping()) log.warn("the lock's connection closed; contending again");
        await lock.end();
        lock = undefined;
      } catch (error) {
        if (stopping()) break;
        failed("database", error);
        setRole("standby");
        log.warn({ err: error, retry_in_ms: dbDelayMs }, "relay: database error; backing off");
        await lock?.end();
        lock = undefined;
        await sleep(dbDelayMs);
        dbDelayMs = Math.min(dbDelayMs * 2, backoffMaxMs);
      }
    }
    await lock?.end();
  };

  const running = run().catch((error: unknown) => {
    // run() handles every failure it expects; this is a bug, and the relay is not running any more.
    failed("relay", error);
    log.error({ err: error }, "relay stopped on an unexpected error");
  });

  return {
    state: () =>
      stateOf(stopping() ? "off" : status.role, broker, status.connected, status.lag, status.lastError),
    async stop() {
      if (!stopping()) {
        abort.abort();
        signal.wake();
      }
      await running;
      status.connected = false;
    },
  };
}

/** What state() answers, from what the relay (or its observer) knows. */
function stateOf(
  role: RelayRole,
  broker: BrokerKind | null,
  connected: boolean,
  lag: { pending: number; oldestPendingAt: string | null },
  lastError: string | undefined,
): RelayState {
  const oldest = lag.oldestPendingAt;
  return {
    role,
    broker,
    broker_connected: connected,
    pending: lag.pending,
    oldest_pending_at: oldest,
    oldest_pending_age_ms: oldest === null ? null : Math.max(0, Date.now() - Date.parse(oldest)),
    ...(lastError === undefined ? {} : { last_error: lastError }),
  };
}

/**
 * The relay's state where it does not run (LEDGER_RELAY=off: apps/relay runs it): role "off", and the lag,
 * read every second from the app's own pool, so every process's /health still shows it.
 */
export function observeRelay(opts: Pick<RelayOptions, "db" | "eventsUrl" | "logger">): Relay {
  const broker = opts.eventsUrl === undefined ? null : brokerKindOf(opts.eventsUrl);
  let lag = { pending: 0, oldestPendingAt: null as string | null };
  let lastError: string | undefined;
  const runner = sqlClientOf(opts.db);
  const refresh = async () => {
    if (broker === null) return;
    try {
      const read = await relayLag(runner, broker);
      lag = { pending: read.pending, oldestPendingAt: read.oldestPendingAt };
      lastError = undefined;
    } catch (error) {
      lastError = `database: ${reasonOf(error)}`;
    }
  };
  let reading: Promise<void> = refresh();
  const timer = setInterval(() => {
    reading = reading.then(refresh);
  }, LAG_REFRESH_MS);
  timer.unref();
  return {
    state: () => stateOf("off", broker, false, lag, lastError),
    async stop() {
      clearInterval(timer);
      await reading;
    },
  };
}

/**
 * Prunes the events that occurred before `before` and that are delivered: at or below `checkpoint` (the
 * relay's own; null without a broker) and the retention horizon. Deletes oldest first, `chunkMax` per
 * statement (each with its own horizon over the oldest chunkMax events), while goOn() says so. Returns
 * what went and the last position it pruned through.
 */
export async function applyRetention(
  db: SqlRunner,
  opts: { before: Date; checkpoint: number | null; chunkMax: number; goOn?: () => boolean },
): Promise<{ pruned: number; through: number }> {
  let pruned = 0;
  let through = 0;
  while (opts.goOn?.() ?? true) {
    const horizon = await retentionHorizon(db, opts.before, opts.chunkMax);
    const upTo = opts.checkpoint === null ? horizon : Math.min(horizon, opts.checkpoint);
    const n = await pruneEvents(db, { before: opts.before, through: upTo, limit: opts.chunkMax });
    pruned += n;
    through = Math.max(through, upTo);
    if (n < opts.chunkMax) break;
  }
  return { pruned, through };
}

interface LockConnection {
  /** Runs statements on the lock's connection. */
  runner: SqlRunner;
  /** Takes the lock if free; true if this connection holds it now. */
  tryLock(subkey: number): Promise<boolean>;
  /** False once the connection that took the lock may have closed (postgres.js would silently reconnect). */
  holds: () => boolean;
  /** Closes the connection: the lock, if held, is released with it. */
  end(): Promise<void>;
}

function openLockConnection(url: string): LockConnection {
  let closes = 0;
  let lockedAtCloses: number | undefined;
  // Settles (rejects) once the connection that took the lock closed. A statement in flight when Postgres
  // ends the session can stay pending in postgres.js (seen when a backend is terminated mid-query: the
  // relay then waited on it for ever, believing itself active while another took over), so every
  // statement on this connection races it: the relay sees an error and contends again.
  let loseLock = () => {};
  const lost = new Promise<never>((_resolve, reject) => {
    loseLock = () => reject(new Error("the lock's connection closed"));
  });
  lost.catch(() => {}); // observed by the races below; unobserved when the lock is never lost
  const sql = postgres(url, {
    max: 1,
    // Never recycled (postgres.js closes idle ones only when told to): a new connection would not hold the lock.
    max_lifetime: null,
    connect_timeout: 2,
    keep_alive: 5,
    onnotice: () => {},
    onclose: () => {
      closes += 1;
      if (lockedAtCloses !== undefined) loseLock();
    },
    connection: LOCK_SESSION,
  });
  return {
    runner: {
      run: (statements) => {
        const done = Promise.all(
          statements.map(
            (s) => sql.unsafe(s.text, s.params as never[], { prepare: true }) as unknown as Promise<Rows>,
          ),
        );
        return lockedAtCloses === undefined ? done : Promise.race([done, lost]);
      },
    },
    async tryLock(subkey) {
      // Counted before the query: a close from here on makes holds() false, a safe over-reaction; a
      // close before it means the query ran on a fresh connection, which is the one that holds the lock.
      const before = closes;
      const [row] = await sql<
        { locked: boolean }[]
      >`select pg_try_advisory_lock(${RELAY_LOCK_KEY}, ${subkey}) as locked`;
      if (row?.locked) {
        lockedAtCloses = before;
        if (closes !== before) loseLock();
      }
      return row?.locked === true;
    },
    holds: () => lockedAtCloses !== undefined && closes === lockedAtCloses,
    async end() {
      lockedAtCloses = undefined;
      await sql.end({ timeout: 1 }).catch(() => {});
    },
  };
}

function isEmbedded(db: LedgerDb): boolean {
  return driverClientOf(db) instanceof PGlite;
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
