// What a write knows of the request that made it, without threading it through every feature's command:
// the HTTP layer runs each request inside this context, and group commit reads it when a command is
// submitted, so the outbox can name the request (its x-request-id) in the events it wrote.
import { AsyncLocalStorage } from "node:async_hooks";

export interface RequestContext {
  requestId: string;
}

const storage = new AsyncLocalStorage<RequestContext>();

/** Runs fn (and everything it awaits) inside the request's context. */
export function withRequestContext<T>(context: RequestContext, fn: () => T): T {
  return storage.run(context, fn);
}

/** The current request's id; null outside a request (the sweepers, the CLI). */
export function currentRequestId(): string | null {
  return storage.getStore()?.requestId ?? null;
}
