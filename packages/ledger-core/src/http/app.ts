// A complete ledger HTTP app for one catalog: request ids and structured logs, the body limit, the
// /ledger routes, /health, /openapi.json and /docs, and one error shape for every failure.
import { OpenAPIHono } from "@hono/zod-openapi";
import { Readable } from "node:stream";
import type { Context, MiddlewareHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import { requestId } from "hono/request-id";
import type { Logger } from "pino";
import { LedgerError } from "../domain/errors.js";
import { BODY_SIZE_MAX_BYTES } from "../domain/limits.js";
import type { LedgerDb } from "../store/client.js";
import type { OperationCatalogView } from "../domain/operations.js";
import { LedgerService } from "../service/ledger-service.js";
import { docsRoutes, registerOpenApi } from "./docs.js";
import type { LedgerEnv } from "./env.js";
import { problem, problemExtra, STATUS_BY_CODE } from "./problem.js";
import { createLedgerRouter, validationHook, WRITE_ROUTES } from "./router.js";
import { FEATURES } from "../features/index.js";
import { findStrictJsonProblem } from "./strict-json.js";
import { currentRequest, withRequestContext } from "../engine/request-context.js";
import type { RelayState } from "../features/events/relay.js";
import { sqlClientOf } from "../store/sql-client.js";
import { authMiddleware } from "./auth.js";
import { traceIdOf } from "./trace.js";
import type { RateLimits } from "./rate-limit.js";
import { requestMetrics, type LedgerMetrics } from "./metrics.js";

export interface LedgerAppOptions {
  service: LedgerService;
  /** Answers whether the database is reachable; used by /health. */
  ping: () => Promise<void>;
  logger: Logger;
  title: string;
  version: string;
  bodySizeMaxBytes?: number;
  /** The relay's state, reported by /health under `events` (unset: /health says nothing of events). */
  relayState?: () => RelayState;
  /** API keys and rate limits: LEDGER_AUTH=required (unset: off, nothing checked). */
  auth?: AppAuth | undefined;
  /** The process's metrics: every request is counted and GET /metrics answers them (unset: no /metrics). */
  metrics?: LedgerMetrics | undefined;
}

/** What an app needs to check API keys: where they are, the shared rate limits, the default rate. */
export interface AppAuth {
  /** The database holding ledger_api_keys (the app's own). */
  db: LedgerDb;
  limits: RateLimits;
  /** LEDGER_RATE_LIMIT_PER_S. */
  defaultRatePerS: number;
}

export function createLedgerApp(opts: LedgerAppOptions) {
  const { service, logger } = opts;
  const app = new OpenAPIHono<LedgerEnv>({ strict: false, defaultHook: validationHook });

  app.use(requestId());
  // The request's id reaches what it writes (the events name it) through the request context.
  // So does the trace id of its traceparent header; the key that sent it is added by authentication.
  app.use((c, next) =>
    withRequestContext(
      { requestId: c.get("requestId"), actor: null, traceId: traceIdOf(c.req.header("traceparent")) },
      next,
    ),
  );
  const { metrics } = opts;
  if (metrics) app.use(requestMetrics(metrics, service.app));
  app.use(async (c, next) => {
    const started = performance.now();
    const traceId = currentRequest()?.traceId ?? null;
    c.set(
      "log",
      logger.child({
        req_id: c.get("requestId"),
        app: service.app,
        ...(traceId ? { trace_id: traceId } : {}),
      }),
    );
    await next();
    // The auth middleware adds the key's id to the request's logger.
    c.get("log").info(
      {
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        duration_ms: Math.round((performance.now() - started) * 100) / 100,
      },
      "request",
    );
  });
  // Before the route's own validation; strict: false makes "/ledger/" match too. A feature may give its
  // write paths a body limit of their own (a batch's is larger than one write's).
  // Who is calling, before anything reads a body or a route runs: a refusal writes nothing.
  if (opts.auth) {
    app.use(
      authMiddleware({
        app: service.app,
        db: sqlClientOf(opts.auth.db),
        logger,
        limits: opts.auth.limits,
        defaultRatePerS: opts.auth.defaultRatePerS,
        clientAddress,
      }),
    );
  }
  const guard = writeBodyGuard(opts.bodySizeMaxBytes ?? BODY_SIZE_MAX_BYTES);
  for (const { path, bodySizeMaxBytes } of WRITE_ROUTES) {
    app.post(path, bodySizeMaxBytes === undefined ? guard : writeBodyGuard(bodySizeMaxBytes));
  }
  app.route("/", createLedgerRouter(service));

  app.get("/health", async (c) => {
    const events = opts.relayState ? { events: eventsHealth(opts.relayState()) } : {};
    try {
      await opts.ping();
      return c.json({ status: "ok", app: service.app, database: "up", ...events }, 200);
    } catch {
      return c.json({ status: "unavailable", app: service.app, database: "down", ...events }, 503);
    }
  });

  // Open like /health (auth.ts): the process's metrics, summed over its workers (runtime/metrics.ts).
  if (metrics) {
    app.get("/metrics", async (c) =>
      c.body(await metrics.scrape(), 200, { "content-type": metrics.contentType }),
    );
  }

  registerOpenApi(app, {
    openapi: "3.1.0",
    info: {
      title: opts.title,
      version: opts.version,
      description:
        "Credits ledger. Every write is exactly-once per nonce, no balance goes below zero, and every entry " +
        "records the owner's running balance. Errors are RFC 9457 problem+json with a stable `code`.",
    },
  });
  app.route("/", docsRoutes(opts.title));

  app.notFound((c) => problem(c, "NOT_FOUND", `No route for ${c.req.method} ${c.req.path}`));

  app.onError((error, c) => {
    if (error instanceof LedgerError) {
      const status = STATUS_BY_CODE[error.code];
      if (status >= 500) c.get("log")?.error({ err: error }, "ledger error");
      return problem(c, error.code, error.message, problemExtra(error));
    }
    if (error instanceof HTTPException) {
      const status = error.status;
      if (status === 413) return problem(c, "PAYLOAD_TOO_LARGE", "The body is over the size limit");
      if (status === 415) return problem(c, "UNSUPPORTED_MEDIA_TYPE", "Send the body as application/json");
      if (status === 400 && /json/i.test(error.message)) {
        return problem(c, "MALFORMED_JSON", "The body is not valid JSON");
      }
      if (status < 500) return problem(c, "BAD_REQUEST", error.message || "Bad request");
    }
    (c.get("log") ?? logger).error({ err: error }, "unhandled error");
    return problem(c, "INTERNAL_ERROR", "Something went wrong on our side; nothing about it is safe to show");
  });

  return app;
}

/**
 * The relay's part of /health. A broker that is down does not make the app unavailable: writes go on and
 * their events wait in the outbox, so it is "degraded" here and the app's status is untouched.
 */
function eventsHealth(state: RelayState) {
  const degraded = state.role === "active" && state.broker !== null && !state.broker_connected;
  const detail = degraded
    ? "the broker is not answering: writes go on, their events wait in the outbox (pending) and are published when it is back"
    : state.broker === null
      ? "no broker configured (LEDGER_EVENTS_URL): events are read over GET /ledger/events and the streams"
      : state.role === "active"
        ? "this process (or, with LEDGER_WORKERS > 1, its primary) relays the outbox to the broker"
        : state.role === "standby"
          ? "another process relays the outbox; this one takes over if it stops"
          : "the relay does not run in this process (LEDGER_RELAY=off)";
  return { status: degraded ? "degraded" : "ok", detail, ...state };
}

/**
 * What a write body must be before the route's schema even sees it: `application/json` (UTF-8), no
 * larger than the limit counted on the bytes actually received (not on what Content-Length claims),
 * valid UTF-8 and JSON, without duplicate member names or non-integer numbers.
 */
function writeBodyGuard(sizeMaxBytes: number): MiddlewareHandler<LedgerEnv> {
  return async (c, next) => {
    const [mediaType = "", ...params] = (c.req.header("content-type") ?? "")
      .split(";")
      .map((p) => p.trim().toLowerCase());
    const charset = params
      .find((p) => p.startsWith("charset="))
      ?.slice("charset=".length)
      .replaceAll('"', "");
    if (mediaType !== "application/json" || (charset !== undefined && charset !== "utf-8")) {
      return problem(c, "UNSUPPORTED_MEDIA_TYPE", "Send the body as application/json (UTF-8)");
    }
    // A declared size over the limit is refused before reading; a smaller one is not trusted either.
    const declared = c.req.header("content-length");
    const bytes =
      declared && /^\d+$/.test(declared) && Number(declared) > sizeMaxBytes
        ? undefined
        : await readBody(c, sizeMaxBytes);
    if (bytes === undefined) {
      return problem(c, "PAYLOAD_TOO_LARGE", `The body is over ${sizeMaxBytes} bytes`);
    }
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
      JSON.parse(text);
      // Hono's validator reads the body again through its cache, not the (now consumed) stream.
      (c.req.bodyCache as { text?: Promise<string> }).text = Promise.resolve(text);
    } catch {
      return problem(c, "MALFORMED_JSON", "The body is not valid JSON in UTF-8");
    }
    const found = findStrictJsonProblem(text);
    if (found?.kind === "duplicate-key") {
      return problem(c, "MALFORMED_JSON", `The body names ${JSON.stringify(found.key)} more than once`);
    }
    if (found?.kind === "non-integer-number") {
      return problem(c, "VALIDATION_FAILED", `Numbers must be written as integers; got ${found.literal}`, {
        errors: [{ path: "", message: `non-integer number ${found.literal}` }],
      });
    }
    return next();
  };
}

