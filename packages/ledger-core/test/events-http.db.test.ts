// Reading events over HTTP, on both drivers: GET /ledger/events pages the log in position order, each
// event exactly the envelope every reader gets; GET /ledger/{owner_id}/stream sends an owner's events as
// SSE frames (through app.request: no port), from a position or from the head, with its heartbeat.
// Each app reads every app's entry.created and only its own holds' events, as its other reads show it.
import { OpenAPIHono } from "@hono/zod-openapi";
import { beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { eventSchema, type LedgerEvent } from "../src/features/events/envelope.js";
import { EventFeed, visibleTo } from "../src/features/events/feed.js";
import { toLedgerEvent } from "../src/features/events/outbox.js";
import {
  eventPageSchema,
  eventRoutes,
  EVENTS_PAGE_SIZE_DEFAULT,
  stopStreams,
} from "../src/features/events/routes.js";
import { submitCapture, submitHold, submitRelease } from "../src/features/holds/command.js";
import { ledgerAppFactory } from "../src/http/index.js";
import type { LedgerEnv } from "../src/http/env.js";
import { LedgerService } from "../src/index.js";
import { lastEventPosition, readEvents } from "../src/store/events.js";
import { sqlClientOf } from "../src/store/sql-client.js";
import { freshNonce, freshOwner, testDriver, useTestDatabase } from "../src/testing/index.js";
import { silentLogger } from "../src/testing/deps.js";
import { expectProblem, expectRefusal } from "../src/testing/problems.js";
import { testCatalog } from "./fixtures.js";

const tdb = useTestDatabase();
const specOf = (name: string) => ({ name, catalog: testCatalog, title: name, version: "0" });
const createA = ledgerAppFactory(specOf("events-a"));

let appA: ReturnType<typeof createA>;
let serviceA: LedgerService;
let serviceB: LedgerService;

beforeAll(() => {
  const deps = { db: tdb().db, ping: () => tdb().ping(), logger: silentLogger };
  appA = createA(deps);
  serviceA = new LedgerService({ db: tdb().db, app: "events-a", catalog: testCatalog });
  serviceB = new LedgerService({ db: tdb().db, app: "events-b", catalog: testCatalog });
});

const head = () => lastEventPosition(sqlClientOf(tdb().db));

/** Every event after `after` in the log, as the envelope, read from the database itself. */
async function logAfter(after: number): Promise<LedgerEvent[]> {
  return (await readEvents(sqlClientOf(tdb().db), after, 10_000)).map(toLedgerEvent);
}

const credit = (s: LedgerService, owner: string) =>
  s.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce() });

/** An owner with a credit from each app, a captured and a released hold of A's, and a hold of B's. */
async function writeMixed(owner: string): Promise<void> {
  await credit(serviceA, owner);
  await credit(serviceB, owner);
  const hold = (s: LedgerService) =>
    submitHold(s, { owner_id: owner, operation: "CREDIT_SPEND", nonce: freshNonce() });
  const captured = await hold(serviceA);
  await submitCapture(serviceA, captured.hold.id, { nonce: freshNonce() });
  const released = await hold(serviceA);
  await submitRelease(serviceA, released.hold.id, { nonce: freshNonce() });
  await hold(serviceB);
}

async function getPage(query: string) {
  const res = await appA.request(`/ledger/events${query}`);
  const text = await res.text();
  expect(res.status, text).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^application\/json\b/);
  const body = eventPageSchema.strict().parse(JSON.parse(text));
  // Parsing drops members the schema does not name: equal means there were none.
  expect(body.events.map((e) => eventSchema.parse(e))).toEqual(JSON.parse(text).events);
  return body;
}

