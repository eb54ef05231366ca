// GET /metrics: Prometheus text from prom-client, one Registry per process (never prom-client's global
// one, so a test makes its own). What happens is counted where it happens: requests by a middleware,
// commands where the service answers them, batch sizes as group commit starts each batch. What is a
// current value (the relay's lag, the pool, the rate limits' and the sweeper's totals) is read when
// scraped, by collect(). Labels are bounded: the app, the route's template (never a path: an owner id
// is no label value), the method, the status, the command's kind, its outcome.
//
// With LEDGER_WORKERS > 1 every worker's registry is summed by the primary (runtime/metrics.ts) and a
// scrape of any worker answers that sum; `aggregator` below says how a metric is combined instead
// where a sum would be wrong.
import type { MiddlewareHandler } from "hono";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { RelayState } from "../features/events/relay.js";
import type { SweepProgress } from "../features/grants/sweeper.js";
import type { OperationOutcome, ServiceObserver } from "../service/ledger-service.js";
import type { LedgerDb } from "../store/client.js";
import { poolUsageOf } from "../store/sql-client.js";
import type { LedgerEnv } from "./env.js";
import type { RateLimits } from "./rate-limit.js";
import { routeOf } from "./scopes.js";

/** Seconds: from a fast read (a millisecond) to a write waiting out its timeout (10 s). */
export const REQUEST_DURATION_BUCKETS_S = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
] as const;

/** Commands per batch: powers of two up to past the largest batch (LEDGER_BATCH_SIZE_MAX, 500 by default). */
export const BATCH_SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024] as const;

/** Paths the app serves besides the ledger's routes (scopes.ts); any other is "unmatched". */
const FIXED_ROUTES: ReadonlySet<string> = new Set([
  "/health",
  "/metrics",
  "/openapi.json",
  "/docs",
  "/redoc",
]);
const METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/** The `route` label of a request: its template, one of the app's fixed paths, or "unmatched". */
export function routeLabelOf(method: string, path: string): string {
  const template = routeOf(method, path)?.template;
  if (template) return template;
  const trimmed = path.length > 1 ? path.replace(/\/+$/, "") : path;
  return FIXED_ROUTES.has(trimmed) ? trimmed : "unmatched";
}

const methodLabelOf = (method: string) => (METHODS.has(method) ? method : "OTHER");

export interface LedgerMetricsOptions {
  /** Default: a new Registry of its own. */
  registry?: Registry;
  /**
   * What a scrape answers (default: this registry's text). A cluster worker answers the sum over every
   * worker, which its primary gathers (runtime/metrics.ts).
   */
  scrape?: () => Promise<string>;
  /**
   * Whether this process reports the relay (default true). A worker whose primary runs the relay says
   * false: the primary reports it, once, and the workers' copy of its state would count it N times.
   */
  reportsRelay?: boolean;
}

/** A process's metrics: the registry, the hooks that count, and the sources read at each scrape. */
export class LedgerMetrics {
  readonly registry: Registry;
  readonly #scrape: (() => Promise<string>) | undefined;
  readonly #reportsRelay: boolean;
  readonly #requests: Counter<"app" | "method" | "route" | "status">;
  readonly #durations: Histogram<"app" | "method" | "route" | "status">;
  readonly #operations: Counter<"app" | "operation" | "outcome">;
  readonly #batchSizes: Histogram<"app">;
  // Sources, each counted once however many apps of the process hand it over (they share the pool,
  // the relay and the rate limits).
  readonly #pools = new Set<LedgerDb>();
  readonly #limits = new Set<Pick<RateLimits, "stats">>();
  readonly #sweepers = new Map<string, () => SweepProgress>();
  #relay: (() => RelayState) | undefined;