/**
 * The body's bytes, or undefined once they pass sizeMaxBytes (reading stops there, whatever
 * Content-Length claimed). Under @hono/node-server it reads the Node request itself and hands the bytes
 * to Hono's body cache: building a web Request and ReadableStream for each body cost more CPU than the
 * rest of a request (docs/BENCHMARKS.md).
 */
async function readBody(c: Context<LedgerEnv>, sizeMaxBytes: number): Promise<Uint8Array | undefined> {
  const incoming = (c.env as { incoming?: unknown } | undefined)?.incoming;
  const source: AsyncIterable<Uint8Array> | null = incoming instanceof Readable ? incoming : c.req.raw.body;
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (source) {
    for await (const chunk of source) {
      size += chunk.byteLength;
      if (size > sizeMaxBytes) return undefined;
      chunks.push(chunk);
    }
  }
  return new Uint8Array(Buffer.concat(chunks, size));
}

export interface AppDeps {
  db: LedgerDb;
  ping: () => Promise<void>;
  logger: Logger;
  /** Injectable for tests of daily limits; defaults to the wall clock. */
  clock?: () => Date;
  /** Most posts in one transaction (LedgerService's batchSizeMax); 1 turns group commit off. */
  batchSizeMax?: number;
  /**
   * LEDGER_EXPIRY_SWEEP_S: sweep this app's due grants this often (unset: no sweeper; tests sweep by
   * hand). The sweeper's stop is handed to onStop, to run before the database closes.
   */
  expirySweepS?: number;
  onStop?: (stop: () => Promise<void>) => void;
  /** The relay's state for /health (boot passes it; unset: /health says nothing of events). */
  relayState?: () => RelayState;
  /** API keys and rate limits (boot passes them; unset: LEDGER_AUTH=off). The keys are in `db`. */
  auth?: Omit<AppAuth, "db"> | undefined;
  /**
   * The process's metrics (boot makes one per process; a test its own): the app counts into it and
   * serves it at /metrics, with its pool, relay, rate limits and sweeper read at each scrape. Unset: no
   * /metrics.
   */
  metrics?: LedgerMetrics | undefined;
}

