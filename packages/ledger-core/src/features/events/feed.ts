// The event log as one app reads it: a page of it (GET /ledger/events), and an owner's events as they
// commit (the streams).
//
// One feed per database per process. A single tailer, running only while someone follows, reads the log
// after the last position it saw, when group commit wakes it (this process's commits) or every
// FEED_POLL_MS (other processes'), and hands each event to the followers of its owner. Streams share it:
// a thousand of them waiting cost no connection and no query; a read serves them all.
//
// A follower starts after a position. It is registered first, so that the tailer keeps what arrives
// for it in its buffer; then it catches up from the database in pages (the owner index,
// ledger_events_owner), reading until a page comes back short, and goes live. What the catch-up's last
// read did not see was committed after it started, so after the tailer's position at that moment, so
// the tailer hands it over: no gap. Events are delivered only above the last position delivered: no
// duplicate where the two overlap. Positions are in commit order (store/events.ts), which is what makes
// "after the last position seen" a complete cursor.
import type { Logger } from "pino";
import type { LedgerDb } from "../../store/client.js";
import { lastEventPosition, readEvents, type StoredEvent } from "../../store/events.js";
import { OPERATION_TIMEOUT_MS_DEFAULT, read } from "../../store/reads.js";
import { driverClientOf, sqlClientOf, type SqlRunner } from "../../store/sql-client.js";
import type { LedgerEvent } from "./envelope.js";
import { toLedgerEvent } from "./outbox.js";
import { eventSignalFor, type EventSignal } from "./signal.js";

/** The longest a commit of another process waits before the tailer finds it. */
export const FEED_POLL_MS = 200;
/** Events per read, the tailer's and a catch-up's. */
export const FEED_PAGE_SIZE = 1_000;
/**
 * Events a follower may have waiting for its consumer. A live follower past it is ended ("overflow"):
 * its client is too slow to keep up, and reconnects with Last-Event-ID to catch up from the database.
 * The buffer holds references to events the tailer shares among followers, not copies.
 */
export const FOLLOWER_BUFFER_EVENTS_MAX = 1_000;
/** A read that fails is retried after this, doubling up to FEED_RETRY_MS_MAX. */
const FEED_RETRY_MS_MIN = 250;
const FEED_RETRY_MS_MAX = 5_000;
/** The bound of a page read of GET /ledger/events: reads until the page is full or the log ends. */
const PAGE_READS_MAX = 4;

/** What an app reads of the log: every entry.created (as it lists every app's entries), and its own holds' events. */
export function visibleTo(app: string, event: { type: string; app: string }): boolean {
  return event.type === "entry.created" || event.app === app;
}

export interface EventPage {
  events: LedgerEvent[];
  /** Pass as `after` for the next page: the last position this page looked at; `after` when nothing was new. */
  next_position: number;
}

/**
 * The events after `after` that `app` reads, in position order, at most `limit`. Other apps' hold events
 * are passed over, so a page may be short before the end of the log when many of them came in a row:
 * `next_position` then moves past them. Answers in at most PAGE_READS_MAX reads of `limit` events.
 */
export async function readEventPage(
  db: SqlRunner,
  app: string,
  after: number,
  limit: number,
): Promise<EventPage> {
  const events: LedgerEvent[] = [];
  let cursor = after;
  for (let reads = 0; reads < PAGE_READS_MAX && events.length < limit; reads++) {
    const page = await readEvents(db, cursor, limit);
    for (const stored of page) {
      cursor = stored.position;
      if (visibleTo(app, stored)) events.push(toLedgerEvent(stored));
      if (events.length === limit) break;
    }
    if (page.length < limit) break;
  }
  return { events, next_position: cursor };
}

export interface FollowRequest {
  /** Deliver the events after this position; unset: from the log's head (what the tailer has seen). */
  after?: number | undefined;
  ownerId: string;
  /** The app reading (visibleTo). */
  app: string;
}

/** How a following ended: its caller or the feed closed it, its consumer fell behind, or threw. */
export type FollowEnd = "closed" | "overflow" | "failed";

