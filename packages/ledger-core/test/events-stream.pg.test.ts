// Reading events while several processes write, on real Postgres only (PGlite has one connection). A
// second connection pool stands in for another app process: its commits wake no signal here, so the
// feed finds them by polling. With writers in both pools racing, a consumer paging GET /ledger/events
// and a follower that keeps leaving and coming back each see every event once, in position order.
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import type { LedgerEvent } from "../src/features/events/envelope.js";
import { EventFeed, visibleTo, type Following } from "../src/features/events/feed.js";
import { toLedgerEvent } from "../src/features/events/outbox.js";
import { eventPageSchema } from "../src/features/events/routes.js";
import { ledgerAppFactory } from "../src/http/index.js";
import { LedgerService } from "../src/index.js";
import { lastEventPosition, readEvents } from "../src/store/events.js";
import { openDatabase, type LedgerDatabase } from "../src/store/index.js";
import { sqlClientOf } from "../src/store/sql-client.js";
import {
  expectLedgerInvariants,
  freshNonce,
  freshOwner,
  openTestDatabase,
  type TestDatabase,
} from "../src/testing/index.js";
import { silentLogger } from "../src/testing/deps.js";
import { testCatalog } from "./fixtures.js";

const APP = "stream-pg";
let tdb: TestDatabase;
let second: LedgerDatabase;
let here: LedgerService;
let elsewhere: LedgerService;

beforeAll(async () => {
  tdb = await openTestDatabase("postgres", { poolSizeMax: 10 });
  if (!tdb.url) throw new Error("postgres test database has a URL");
  second = await openDatabase({ url: tdb.url, poolSizeMax: 10 });
  here = new LedgerService({ db: tdb.db, app: APP, catalog: testCatalog });
  elsewhere = new LedgerService({ db: second.db, app: APP, catalog: testCatalog });
});

afterAll(async () => {
  await expectLedgerInvariants(tdb);
  await second.close();
  await tdb.close();
});

const head = () => lastEventPosition(sqlClientOf(tdb.db));
const credit = (s: LedgerService, owner: string) =>
  s.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce() });

async function logAfter(after: number, ownerId?: string): Promise<LedgerEvent[]> {
  return (await readEvents(sqlClientOf(tdb.db), after, 100_000, ownerId)).map(toLedgerEvent);
}

/** `count` credits from each service, spread over the owners, all in flight together. */
function raceWriters(services: readonly LedgerService[], owners: readonly string[], count: number) {
  return Promise.all(
    services.map(async (s, w) => {
      for (let i = 0; i < count; i += 10) {
        await Promise.all(
          Array.from({ length: 10 }, (_, j) => credit(s, owners[(w + i + j) % owners.length] ?? "")),
        );
      }
    }),
  );
}

describe("events while several processes write [postgres]", () => {
  it("finds another process's commits by polling", async () => {
    const feed = new EventFeed(tdb.db);
    const owner = freshOwner("poll");
    const got: LedgerEvent[] = [];
    const start = await head();
    const following = feed.follow(
      { after: start, ownerId: owner, app: APP },
      { events: (b) => void got.push(...b) },
    );
    onTestFinished(() => following.close());
    for (let i = 0; i < 3; i++) await credit(elsewhere, owner);
    await expect.poll(() => got.length).toBe(3);
    expect(got).toEqual(await logAfter(start, owner));
  });

  it("a consumer paging GET /ledger/events during the race misses nothing and repeats nothing", async () => {
    const app = ledgerAppFactory({ name: APP, catalog: testCatalog, title: APP, version: "0" })({
      db: tdb.db,
      ping: () => tdb.ping(),
      logger: silentLogger,
    });
    const owners = Array.from({ length: 8 }, (_, i) => freshOwner(`race${i}`));
    const start = await head();
    let writing = true;
    const writers = raceWriters([here, elsewhere], owners, 200).finally(() => (writing = false));
    const seen: LedgerEvent[] = [];
    let after = start;
    // Pages read while the writers commit, then one more after they are done.
    for (let more = true; more;) {
      more = writing;
      const res = await app.request(`/ledger/events?after=${after}&limit=7`);
      const page = eventPageSchema.parse(await res.json());
      seen.push(...page.events);
      after = page.next_position;
      if (page.events.length === 7) more = true;
    }
    await writers;
    const log = (await logAfter(start)).filter((e) => visibleTo(APP, e));
    expect(log).toHaveLength(400);
    expect(seen.map((e) => e.position)).toEqual(log.map((e) => e.position));
    expect(seen).toEqual(log);
  });

  it("a follower that leaves after every delivery and resumes from its last event sees each event once", async () => {
    const feed = new EventFeed(tdb.db);
    const owner = freshOwner("resume");
    const start = await head();
    await credit(here, owner);
    const got: LedgerEvent[] = [];
    let resumed = 0;
    let batches = 0;
    let running = true;
    let current: Following | undefined;
    // Each following takes one delivery and ends; the next starts after the last event it got.
    const followFrom = (after: number) => {
      const following = feed.follow(
        { after, ownerId: owner, app: APP },
        {
          events: (batch) => {
            batches += 1;
            got.push(...batch);
            following.close();
          },
        },
      );
      current = following;
      void following.ended.then(() => {
        if (!running) return;
        resumed += 1;
        followFrom(got.at(-1)?.position ?? after);
      });
    };
    onTestFinished(() => {
      running = false;
      current?.close();
    });
    followFrom(start);
    await raceWriters([here, elsewhere, here, elsewhere], [owner], 30);
    const log = await logAfter(start, owner);
    expect(log).toHaveLength(121);
    await expect.poll(() => got.length, { timeout: 20_000 }).toBe(121);
    expect(got).toEqual(log);
    // Every delivery ended its following and the next resumed after it: many followings, not one.
    expect(batches).toBeGreaterThan(1);
    expect(resumed).toBeGreaterThanOrEqual(batches - 1);
  });
});