/** What an app is: its name (recorded on entries, scope of its nonces), its catalog, its API title. */
export interface AppSpec {
  name: string;
  catalog: OperationCatalogView;
  title: string;
  version: string;
}

/** An app's factory: give it a database and a logger, get its Hono app. */
export function ledgerAppFactory(spec: AppSpec) {
  return (deps: AppDeps) => {
    const service = new LedgerService({
      db: deps.db,
      app: spec.name,
      catalog: spec.catalog,
      clock: deps.clock,
      batchSizeMax: deps.batchSizeMax,
      observer: deps.metrics?.serviceObserver(spec.name),
    });
    if (deps.metrics) watchSources(deps.metrics, deps, service);
    for (const feature of FEATURES) {
      const stop = feature.start?.(service, { logger: deps.logger, expirySweepS: deps.expirySweepS });
      if (stop) deps.onStop?.(stop);
    }
    return createLedgerApp({
      service,
      ping: deps.ping,
      logger: deps.logger,
      title: spec.title,
      version: spec.version,
      ...(deps.relayState ? { relayState: deps.relayState } : {}),
      auth: deps.auth && { ...deps.auth, db: deps.db },
      metrics: deps.metrics,
    });
  };
}

/** What /metrics reads at each scrape; the apps of one process share all but the sweeper. */
function watchSources(metrics: LedgerMetrics, deps: AppDeps, service: LedgerService): void {
  metrics.watchPool(deps.db);
  metrics.watchSweeper(service.app, () => service.sweepProgress());
  if (deps.relayState) metrics.watchRelay(deps.relayState);
  if (deps.auth) metrics.watchRateLimits(deps.auth.limits);
}

/** The address of the connection (not a forwarded header: that is the client's to write). */
function clientAddress(c: Context<LedgerEnv>): string {
  const incoming = (c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)?.incoming;
  return incoming?.socket?.remoteAddress ?? "unknown";
}
