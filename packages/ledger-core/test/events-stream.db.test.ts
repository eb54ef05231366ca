// Live streams, on both drivers. A browser-like client (the eventsource package) against a real server
// (@hono/node-server on a port of its own) is cut off three times while writes go on, reconnects with
// Last-Event-ID each time, and sees every event once, in order. Under it, the feed: many followers share
// one tailer (live events cost no read per follower), a consumer that falls behind is ended and catches
// up when it comes back, a catch-up that overflows its buffer reads again, and nothing is lost or repeated.
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { serve } from "@hono/node-server";
import { EventSource } from "eventsource";
import { beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { EVENT_TYPES, eventSchema, type LedgerEvent } from "../src/features/events/envelope.js";
import { EventFeed, visibleTo } from "../src/features/events/feed.js";
import { toLedgerEvent } from "../src/features/events/outbox.js";
import { submitCapture, submitHold } from "../src/features/holds/command.js";
import { ledgerAppFactory } from "../src/http/index.js";
import { LedgerService } from "../src/index.js";
import { lastEventPosition, readEvents } from "../src/store/events.js";
import { sqlClientOf } from "../src/store/sql-client.js";
import { freshNonce, freshOwner, testDriver, useTestDatabase } from "../src/testing/index.js";
import { silentLogger } from "../src/testing/deps.js";
import { testCatalog } from "./fixtures.js";

const APP = "stream-test";
const tdb = useTestDatabase();
const createApp = ledgerAppFactory({ name: APP, catalog: testCatalog, title: APP, version: "0" });
let service: LedgerService;

beforeAll(() => {
  service = new LedgerService({ db: tdb().db, app: APP, catalog: testCatalog });
});

const head = () => lastEventPosition(sqlClientOf(tdb().db));
const credit = (owner: string) =>
  service.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce() });

/** The owner's events after `after` that this app reads, from the database itself. */
async function ownerLog(owner: string, after: number): Promise<LedgerEvent[]> {
  return (await readEvents(sqlClientOf(tdb().db), after, 10_000, owner))
    .map(toLedgerEvent)
    .filter((e) => visibleTo(APP, e));
}

/** A deferred: a promise and the function that settles it. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

/** A following's deliveries, flattened. */
function collector() {
  const events: LedgerEvent[] = [];
  return { events, handler: (batch: readonly LedgerEvent[]) => void events.push(...batch) };
}

const positions = (events: readonly LedgerEvent[]) => events.map((e) => e.position);

describe(`an EventSource against a real server [${testDriver()}]`, () => {
  it("cut off three times while writes go on, reconnects with Last-Event-ID and sees every event once, in order", async () => {
    const app = createApp({ db: tdb().db, ping: () => tdb().ping(), logger: silentLogger });
    const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }) as Server;
    await new Promise<void>((resolve) => server.once("listening", resolve));
    onTestFinished(
      () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    );
    const { port } = server.address() as AddressInfo;

    const owner = freshOwner("es");
    await credit(owner);
    const before = await head();
    const missedWhileAway: number[] = [];
    const lastEventIds: (string | null)[] = [];
    const received: { id: string; type: string; event: LedgerEvent }[] = [];
    const es = new EventSource(`http://127.0.0.1:${port}/ledger/${owner}/stream?after=${before}`, {
      // The client's own fetch, watched: each connection's Last-Event-ID, and (on a reconnection) a
      // write committed while the client is away, which only the catch-up can bring it.
      fetch: async (url, init) => {
        const last = init.headers["Last-Event-ID"] ?? null;
        lastEventIds.push(last);
        if (last !== null) missedWhileAway.push((await credit(owner)).entry.id);
        return fetch(url, init);
      },
    });
    onTestFinished(() => es.close());
    for (const type of EVENT_TYPES) {
      es.addEventListener(type, (m) => {
        received.push({
          id: m.lastEventId,
          type: m.type,
          event: eventSchema.parse(JSON.parse(String(m.data))),
        });
      });
    }
    const receivedAll = async () => {
      const expected = await ownerLog(owner, before);
      await expect.poll(() => received.length, { timeout: 20_000 }).toBeGreaterThanOrEqual(expected.length);
      return expected;
    };

    for (let cut = 0; cut < 3; cut++) {
      for (let i = 0; i < 4; i++) await credit(owner);
      const hold = await submitHold(service, {
        owner_id: owner,
        operation: "CREDIT_SPEND",
        nonce: freshNonce(),
      });
      await receivedAll();
      // Writes on either side of the cut: some reach the client before it, some after it reconnects.
      await submitCapture(service, hold.hold.id, { nonce: freshNonce() });
      server.closeAllConnections();
      await credit(owner);
      await receivedAll();
    }
    await credit(owner);
    const expected = await receivedAll();

    expect(positions(received.map((r) => r.event))).toEqual(positions(expected));
    expect(received.map((r) => r.event)).toEqual(expected);
    expect(received.map((r) => [r.id, r.type])).toEqual(expected.map((e) => [String(e.position), e.type]));
    expect(expected.map((e) => e.type)).toEqual(expect.arrayContaining(["hold.created", "hold.captured"]));
    // Four connections: the first with no Last-Event-ID, each of the three after a cut with the last
    // position the client had; and each reconnection's own write came through.
    expect(lastEventIds).toHaveLength(4);
    expect(lastEventIds[0]).toBeNull();
    for (const id of lastEventIds.slice(1)) expect(Number(id)).toBeGreaterThan(before);
    expect(missedWhileAway).toHaveLength(3);
    const entryIds = received.filter((r) => r.type === "entry.created").map((r) => r.event.data);
    for (const id of missedWhileAway) expect(entryIds).toContainEqual(expect.objectContaining({ id }));
  });
});