  constructor(opts: LedgerMetricsOptions = {}) {
    const registers = [(this.registry = opts.registry ?? new Registry())];
    this.#scrape = opts.scrape;
    this.#reportsRelay = opts.reportsRelay ?? true;
    this.#requests = new Counter({
      name: "ledger_http_requests_total",
      help: "HTTP requests answered, by app, method, route template and status",
      labelNames: ["app", "method", "route", "status"],
      registers,
    });
    this.#durations = new Histogram({
      name: "ledger_http_request_duration_seconds",
      help: "Time to answer an HTTP request (to the response's headers), by app, method, route template and status",
      labelNames: ["app", "method", "route", "status"],
      buckets: [...REQUEST_DURATION_BUCKETS_S],
      registers,
    });
    this.#operations = new Counter({
      name: "ledger_operations_total",
      help: "Commands the ledger answered, by app, operation (the command's kind) and outcome: applied, replayed, refused:<CODE> or error",
      labelNames: ["app", "operation", "outcome"],
      registers,
    });
    this.#batchSizes = new Histogram({
      name: "ledger_group_commit_batch_size",
      help: "Commands per group-commit batch (one transaction), by app",
      labelNames: ["app"],
      buckets: [...BATCH_SIZE_BUCKETS],
      registers,
    });
    this.#registerPool(registers);
    this.#registerRateLimits(registers);
    this.#registerSweepers(registers);
  }

  /** Prometheus's content type for the scrape's answer. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** The text a scrape of /metrics answers. */
  scrape(): Promise<string> {
    return this.#scrape ? this.#scrape() : this.registry.metrics();
  }

  /** Counts one answered request. */
  request(app: string, method: string, path: string, status: number, seconds: number): void {
    const labels = { app, method: methodLabelOf(method), route: routeLabelOf(method, path), status };
    this.#requests.inc(labels);
    this.#durations.observe(labels, seconds);
  }

  /** What one app's service tells: its commands' outcomes and its batches' sizes. */
  serviceObserver(app: string): ServiceObserver {
    return {
      operation: (operation: string, outcome: OperationOutcome) =>
        this.#operations.inc({ app, operation, outcome }),
      batch: (size: number) => this.#batchSizes.observe({ app }, size),
    };
  }

  /** The pool under `db`, read at each scrape (see PoolUsage in store/sql-client.ts). */
  watchPool(db: LedgerDb): void {
    this.#pools.add(db);
  }

  /** The rate limits' totals (their stats()), read at each scrape. */
  watchRateLimits(limits: Pick<RateLimits, "stats">): void {
    this.#limits.add(limits);
  }

  /** One app's sweeper (LedgerService.sweepProgress), read at each scrape. */
  watchSweeper(app: string, progress: () => SweepProgress): void {
    this.#sweepers.set(app, progress);
  }

  /** The relay's state, read at each scrape; its gauges appear once this is called (unless reportsRelay is off). */
  watchRelay(state: () => RelayState): void {
    if (!this.#reportsRelay) return;
    const first = this.#relay === undefined;
    this.#relay = state;
    if (first) registerRelayMetrics(this.registry, () => (this.#relay ?? state)());
  }

  #registerPool(registers: Registry[]): void {
    const pools = () => [...this.#pools].map(poolUsageOf);
    const sum = (pick: (u: ReturnType<typeof poolUsageOf>) => number) =>
      pools().reduce((total, u) => total + pick(u), 0);
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read());
        },
      });
    gauge("ledger_db_pool_max_connections", "Connections the database pool may open (PGlite: 1)", () =>
      sum((u) => u.max),
    );
    gauge(
      "ledger_db_pool_in_use_connections",
      "Database connections busy with a transaction or a statement of the ledger (PGlite: 0 or 1)",
      () => sum((u) => u.inUse),
    );
    gauge(
      "ledger_db_pool_waiting_queries",
      "Transactions and statements of the ledger waiting for a database connection",
      () => sum((u) => u.waiting),
    );
  }

  #registerRateLimits(registers: Registry[]): void {
    const totals = () => {
      const all = { key: 0, auth: 0, failOpen: 0 };
      for (const limits of this.#limits) {
        const s = limits.stats();
        all.key += s.refused.key;
        all.auth += s.refused.auth;
        all.failOpen += s.failOpen;
      }
      return all;
    };
    new Counter({
      name: "ledger_rate_limit_refusals_total",
      help: "Requests refused with 429, by the limit that refused them: key (LEDGER_RATE_LIMIT_PER_S) or auth (failed authentications)",
      labelNames: ["limit"],
      registers,
      collect() {
        const t = totals();
        this.reset();
        this.inc({ limit: "key" }, t.key);
        this.inc({ limit: "auth" }, t.auth);
      },
    });
    new Counter({
      name: "ledger_rate_limit_fail_open_total",
      help: "Rate-limit checks that could not reach their store (Redis) and let the request through",
      registers,
      collect() {
        this.reset();
        this.inc(totals().failOpen);
      },
    });
  }

  #registerSweepers(registers: Registry[]): void {
    const each = (fn: (app: string, p: SweepProgress) => void) => {
      for (const [app, progress] of this.#sweepers) fn(app, progress());
    };
    new Counter({
      name: "ledger_expiry_sweeps_total",
      help: "Expiry sweeps, by app and outcome: completed, or failed (retried at the next interval)",
      labelNames: ["app", "outcome"],
      registers,
      collect() {
        this.reset();
        each((app, p) => {
          this.inc({ app, outcome: "completed" }, p.completed);
          this.inc({ app, outcome: "failed" }, p.failed);
        });
      },
    });
    new Counter({
      name: "ledger_expiry_swept_owners_total",
      help: "Owners with due grants or holds found by the expiry sweeps that completed, by app",
      labelNames: ["app"],
      registers,
      collect() {
        this.reset();
        each((app, p) => this.inc({ app }, p.owners));
      },
    });
    new Counter({
      name: "ledger_expiry_entries_total",
      help: "Expiry entries (EXPIRY, HOLD_EXPIRY) written by the expiry sweeps that completed, by app",
      labelNames: ["app"],
      registers,
      collect() {
        this.reset();
        each((app, p) => this.inc({ app }, p.grants));
      },
    });
    new Gauge({
      name: "ledger_expiry_sweep_last_completed_timestamp_seconds",
      help: "When the last expiry sweep that completed started (Unix time), by app; absent before the first",
      labelNames: ["app"],
      // Across workers: the latest of theirs.
      aggregator: "max",
      registers,
      collect() {
        this.reset();
        each((app, p) => {
          if (p.lastCompletedAt) this.set({ app }, p.lastCompletedAt.getTime() / 1000);
        });
      },
    });
  }
}