describe(`GET /ledger/events [${testDriver()}]`, () => {
  it("pages the log in position order, each event the envelope, other apps' holds left out", async () => {
    const before = await head();
    await writeMixed(freshOwner("page"));
    const expected = (await logAfter(before)).filter((e) => visibleTo("events-a", e));
    const seen: LedgerEvent[] = [];
    let after = before;
    for (;;) {
      const page = await getPage(`?after=${after}&limit=2`);
      expect(page.events.length).toBeLessThanOrEqual(2);
      if (page.events.length === 0) {
        expect(page.next_position).toBe(after);
        break;
      }
      expect(page.next_position).toBeGreaterThanOrEqual(page.events.at(-1)?.position ?? Infinity);
      seen.push(...page.events);
      after = page.next_position;
    }
    expect(seen).toEqual(expected);
    const types = seen.map((e) => `${e.app}:${e.type}`);
    expect(types.filter((t) => t.endsWith(":entry.created"))).toHaveLength(7);
    expect(types).toEqual(expect.arrayContaining(["events-b:entry.created", "events-a:hold.captured"]));
    expect(types.filter((t) => t.startsWith("events-b:hold."))).toEqual([]);
    // B reads its own hold's event, which A was not shown.
    const asB = (await logAfter(before)).filter((e) => visibleTo("events-b", e));
    expect(asB.filter((e) => e.type === "hold.created").map((e) => e.app)).toEqual(["events-b"]);
  });

  it("moves next_position past the other apps' hold events it passes over", async () => {
    const owner = freshOwner("skip");
    await credit(serviceB, owner);
    const before = await head();
    await submitHold(serviceB, { owner_id: owner, operation: "CREDIT_SPEND", nonce: freshNonce() });
    const [holdEntry, holdEvent] = await logAfter(before);
    expect(holdEvent?.type).toBe("hold.created");
    const page = await getPage(`?after=${before}&limit=1`);
    expect(page).toEqual({ events: [holdEntry], next_position: holdEntry?.position });
    // All that is left is B's hold.created: no event for A, and the cursor past it.
    expect(await getPage(`?after=${page.next_position}`)).toEqual({
      events: [],
      next_position: holdEvent?.position,
    });
  });

  it(`defaults to after=0 and ${EVENTS_PAGE_SIZE_DEFAULT} events; answers 1000 at most`, async () => {
    const owner = freshOwner("many");
    await Promise.all(Array.from({ length: 120 }, () => credit(serviceA, owner)));
    const all = (await logAfter(0)).filter((e) => visibleTo("events-a", e));
    expect(all.length).toBeGreaterThan(EVENTS_PAGE_SIZE_DEFAULT);
    const page = await getPage("");
    expect(page.events).toEqual(all.slice(0, EVENTS_PAGE_SIZE_DEFAULT));
    expect(page.next_position).toBe(all[EVENTS_PAGE_SIZE_DEFAULT - 1]?.position);
    const most = await getPage("?limit=1000");
    expect(most.events).toEqual(all.slice(0, 1000));
  });

  it("answers an empty page, next_position unchanged, after the head", async () => {
    const after = (await head()) + 1_000;
    expect(await getPage(`?after=${after}`)).toEqual({ events: [], next_position: after });
  });

  describe.each([
    ["after=-1", "after"],
    ["after=abc", "after"],
    ["after=1.5", "after"],
    ["after=01", "after"],
    ["after=", "after"],
    ["after=9007199254740992", "after"],
    ["limit=0", "limit"],
    ["limit=1001", "limit"],
    ["limit=-5", "limit"],
    ["limit=1e3", "limit"],
    ["limit=ten", "limit"],
  ])("?%s", (query, path) => {
    it("is refused: 400 VALIDATION_FAILED naming the parameter", async () => {
      const problem = await expectRefusal(
        await appA.request(`/ledger/events?${query}`),
        400,
        "VALIDATION_FAILED",
      );
      expect(problem.errors?.map((e) => e.path)).toEqual([path]);
    });
  });

  it("is GET /ledger/events, not the balance of an owner called events", async () => {
    const res = await appA.request("/ledger/events?limit=1");
    expect(Object.keys(JSON.parse(await res.text()) as object).sort()).toEqual(["events", "next_position"]);
  });

  it("is in the OpenAPI document with its schemas", async () => {
    const doc = (await (await appA.request("/openapi.json")).json()) as {
      paths: Record<
        string,
        Record<string, { responses: Record<string, { content: Record<string, unknown> }> }>
      >;
      components: { schemas: Record<string, unknown> };
    };
    expect(Object.keys(doc.paths["/ledger/events"]?.get?.responses["200"]?.content ?? {})).toEqual([
      "application/json",
    ]);
    expect(Object.keys(doc.paths["/ledger/{owner_id}/stream"]?.get?.responses["200"]?.content ?? {})).toEqual(
      ["text/event-stream"],
    );
    expect(Object.keys(doc.components.schemas)).toEqual(
      expect.arrayContaining(["EventPage", "Event", "EntryCreatedEvent", "HoldCapturedEvent"]),
    );
  });
});

