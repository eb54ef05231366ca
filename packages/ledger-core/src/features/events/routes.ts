// Reading the event log over HTTP: GET /ledger/events (a page after a position, for any consumer that
// kept one) and GET /ledger/{owner_id}/stream (an owner's events as they commit, Server-Sent Events).
// Both send each event as the envelope every reader gets (toLedgerEvent), and both show an app what its
// other reads show it: every app's entries, and only its own holds.
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { streamSSE, type SSEStreamingApi } from "hono/streaming";
import { ownerParams, validationHook } from "../../http/contract.js";
import type { LedgerEnv } from "../../http/env.js";
import { problemContent } from "../../http/problem.js";
import type { LedgerService } from "../../service/ledger-service.js";
import { eventSchema, type LedgerEvent } from "./envelope.js";
import { readEventPage, type EventFeed, type Following } from "./feed.js";

export const EVENTS_PAGE_SIZE_DEFAULT = 100;
export const EVENTS_PAGE_SIZE_MAX = 1_000;
/** A comment this often keeps proxies and load balancers from closing an idle stream. */
export const STREAM_HEARTBEAT_MS = 15_000;
/** What a stream tells its client to wait before reconnecting (the SSE `retry` field). */
export const STREAM_RETRY_MS = 1_000;

export interface EventRouteOptions {
  /** Injectable for tests; default STREAM_HEARTBEAT_MS. */
  heartbeatMs?: number;
  /** Injectable for tests; default STREAM_RETRY_MS. */
  retryMs?: number;
  /** Injectable for tests; default the service's (one per database per process). */
  feed?: EventFeed;
}

const POSITION_MESSAGE = "a position is a whole number from 0 to 2^53-1";

/** A position as a query parameter or header: digits, no sign, no leading zero, at most 2^53-1. */
const positionText = () =>
  z
    .string()
    .regex(/^(0|[1-9][0-9]{0,15})$/, POSITION_MESSAGE)
    .transform(Number)
    .pipe(z.number().max(Number.MAX_SAFE_INTEGER, POSITION_MESSAGE));

const limitMessage = `limit is a whole number from 1 to ${EVENTS_PAGE_SIZE_MAX}`;

export const eventPageSchema = z
  .object({
    events: z.array(eventSchema),
    next_position: z
      .number()
      .int()
      .nonnegative()
      .openapi({
        description:
          "Pass as `after` for the next page: the last position this page looked at (past other apps' hold " +
          "events it skipped), or `after` itself when there was nothing new",
      }),
  })
  .openapi("EventPage");

// Each service's open streams, so that its server's shutdown can end them (stopStreams); a service
// whose streams were stopped has none here, and ends each new one at once.
const streams = new WeakMap<LedgerService, Set<Following>>();
const stopped = new WeakSet<LedgerService>();

/**
 * Ends the streams of this service's routes, now and from now on: its server is shutting down, and
 * an open stream would hold the server's close for ever. Their clients reconnect with Last-Event-ID.
 */
export function stopStreams(service: LedgerService): void {
  const open = streams.get(service);
  streams.delete(service);
  stopped.add(service);
  for (const following of open ?? []) following.close();
}