export interface FollowHandlers {
  /** Called once, before any event: the position the following starts after. */
  start?: (after: number) => void | Promise<void>;
  /** Events in position order; the next call waits until the promise this returns settles. */
  events: (events: readonly LedgerEvent[]) => void | Promise<void>;
}

export interface Following {
  /** Stops delivering; idempotent. */
  close(): void;
  readonly ended: Promise<FollowEnd>;
}

export interface EventFeedOptions {
  pollMs?: number;
  pageSize?: number;
  bufferEventsMax?: number;
  /** Longest a read may take before it counts as failed (and is retried). */
  readTimeoutMs?: number;
}

export interface EventFeedStats {
  /** Followings open now. */
  followers: number;
  /** Whether the tailer is running. */
  tailing: boolean;
  /** Tailers started so far (one runs at a time; it stops when nobody follows). */
  tailerStarts: number;
  /** Reads of the log by the tailer, and by followers catching up. */
  tailerReads: number;
  catchUpReads: number;
  /** Reads that failed (and were retried). */
  readFailures: number;
  /** Followings ended because their consumer fell behind. */
  overflows: number;
  /** Buffers dropped during a catch-up (its next read gets their events from the database). */
  catchUpDrops: number;
}

interface Tailer {
  /** The last position the tailer has read and handed out; valid once ready. */
  lastSeen: number;
  ready: Promise<void>;
}

const feeds = new WeakMap<object, EventFeed>();

/** The one feed of a database (of its client) in this process. */
export function eventFeedFor(db: LedgerDb): EventFeed {
  const client = driverClientOf(db);
  const key: object = typeof client === "object" && client !== null ? client : db;
  let feed = feeds.get(key);
  if (!feed) {
    feed = new EventFeed(db);
    feeds.set(key, feed);
  }
  return feed;
}