describe(`the feed [${testDriver()}]`, () => {
  it("serves a hundred followers from one tailer: live events cost no read per follower", async () => {
    const feed = new EventFeed(tdb().db);
    const owners = Array.from({ length: 100 }, (_, i) => freshOwner(`many${i}`));
    const start = await head();
    const followers = owners.map((ownerId) => {
      const c = collector();
      const following = feed.follow({ after: start, ownerId, app: APP }, { events: c.handler });
      onTestFinished(() => following.close());
      return { ownerId, c, following };
    });
    await expect.poll(() => feed.stats().catchUpReads).toBe(100);
    await Promise.all(owners.map((owner) => credit(owner)));
    for (const f of followers) {
      await expect.poll(() => f.c.events.length).toBe(1);
      expect(f.c.events).toEqual(await ownerLog(f.ownerId, start));
    }
    expect(feed.stats()).toMatchObject({ followers: 100, tailing: true, tailerStarts: 1, catchUpReads: 100 });
    for (const f of followers) f.following.close();
    expect(feed.stats().followers).toBe(0);
    await expect.poll(() => feed.stats().tailing).toBe(false);
  });

  it("ends a follower whose consumer falls behind its buffer; it catches up from where it got to", async () => {
    const feed = new EventFeed(tdb().db, { bufferEventsMax: 3 });
    const owner = freshOwner("slow");
    const start = await head();
    const stuck = gate();
    const got: LedgerEvent[] = [];
    const following = feed.follow(
      { after: start, ownerId: owner, app: APP },
      {
        events: async (batch) => {
          got.push(...batch);
          await stuck.opened;
        },
      },
    );
    onTestFinished(() => following.close());
    await expect.poll(() => feed.stats().catchUpReads).toBe(1);
    await credit(owner);
    await expect.poll(() => got.length).toBe(1);
    for (let i = 0; i < 4; i++) await credit(owner);
    expect(await following.ended).toBe("overflow");
    expect(feed.stats()).toMatchObject({ followers: 0, overflows: 1 });
    stuck.open();

    const again = collector();
    const resumed = feed.follow(
      { after: got.at(-1)?.position, ownerId: owner, app: APP },
      { events: again.handler },
    );
    onTestFinished(() => resumed.close());
    const all = await ownerLog(owner, start);
    await expect.poll(() => again.events.length).toBe(4);
    expect([...got, ...again.events]).toEqual(all);
  });

  /** A follower of a fresh owner with `past` events, whose first delivery waits until it is let go. */
  async function heldFollower(feed: EventFeed, past: number) {
    const owner = freshOwner("held");
    const start = await head();
    for (let i = 0; i < past; i++) await credit(owner);
    const held = gate();
    const got: LedgerEvent[] = [];
    const following = feed.follow(
      { after: start, ownerId: owner, app: APP },
      {
        events: async (batch) => {
          got.push(...batch);
          await held.opened;
        },
      },
    );
    onTestFinished(() => following.close());
    return { owner, start, got, release: held.open };
  }

  it("delivers once what both the catch-up and the tailer bring", async () => {
    const feed = new EventFeed(tdb().db, { pageSize: 2, bufferEventsMax: 10 });
    const f = await heldFollower(feed, 5);
    await expect.poll(() => f.got.length).toBe(2);
    // Committed while the catch-up is held on its first page: the tailer buffers them, and the
    // catch-up's later pages read them too.
    for (let i = 0; i < 2; i++) await credit(f.owner);
    // Two more reads of the tailer: the second began after the commits, so it has offered them.
    const reads = feed.stats().tailerReads;
    await expect.poll(() => feed.stats().tailerReads).toBeGreaterThanOrEqual(reads + 2);
    f.release();
    await expect.poll(() => f.got.length).toBeGreaterThanOrEqual(7);
    await credit(f.owner);
    await expect.poll(() => f.got.length).toBeGreaterThanOrEqual(8);
    expect(f.got).toEqual(await ownerLog(f.owner, f.start));
    expect(feed.stats().catchUpDrops).toBe(0);
  });

  it("reads again when its buffer overflowed during the catch-up's last page", async () => {
    const feed = new EventFeed(tdb().db, { pageSize: 10, bufferEventsMax: 2 });
    const f = await heldFollower(feed, 5);
    // The catch-up's one read came back short (5 of 10): it would go live once this page is taken.
    await expect.poll(() => f.got.length).toBe(5);
    for (let i = 0; i < 3; i++) await credit(f.owner);
    await expect.poll(() => feed.stats().catchUpDrops).toBeGreaterThanOrEqual(1);
    f.release();
    await expect.poll(() => f.got.length).toBe(8);
    await credit(f.owner);
    await expect.poll(() => f.got.length).toBe(9);
    expect(f.got).toEqual(await ownerLog(f.owner, f.start));
  });

  it("starts at the head without a position, and ends a follower whose consumer throws", async () => {
    const feed = new EventFeed(tdb().db);
    const owner = freshOwner("head");
    await credit(owner);
    const started: number[] = [];
    const following = feed.follow(
      { ownerId: owner, app: APP },
      {
        start: (after) => void started.push(after),
        events: () => {
          throw new Error("the consumer broke");
        },
      },
    );
    await expect.poll(() => started.length).toBe(1);
    expect(started[0]).toBeGreaterThanOrEqual((await ownerLog(owner, 0)).at(-1)?.position ?? Infinity);
    await credit(owner);
    expect(await following.ended).toBe("failed");
    expect(feed.stats().followers).toBe(0);
  });
});