export const RELAY_ROLES = ["active", "standby", "off"] as const;

/**
 * The relay's gauges, read from `state` at each scrape. Every
 * process that reports them reads the same database's outbox, so across workers they combine by max.
 * The primary of a cluster registers them in a registry of its own (runtime/metrics.ts).
 */
export function registerRelayMetrics(registry: Registry, state: () => RelayState): void {
  const registers = [registry];
  const gauge = (name: string, help: string, read: (s: RelayState) => number) =>
    new Gauge({
      name,
      help,
      aggregator: "max",
      registers,
      collect() {
        this.set(read(state()));
      },
    });
  gauge(
    "ledger_relay_pending_events",
    "Events committed and not yet acknowledged by the broker (0 without a broker)",
    (s) => s.pending,
  );
  gauge(
    "ledger_relay_oldest_pending_age_seconds",
    "How long the oldest pending event has waited for the broker (the relay's lag; 0 when none waits)",
    (s) => (s.oldest_pending_age_ms ?? 0) / 1000,
  );
  gauge(
    "ledger_relay_broker_connected",
    "1 while the active relay has a working connection to the broker, else 0",
    (s) => (s.broker_connected ? 1 : 0),
  );
  new Gauge({
    name: "ledger_relay_role",
    help: "1 for the relay's role in this server: active (relays here, or in the primary), standby, or off (LEDGER_RELAY=off)",
    labelNames: ["role"],
    aggregator: "max",
    registers,
    collect() {
      const { role } = state();
      for (const r of RELAY_ROLES) this.set({ role: r }, r === role ? 1 : 0);
    },
  });
}

/** Counts every request the app answers, whatever answered it (a route, a guard, auth, onError). */
export function requestMetrics(metrics: LedgerMetrics, app: string): MiddlewareHandler<LedgerEnv> {
  return async (c, next) => {
    const started = performance.now();
    await next();
    metrics.request(app, c.req.method, c.req.path, c.res.status, (performance.now() - started) / 1000);
  };
}