/** An SSE frame as its fields: `id`, `event`, `data`, `retry`, and `comment` for comment lines. */
type Frame = Partial<Record<"id" | "event" | "data" | "retry" | "comment", string>>;

/** Reads an SSE response frame by frame. */
function sseReader(res: Response) {
  const body = res.body;
  if (!body) throw new Error("the stream has no body");
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  return {
    async next(): Promise<Frame> {
      for (;;) {
        const end = text.indexOf("\n\n");
        if (end >= 0) {
          const block = text.slice(0, end);
          text = text.slice(end + 2);
          const frame: Frame = {};
          for (const line of block.split("\n")) {
            const colon = line.indexOf(":");
            const field = colon === 0 ? "comment" : line.slice(0, colon);
            frame[field as keyof Frame] = line.slice(colon + 1).replace(/^ /, "");
          }
          return frame;
        }
        const chunk = await reader.read();
        if (chunk.done) throw new Error("the stream ended");
        text += chunk.value;
      }
    },
    /** The next frames that carry an event (comments and bare ids passed over), parsed and checked. */
    async events(n: number): Promise<LedgerEvent[]> {
      const out: LedgerEvent[] = [];
      while (out.length < n) {
        const frame = await this.next();
        if (frame.data === undefined) continue;
        const event = eventSchema.parse(JSON.parse(frame.data));
        expect(frame.id).toBe(String(event.position));
        expect(frame.event).toBe(event.type);
        expect(event).toEqual(JSON.parse(frame.data));
        out.push(event);
      }
      return out;
    },
    close: () => reader.cancel(),
  };
}

async function openStream(
  app: { request: typeof appA.request },
  path: string,
  headers: Record<string, string> = {},
) {
  const res = await app.request(path, { headers });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("text/event-stream");
  expect(res.headers.get("cache-control")).toBe("no-cache");
  expect(res.headers.get("x-accel-buffering")).toBe("no");
  const stream = sseReader(res);
  onTestFinished(() => stream.close());
  expect(await stream.next()).toEqual({ retry: "1000" });
  return stream;
}

