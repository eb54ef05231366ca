// What a write knows of the request that made it, without threading it through every feature's command:
// the HTTP layer runs each request inside this context, and group commit reads it when a command is
// submitted, so the entries name the API key that wrote them (actor) and the outbox names the request
// (its x-request-id) and its trace in the events.
import { AsyncLocalStorage } from "node:async_hooks";

export interface RequestContext {
  requestId: string;
  /** The id of the API key the request authenticated with; null with LEDGER_AUTH=off. */
  actor: string | null;
  /** The W3C trace id of its traceparent header, if it had a valid one. */
  traceId: string | null;
}

/** What group commit keeps of the request that submitted a command. */
export type RequestOrigin = RequestContext;

const storage = new AsyncLocalStorage<RequestContext>();

/** Runs fn (and everything it awaits) inside the request's context. */
export function withRequestContext<T>(context: RequestContext, fn: () => T): T {
  return storage.run(context, fn);
}

/** The current request; null outside a request (the sweepers, the CLI). */
export function currentRequest(): RequestOrigin | null {
  return storage.getStore() ?? null;
}

/**
 * Sets who the current request is, once authentication knows: the context is created before it (the
 * request id comes first), so the record is filled in place.
 */
export function identifyCurrentRequest(actor: string): void {
  const context = storage.getStore();
  if (context) context.actor = actor;
}
