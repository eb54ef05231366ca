// The events feature: the log's read side over HTTP (GET /ledger/events, GET /ledger/{owner_id}/stream).
// The outbox itself is written by group commit (outbox.ts); delivery to a broker is the relay's.
import type { Feature } from "../feature.js";
import { eventRoutes, stopStreams } from "./routes.js";

/**
 * GET /ledger/events and GET /ledger/{owner_id}/stream. Its start gives the database's feed the app's
 * logger, and its stop ends the app's streams, and each one opened after it, at once (their clients
 * reconnect with Last-Event-ID).
 */
export const events: Feature = {
  name: "events",
  routes: (service) => eventRoutes(service),
  start: (service, runtime) => {
    service.eventFeed().useLogger(runtime.logger);
    return () => {
      stopStreams(service);
      return Promise.resolve();
    };
  },
};

export {
  EVENT_SCHEMAS,
  EVENT_TYPES,
  EVENT_VERSION,
  eventJsonSchema,
  eventRoute,
  eventSchema,
  type EntryCreatedData,
  type EventType,
  type HoldEventData,
  type LedgerEvent,
} from "./envelope.js";
export {
  EventFeed,
  eventFeedFor,
  readEventPage,
  visibleTo,
  type EventFeedStats,
  type EventPage,
  type FollowEnd,
  type FollowHandlers,
  type Following,
  type FollowRequest,
} from "./feed.js";
export { toLedgerEvent } from "./outbox.js";
export { eventPageSchema, eventRoutes, stopStreams, type EventRouteOptions } from "./routes.js";