describe(`GET /ledger/{owner_id}/stream through app.request [${testDriver()}]`, () => {
  it("sends the owner's events after Last-Event-ID, then live ones, other apps' holds left out", async () => {
    const owner = freshOwner("sse");
    const other = freshOwner("sse-other");
    await credit(serviceA, owner);
    const before = await head();
    await writeMixed(owner);
    await credit(serviceA, other);
    const past = (await logAfter(before)).filter((e) => e.owner_id === owner && visibleTo("events-a", e));
    const stream = await openStream(appA, `/ledger/${owner}/stream?after=0`, {
      "last-event-id": String(before),
    });
    expect(await stream.events(past.length)).toEqual(past);
    const mid = await head();
    await credit(serviceB, owner);
    await submitHold(serviceB, { owner_id: owner, operation: "CREDIT_SPEND", nonce: freshNonce() });
    await credit(serviceA, other);
    await credit(serviceA, owner);
    const live = (await logAfter(mid)).filter((e) => e.owner_id === owner && visibleTo("events-a", e));
    expect(live.map((e) => `${e.app}:${e.type}`)).toEqual([
      "events-b:entry.created",
      "events-b:entry.created",
      "events-a:entry.created",
    ]);
    expect(await stream.events(live.length)).toEqual(live);
  });

  it("takes ?after= when there is no Last-Event-ID", async () => {
    const owner = freshOwner("sse-after");
    await credit(serviceA, owner);
    const before = await head();
    await credit(serviceA, owner);
    const stream = await openStream(appA, `/ledger/${owner}/stream?after=${before}`);
    expect(await stream.events(1)).toEqual(await logAfter(before));
  });

  it("without a position starts at the head, and says where in a bare id frame", async () => {
    const owner = freshOwner("sse-head");
    await credit(serviceA, owner);
    const stream = await openStream(appA, `/ledger/${owner}/stream`);
    const start = await stream.next();
    expect(Object.keys(start)).toEqual(["id"]);
    expect(Number(start.id)).toBeGreaterThanOrEqual(
      (await logAfter(0)).filter((e) => e.owner_id === owner).at(-1)?.position ?? Infinity,
    );
    await credit(serviceA, owner);
    const [event] = await stream.events(1);
    expect(event?.position).toBeGreaterThan(Number(start.id));
    expect(event?.owner_id).toBe(owner);
  });

  it("ends its following when the client goes", async () => {
    const feed = serviceA.eventFeed();
    const owner = freshOwner("sse-gone");
    const stream = await openStream(appA, `/ledger/${owner}/stream`);
    await stream.next();
    expect(feed.stats().followers).toBeGreaterThan(0);
    await stream.close();
    await expect.poll(() => feed.stats().followers).toBe(0);
  });

  it("sends a comment every heartbeat interval while nothing happens", async () => {
    const feed = new EventFeed(tdb().db);
    const app = new OpenAPIHono<LedgerEnv>()
      .use((c, next) => {
        c.set("log", silentLogger);
        return next();
      })
      .route("/", eventRoutes(serviceA, { heartbeatMs: 20, feed }));
    const stream = await openStream(app, `/ledger/${freshOwner("beat")}/stream`);
    expect(Object.keys(await stream.next())).toEqual(["id"]);
    expect(await stream.next()).toEqual({ comment: "keep-alive" });
    expect(await stream.next()).toEqual({ comment: "keep-alive" });
  });

  it("ends a service's streams when its server shuts down, and each one asked for after", async () => {
    const service = new LedgerService({ db: tdb().db, app: "events-a", catalog: testCatalog });
    const app = new OpenAPIHono<LedgerEnv>()
      .use((c, next) => {
        c.set("log", silentLogger);
        return next();
      })
      .route("/", eventRoutes(service));
    const open = await openStream(app, `/ledger/${freshOwner("stop")}/stream`);
    expect(Object.keys(await open.next())).toEqual(["id"]);
    stopStreams(service);
    await expect(open.next()).rejects.toThrow("the stream ended");
    const later = await openStream(app, `/ledger/${freshOwner("stop")}/stream`);
    await expect(later.next()).rejects.toThrow("the stream ended");
    // Another service's streams go on.
    const owner = freshOwner("stays");
    const on = await openStream(appA, `/ledger/${owner}/stream`);
    await on.next();
    await credit(serviceA, owner);
    expect((await on.events(1))[0]?.owner_id).toBe(owner);
  });

  describe.each([
    ["an owner id with a space", "/ledger/bad%20owner/stream", {}, "owner_id"],
    ["a reserved word for an owner", "/ledger/holds/stream", {}, "hold_id"],
    ["an owner called events", "/ledger/events/stream", {}, "owner_id"],
    ["Last-Event-ID not a number", "/ledger/o1/stream", { "last-event-id": "abc" }, "last-event-id"],
    ["Last-Event-ID negative", "/ledger/o1/stream", { "last-event-id": "-1" }, "last-event-id"],
    [
      "Last-Event-ID past 2^53-1",
      "/ledger/o1/stream",
      { "last-event-id": "9007199254740992" },
      "last-event-id",
    ],
    ["after not a number", "/ledger/o1/stream?after=x", {}, "after"],
  ])("with %s", (_name, path, headers: Record<string, string>, field) => {
    it("answers a 400 problem before any stream starts", async () => {
      const res = await appA.request(path, { headers });
      const problem = await expectProblem(res, 400, "VALIDATION_FAILED");
      expect(problem.errors?.map((e) => e.path)).toEqual([field]);
    });
  });
});