/** The events feature's routes for one app. */
export function eventRoutes(service: LedgerService, opts: EventRouteOptions = {}) {
  if (!streams.has(service) && !stopped.has(service)) streams.set(service, new Set());
  const heartbeatMs = opts.heartbeatMs ?? STREAM_HEARTBEAT_MS;
  const retryMs = opts.retryMs ?? STREAM_RETRY_MS;

  const pageRoute = createRoute({
    method: "get",
    path: "/ledger/events",
    operationId: "listEvents",
    tags: ["Events"],
    summary: "The event log after a position, oldest first",
    description:
      "Events in position order (the ledger-wide cursor, in commit order): every app's entry.created, and " +
      "this app's hold events. Keep `next_position` and pass it as `after` to go on; an empty page means " +
      "you have everything committed so far. Events are kept LEDGER_EVENTS_RETENTION_DAYS (README).",
    request: {
      query: z.object({
        after: positionText()
          .optional()
          .openapi({ type: "integer", description: "Only events after this position; default 0 (all)" }),
        limit: z
          .string()
          .regex(/^[1-9][0-9]{0,3}$/, limitMessage)
          .transform(Number)
          .pipe(z.number().max(EVENTS_PAGE_SIZE_MAX, limitMessage))
          .optional()
          .openapi({
            type: "integer",
            description: `Most events in the page, default ${EVENTS_PAGE_SIZE_DEFAULT}`,
            example: EVENTS_PAGE_SIZE_DEFAULT,
          }),
      }),
    },
    responses: {
      200: { description: "A page of events", content: { "application/json": { schema: eventPageSchema } } },
      400: problemContent("`after` or `limit` is not a whole number in range (VALIDATION_FAILED)"),
      503: problemContent("The database is not answering"),
    },
  });

  const streamRoute = createRoute({
    method: "get",
    path: "/ledger/{owner_id}/stream",
    operationId: "streamOwnerEvents",
    tags: ["Events"],
    summary: "An owner's events as they commit (Server-Sent Events)",
    description:
      "Each event as `id: <position>`, `event: <type>`, `data: <envelope>`, in position order: every " +
      "app's entry.created for the owner, and this app's hold events. A client that reconnects with " +
      "`Last-Event-ID` (EventSource does) gets every event after it, then live ones: no gap, no " +
      "duplicate. Without it or `after`, the stream starts at the log's head, and its first frame is an " +
      `\`id:\` line alone naming that position. A comment line comes every ${STREAM_HEARTBEAT_MS / 1000} s. ` +
      "A client too slow to take its events is disconnected, and catches up when it reconnects.",
    request: {
      params: ownerParams,
      query: z.object({
        after: positionText().optional().openapi({
          type: "integer",
          description: "For clients that cannot set Last-Event-ID: start after this position",
        }),
      }),
      headers: z.object({
        "last-event-id": positionText().optional().openapi({
          type: "integer",
          description: "The last position received: start after it (wins over `after`)",
        }),
      }),
    },
    responses: {
      200: {
        description: "The stream: text/event-stream, open until the client leaves",
        content: {
          "text/event-stream": {
            schema: z.string().openapi({
              example:
                'retry: 1000\n\nid: 42\nevent: entry.created\ndata: {"id":"…","type":"entry.created",…}\n\n',
            }),
          },
        },
      },
      400: problemContent("The owner id, `after` or Last-Event-ID is invalid (VALIDATION_FAILED)"),
    },
  });

  return new OpenAPIHono<LedgerEnv>({ strict: false, defaultHook: validationHook })
    .openapi(pageRoute, async (c) => {
      const { after = 0, limit = EVENTS_PAGE_SIZE_DEFAULT } = c.req.valid("query");
      return c.json(await service.query((db) => readEventPage(db, service.app, after, limit)), 200);
    })
    .openapi(streamRoute, (c) => {
      const { owner_id } = c.req.valid("param");
      const after = c.req.valid("header")["last-event-id"] ?? c.req.valid("query").after;
      const feed = opts.feed ?? service.eventFeed();
      c.header("x-accel-buffering", "no");
      return streamSSE(c, async (stream) => {
        await stream.write(`retry: ${retryMs}\n\n`);
        // Shutting down: the client comes back after `retry`, to this server's successor.
        const open = streams.get(service);
        if (!open) return;
        const following = feed.follow(
          { after, ownerId: owner_id, app: service.app },
          {
            // With no position given, the client learns where it started, so a reconnection before
            // the first event still resumes from there.
            start: after === undefined ? (position) => write(stream, `id: ${position}\n\n`) : undefined,
            events: (events) => write(stream, events.map(sseFrame).join("")),
          },
        );
        stream.onAbort(() => following.close());
        // Gone while the first frame was written: onAbort had nothing to call then.
        if (stream.aborted) following.close();
        open.add(following);
        let writing = false;
        const heartbeat = setInterval(() => {
          if (writing) return;
          writing = true;
          void stream.write(": keep-alive\n\n").finally(() => (writing = false));
        }, heartbeatMs);
        const end = await following.ended;
        open.delete(following);
        clearInterval(heartbeat);
        if (end !== "closed") c.get("log").info({ owner_id, end }, "event stream ended");
        // Not close(): a write stuck on a client that stopped reading would hold it. The client's
        // Last-Event-ID is what it received, so whatever is dropped here it gets again.
        stream.abort();
      });
    });
}

/** A stream's write: throws once the client is gone, which ends the following. */
async function write(stream: SSEStreamingApi, text: string): Promise<void> {
  await stream.write(text);
  if (stream.aborted) throw new Error("the client left");
}

// The frame of an event, made once however many streams send it (the feed shares one object per event).
const frames = new WeakMap<LedgerEvent, string>();

function sseFrame(event: LedgerEvent): string {
  let frame = frames.get(event);
  if (frame === undefined) {
    frame = `id: ${event.position}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
    frames.set(event, frame);
  }
  return frame;
}