export class EventFeed {
  readonly #db: SqlRunner;
  readonly #signal: EventSignal;
  readonly #pollMs: number;
  readonly #pageSize: number;
  readonly #bufferMax: number;
  readonly #readTimeoutMs: number;
  readonly #byOwner = new Map<string, Set<Follower>>();
  #followers = 0;
  #tailer: Tailer | undefined;
  #logger: Logger | undefined;
  readonly #stats = {
    tailerStarts: 0,
    tailerReads: 0,
    catchUpReads: 0,
    readFailures: 0,
    overflows: 0,
    catchUpDrops: 0,
  };

  /** Prefer eventFeedFor(db): a second feed over one database is a second tailer. */
  constructor(db: LedgerDb, opts: EventFeedOptions = {}) {
    this.#db = sqlClientOf(db);
    this.#signal = eventSignalFor(db);
    this.#pollMs = opts.pollMs ?? FEED_POLL_MS;
    this.#pageSize = opts.pageSize ?? FEED_PAGE_SIZE;
    this.#bufferMax = opts.bufferEventsMax ?? FOLLOWER_BUFFER_EVENTS_MAX;
    this.#readTimeoutMs = opts.readTimeoutMs ?? OPERATION_TIMEOUT_MS_DEFAULT;
  }

  /** Where the feed reports failed reads (the first app to start gives its logger). */
  useLogger(logger: Logger): void {
    this.#logger ??= logger;
  }

  stats(): EventFeedStats {
    return { followers: this.#followers, tailing: this.#tailer !== undefined, ...this.#stats };
  }

  /**
   * Delivers the owner's events that `app` reads after `after`, from the database and then as they
   * commit, each once, in position order, until closed. A database that does not answer is retried
   * (the following stays open and waits); a consumer that falls FOLLOWER_BUFFER_EVENTS_MAX events
   * behind is ended with "overflow".
   */
  follow(req: FollowRequest, handlers: FollowHandlers): Following {
    const follower = new Follower(req, handlers, this.#bufferMax, {
      detach: (f) => this.#detach(f),
      dropped: () => (this.#stats.catchUpDrops += 1),
    });
    let owners = this.#byOwner.get(req.ownerId);
    if (!owners) {
      owners = new Set();
      this.#byOwner.set(req.ownerId, owners);
    }
    owners.add(follower);
    this.#followers += 1;
    const tailer = this.#ensureTailer();
    void tailer.ready.then(() => this.#start(follower, tailer));
    return { close: () => follower.end("closed"), ended: follower.ended };
  }

  #detach(f: Follower): void {
    const owners = this.#byOwner.get(f.ownerId);
    if (!owners?.delete(f)) return;
    if (owners.size === 0) this.#byOwner.delete(f.ownerId);
    this.#followers -= 1;
    if (f.overflowed) this.#stats.overflows += 1;
  }

  async #start(f: Follower, tailer: Tailer): Promise<void> {
    if (f.after === undefined) {
      await f.begin(tailer.lastSeen);
    } else {
      await f.begin(f.after);
      await this.#catchUp(f);
    }
    f.goLive();
  }

  /**
   * Reads the owner's events from the database until a read comes back short. It starts once the
   * tailer is ready and the follower registered, so a short read has seen everything up to the tailer's
   * position then, and the buffer holds what the tailer handed out since. When the buffer overflowed
   * during the catch-up, its contents were dropped, so the catch-up reads once more after that.
   */
  async #catchUp(f: Follower): Promise<void> {
    let failures = 0;
    while (!f.done) {
      const dropsBefore = f.drops;
      let page: StoredEvent[];
      try {
        page = await this.#read((db) => readEvents(db, f.cursor, this.#pageSize, f.ownerId));
        this.#stats.catchUpReads += 1;
        failures = 0;
      } catch (error) {
        failures += 1;
        this.#readFailed(error, "catch-up", { owner_id: f.ownerId, failures });
        await sleep(retryMs(failures));
        continue;
      }
      await f.deliverPage(page);
      if (page.length < this.#pageSize && f.drops === dropsBefore) return;
    }
  }

  #ensureTailer(): Tailer {
    if (this.#tailer) return this.#tailer;
    let ready!: () => void;
    const tailer: Tailer = { lastSeen: 0, ready: new Promise<void>((resolve) => (ready = resolve)) };
    this.#tailer = tailer;
    this.#stats.tailerStarts += 1;
    void this.#tail(tailer, ready);
    return tailer;
  }

  async #tail(tailer: Tailer, ready: () => void): Promise<void> {
    let failures = 0;
    // The head first: live delivery starts after it; whatever is below it is the followers' catch-up.
    while (this.#followers > 0) {
      try {
        tailer.lastSeen = await this.#read((db) => lastEventPosition(db));
        break;
      } catch (error) {
        failures += 1;
        this.#readFailed(error, "tailer head", { failures });
        await sleep(retryMs(failures));
      }
    }
    ready();
    // Armed before each read and kept until it fires, so a commit during a read is not missed.
    let wake: Promise<void> | undefined;
    while (this.#followers > 0) {
      wake ??= this.#signal.next(this.#pollMs).then(() => {
        wake = undefined;
      });
      let page: StoredEvent[];
      try {
        page = await this.#read((db) => readEvents(db, tailer.lastSeen, this.#pageSize));
        this.#stats.tailerReads += 1;
        failures = 0;
      } catch (error) {
        failures += 1;
        this.#readFailed(error, "tailer", { failures });
        await sleep(retryMs(failures));
        continue;
      }
      const last = page.at(-1);
      if (last) {
        tailer.lastSeen = last.position;
        this.#fanOut(page);
      }
      if (page.length < this.#pageSize) await wake;
    }
    // Nobody follows: the next follower starts a new tailer from the head then.
    if (this.#tailer === tailer) this.#tailer = undefined;
  }

  /** Hands each owner's events to its followers: converted once, shared by all of them. */
  #fanOut(page: readonly StoredEvent[]): void {
    const byOwner = new Map<string, LedgerEvent[]>();
    for (const stored of page) {
      if (!this.#byOwner.has(stored.ownerId)) continue;
      const events = byOwner.get(stored.ownerId);
      if (events) events.push(toLedgerEvent(stored));
      else byOwner.set(stored.ownerId, [toLedgerEvent(stored)]);
    }
    for (const [ownerId, events] of byOwner) {
      for (const f of [...(this.#byOwner.get(ownerId) ?? [])]) f.offer(events);
    }
  }

  #read<T>(fn: (db: SqlRunner) => Promise<T>): Promise<T> {
    return read(() => fn(this.#db), this.#readTimeoutMs);
  }

  #readFailed(error: unknown, what: string, context: Record<string, unknown>): void {
    this.#stats.readFailures += 1;
    this.#logger?.warn({ err: error, ...context }, `event feed: ${what} read failed; retrying`);
  }
}

class Follower {
  readonly ownerId: string;
  readonly app: string;
  readonly after: number | undefined;
  readonly ended: Promise<FollowEnd>;
  /** The last position delivered, or passed over as another app's. */
  cursor = 0;
  /** Times the buffer overflowed during the catch-up and was dropped. */
  drops = 0;
  overflowed = false;
  readonly #handlers: FollowHandlers;
  readonly #bufferMax: number;
  readonly #feed: { detach: (f: Follower) => void; dropped: () => void };
  #resolveEnded!: (end: FollowEnd) => void;
  #buffer: LedgerEvent[] = [];
  #live = false;
  #delivering = false;
  #end: FollowEnd | undefined;

  constructor(
    req: FollowRequest,
    handlers: FollowHandlers,
    bufferMax: number,
    feed: { detach: (f: Follower) => void; dropped: () => void },
  ) {
    this.ownerId = req.ownerId;
    this.app = req.app;
    this.after = req.after;
    this.#handlers = handlers;
    this.#bufferMax = bufferMax;
    this.#feed = feed;
    this.ended = new Promise((resolve) => (this.#resolveEnded = resolve));
  }

  get done(): boolean {
    return this.#end !== undefined;
  }

  end(reason: FollowEnd): void {
    if (this.#end) return;
    this.#end = reason;
    this.overflowed = reason === "overflow";
    this.#buffer = [];
    this.#feed.detach(this);
    this.#resolveEnded(reason);
  }

  async begin(after: number): Promise<void> {
    this.cursor = after;
    if (this.#end || !this.#handlers.start) return;
    try {
      await this.#handlers.start(after);
    } catch {
      this.end("failed");
    }
  }

  /** From the tailer: new events of this owner, in position order. */
  offer(events: readonly LedgerEvent[]): void {
    if (this.#end) return;
    const fresh = events.filter((e) => e.position > this.cursor && visibleTo(this.app, e));
    if (fresh.length === 0) return;
    if (this.#buffer.length + fresh.length > this.#bufferMax) {
      if (this.#live) return this.end("overflow");
      // Still catching up: the database has these too; the catch-up reads once more to get them.
      this.#buffer = [];
      this.drops += 1;
      this.#feed.dropped();
      return;
    }
    this.#buffer.push(...fresh);
    if (this.#live) void this.#pump();
  }

  /** A page of the catch-up: delivered, and the cursor past it (past other apps' events too). */
  async deliverPage(page: readonly StoredEvent[]): Promise<void> {
    const last = page.at(-1);
    if (this.#end || !last) return;
    const events = page.filter((e) => e.position > this.cursor && visibleTo(this.app, e)).map(toLedgerEvent);
    if (events.length > 0) await this.#deliver(events);
    if (last.position > this.cursor) this.cursor = last.position;
  }

  goLive(): void {
    if (this.#end) return;
    this.#live = true;
    void this.#pump();
  }

  async #pump(): Promise<void> {
    if (this.#delivering) return;
    this.#delivering = true;
    try {
      while (!this.#end && this.#buffer.length > 0) {
        const events = this.#buffer.filter((e) => e.position > this.cursor);
        this.#buffer = [];
        if (events.length > 0) await this.#deliver(events);
      }
    } finally {
      this.#delivering = false;
    }
  }

  async #deliver(events: readonly LedgerEvent[]): Promise<void> {
    const last = events.at(-1);
    if (!last) return;
    // Moved first: what the tailer offers while the consumer is busy is compared against it.
    this.cursor = last.position;
    try {
      await this.#handlers.events(events);
    } catch {
      this.end("failed");
    }
  }
}

function retryMs(failures: number): number {
  return Math.min(FEED_RETRY_MS_MIN * 2 ** Math.max(0, failures - 1), FEED_RETRY_MS_MAX);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref?.());
}
