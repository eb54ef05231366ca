// Boot plumbing shared by the app entry points: the JSON logger, the env schema every app extends,
// and a server runner that shuts down cleanly (stop accepting, finish in-flight requests, close the db).
import cluster from "node:cluster";
import { availableParallelism } from "node:os";
import { serve, type ServerType } from "@hono/node-server";
import pino, { type Logger } from "pino";
import { z } from "zod";
import { DEFAULT_DATA_DIR, openDatabase, type LedgerDatabase, type LedgerDb } from "../store/client.js";
import { isUnavailable } from "../store/errors.js";
import { DatabaseUnavailableError } from "../domain/errors.js";
import { AMQP_EXCHANGE_DEFAULT } from "../features/events/brokers/amqp.js";
import { brokerKindOf, type PublisherOptions } from "../features/events/brokers/index.js";
import { NATS_STREAM_DEFAULT, NATS_SUBJECT_PREFIX_DEFAULT } from "../features/events/brokers/nats.js";
import { observeRelay, startRelay, type Relay, type RelayState } from "../features/events/relay.js";
import { broadcastRelayState, relayOfPrimary } from "./primary-relay.js";
import { Redis } from "ioredis";
import type { AuthMode } from "../http/auth.js";
import { createRateLimits, type RateLimits } from "../http/rate-limit.js";
import { LedgerMetrics, registerRelayMetrics } from "../http/metrics.js";
import { Registry } from "prom-client";
import { answerClusterScrapes, workerMetrics } from "./metrics.js";

export function createLogger(opts: { level: string; name: string }): Logger {
  return pino({ level: opts.level, name: opts.name, base: { pid: process.pid } });
}

const EVENTS_URL_MESSAGE =
  "LEDGER_EVENTS_URL must be nats://host:port (NATS JetStream) or amqp(s)://user:password@host:port (RabbitMQ)";

function isBrokerUrl(v: string): boolean {
  try {
    brokerKindOf(v);
    return true;
  } catch {
    return false;
  }
}

/** LEDGER_EVENTS_URL: a broker URL whose scheme the relay knows, or unset (no broker). */
const eventsUrlSchema = z
  .string()
  .trim()
  .optional()
  .transform((v) => (v ? v : undefined))
  .refine((v) => v === undefined || isBrokerUrl(v), EVENTS_URL_MESSAGE);

/** LEDGER_EVENTS_RETENTION_DAYS: delivered events are kept this long, then pruned (entries stay forever). */
const retentionDaysSchema = z.coerce.number().int().min(1).max(36_500).default(30);

/**
 * Where on the broker, for several ledgers sharing one (and for runs that must not touch the default):
 * the JetStream stream and subject prefix, the RabbitMQ exchange. Two streams may not share subjects, so
 * a second ledger on one NATS needs both a stream and a prefix of its own.
 */
const brokerPlaceSchema = {
  LEDGER_EVENTS_STREAM: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/, "LEDGER_EVENTS_STREAM: 1-64 letters, digits, _ or -")
    .default(NATS_STREAM_DEFAULT),
  LEDGER_EVENTS_SUBJECT_PREFIX: z
    .string()
    .regex(
      /^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,3}$/,
      "LEDGER_EVENTS_SUBJECT_PREFIX: dot-separated tokens of letters, digits, _ or -",
    )
    .default(NATS_SUBJECT_PREFIX_DEFAULT),
  LEDGER_EVENTS_EXCHANGE: z
    .string()
    .regex(/^[A-Za-z0-9_.:-]{1,200}$/, "LEDGER_EVENTS_EXCHANGE: 1-200 letters, digits, _ . : or -")
    .default(AMQP_EXCHANGE_DEFAULT),
};

type BrokerPlace = { [K in keyof typeof brokerPlaceSchema]: string };

/** The relay's publisher options from the env. */
function publisherOptions(env: BrokerPlace): PublisherOptions {
  return {
    nats: { stream: env.LEDGER_EVENTS_STREAM, subjectPrefix: env.LEDGER_EVENTS_SUBJECT_PREFIX },
    amqp: { exchange: env.LEDGER_EVENTS_EXCHANGE },
  };
}

/** Starts this process's relay from the env (boot's and apps/relay's). */
function startRelayFrom(
  env: Pick<AppEnv, "DATABASE_URL" | "LEDGER_EVENTS_URL" | "LEDGER_EVENTS_RETENTION_DAYS"> & BrokerPlace,
  db: LedgerDb,
  logger: Logger,
): Relay {
  return startRelay({
    db,
    databaseUrl: env.DATABASE_URL,
    eventsUrl: env.LEDGER_EVENTS_URL,
    retentionDays: env.LEDGER_EVENTS_RETENTION_DAYS,
    publisher: publisherOptions(env),
    logger,
  });
}

/** The configuration every app reads at boot; an app's own env.ts extends it with its default port. */
export function appEnvSchema(defaultPort: number) {
  return z.object({
    PORT: z.coerce.number().int().min(1).max(65_535).default(defaultPort),
    HOST: z.string().min(1).default("0.0.0.0"),
    DATABASE_URL: z
      .string()
      .trim()
      .optional()
      .transform((v) => (v ? v : undefined))
      .refine(
        (v) => v === undefined || /^postgres(ql)?:\/\//.test(v),
        "DATABASE_URL must be a postgres:// URL",
      ),
    LEDGER_DATA_DIR: z.string().min(1).optional(),
    DB_POOL_SIZE: z.coerce.number().int().min(1).max(200).default(10),
    /** How long a starting app keeps retrying a database that does not answer before it gives up. */
    DB_STARTUP_TIMEOUT_S: z.coerce.number().int().min(0).max(3600).default(60),
    LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    /** Most posts written in one transaction (group commit); 1 turns batching off. */
    LEDGER_BATCH_SIZE_MAX: z.coerce.number().int().min(1).max(10_000).default(500),
    /** How often each app sweeps its grants that are due (a write for the owner expires them sooner). */
    LEDGER_EXPIRY_SWEEP_S: z.coerce.number().int().min(1).max(86_400).default(60),
    /**
     * Server processes sharing the port (node:cluster): a number, or "auto" for one per core. Above 1
     * it needs DATABASE_URL: embedded PGlite has a single writer.
     */
    LEDGER_WORKERS: z
      .union([z.literal("auto"), z.coerce.number().int().min(1).max(WORKERS_MAX)])
      .default(1)
      .transform((v) => (v === "auto" ? Math.min(availableParallelism(), WORKERS_MAX) : v)),
    /** The broker the relay publishes the outbox to; unset: events are only read over HTTP and SSE. */
    LEDGER_EVENTS_URL: eventsUrlSchema,
    LEDGER_EVENTS_RETENTION_DAYS: retentionDaysSchema,
    ...brokerPlaceSchema,
    /**
     * on: the relay runs in this process, or in the primary with LEDGER_WORKERS > 1 (every server
     * contends; one per database is active). off: not here, for when apps/relay runs it alone; /health
     * still shows the lag.
     */
    LEDGER_RELAY: z.enum(["on", "off"]).default("on"),
    /** Read only for LEDGER_AUTH's default: "production" makes it required. */
    NODE_ENV: z.string().optional(),
    /** required: every ledger route needs an API key. off: nothing is checked. Default: by NODE_ENV. */
    LEDGER_AUTH: z.enum(["required", "off"]).optional(),
    /** Requests per second of a key created without --rate. */
    LEDGER_RATE_LIMIT_PER_S: z.coerce.number().int().min(1).max(100_000).default(100),
    /** Failed authentications allowed per client address per minute, then 429 until the minute is over. */
    LEDGER_AUTH_FAILURES_PER_MIN: z.coerce.number().int().min(1).max(100_000).default(30),
    /** Redis for rate limits shared by every process; unset: each process counts its own. */
    LEDGER_REDIS_URL: z
      .string()
      .trim()
      .optional()
      .transform((v) => (v ? v : undefined))
      .refine((v) => v === undefined || /^rediss?:\/\//.test(v), "LEDGER_REDIS_URL must be a redis:// URL"),
  });
}

/** LEDGER_AUTH, or its default: required in production, off otherwise (the quick start needs no key). */
export function authModeOf(env: Pick<AppEnv, "LEDGER_AUTH" | "NODE_ENV">): AuthMode {
  return env.LEDGER_AUTH ?? (env.NODE_ENV === "production" ? "required" : "off");
}

/** apps/relay's configuration: the relay alone needs a Postgres and a broker; the rest is the apps'. */
export function relayEnvSchema() {
  return appEnvSchema(0)
    .pick({
      LEDGER_EVENTS_RETENTION_DAYS: true,
      LEDGER_EVENTS_STREAM: true,
      LEDGER_EVENTS_SUBJECT_PREFIX: true,
      LEDGER_EVENTS_EXCHANGE: true,
      DB_STARTUP_TIMEOUT_S: true,
      LOG_LEVEL: true,
    })
    .extend({
      DATABASE_URL: z
        .string({ error: "DATABASE_URL is required: the relay alone runs against Postgres" })
        .trim()
        .regex(/^postgres(ql)?:\/\//, "DATABASE_URL must be a postgres:// URL"),
      LEDGER_EVENTS_URL: z
        .string({ error: "LEDGER_EVENTS_URL is required: the broker to publish to (nats:// or amqp://)" })
        .trim()
        .min(1, "LEDGER_EVENTS_URL is required: the broker to publish to (nats:// or amqp://)")
        .refine(isBrokerUrl, EVENTS_URL_MESSAGE),
    });
}

export type RelayEnv = z.infer<ReturnType<typeof relayEnvSchema>>;

const WORKERS_MAX = 64;
/** A worker that dies is replaced, but not more often than this, so a crash loop cannot spin. */
const WORKER_RESTART_DELAY_MS = 1_000;

export type AppEnv = z.infer<ReturnType<typeof appEnvSchema>>;

/** Parses the environment or exits with a readable message: a misconfigured app must not start. */
export function parseEnv<S extends z.ZodType>(
  schema: S,
  source: Record<string, string | undefined>,
): z.infer<S> {
  const result = schema.safeParse(source);
  if (result.success) return result.data;
  const lines = result.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`).join("\n");
  process.stderr.write(`Invalid configuration:\n${lines}\n`);
  process.exit(2);
}

export interface Listener {
  name: string;
  port: number;
  hostname?: string;
  fetch: (request: Request) => Response | Promise<Response>;
}

/**
 * Serves each listener on its port; on SIGINT/SIGTERM stops them all, runs onStopping while their
 * in-flight requests finish, then runs onClose once.
 */
export async function serveAll(
  listeners: Listener[],
  logger: Logger,
  onClose: () => Promise<void>,
  onStopping: () => Promise<void> = () => Promise.resolve(),
): Promise<ServerType[]> {
  const servers = await Promise.all(
    listeners.map(
      (l) =>
        new Promise<ServerType>((resolve, reject) => {
          const server = serve({ fetch: l.fetch, port: l.port, hostname: l.hostname }, (info) => {
            logger.info(
              { app: l.name, port: info.port },
              `${l.name} listening on http://localhost:${info.port}`,
            );
            resolve(server);
          });
          server.once("error", (error: Error) => {
            server.close();
            reject(error);
          });
        }),
    ),
  );
  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    logger.info({ signal }, "shutting down");
    const closed = servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    // Not after the servers have closed: an event stream is a request that never finishes on its own,
    // and the events feature's stop is what ends it.
    void Promise.all([...closed, onStopping()])
      .then(onClose)
      .then(
        () => process.exit(0),
        (error: unknown) => {
          logger.error({ err: error }, "shutdown failed");
          process.exit(1);
        },
      );
  };
  process.once("SIGINT", () => shutdown("SIGINT"));
  process.once("SIGTERM", () => shutdown("SIGTERM"));
  return servers;
}

/**
 * A process started while its Postgres is down (after a crash, say) waits for it, retrying with backoff
 * up to DB_STARTUP_TIMEOUT_S, rather than exiting and leaving the restart to a supervisor.
 */
async function openWithRetry(
  env: Pick<AppEnv, "DATABASE_URL" | "LEDGER_DATA_DIR" | "DB_POOL_SIZE" | "DB_STARTUP_TIMEOUT_S">,
  logger: Logger,
): Promise<LedgerDatabase> {
  const giveUpAt = Date.now() + env.DB_STARTUP_TIMEOUT_S * 1000;
  for (let attempt = 1, delayMs = 250; ; attempt++, delayMs = Math.min(delayMs * 2, 5_000)) {
    try {
      return await openDatabase({
        url: env.DATABASE_URL,
        dataDir: env.LEDGER_DATA_DIR ?? DEFAULT_DATA_DIR,
        poolSizeMax: env.DB_POOL_SIZE,
      });
    } catch (error) {
      if (!isUnavailable(error) && !(error instanceof DatabaseUnavailableError)) throw error;
      if (Date.now() + delayMs > giveUpAt) throw error;
      logger.warn({ attempt, retry_in_ms: delayMs, err: error }, "database not answering yet; retrying");
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

export interface BootDeps {
  db: LedgerDb;
  ping: () => Promise<void>;
  logger: Logger;
  /** LEDGER_BATCH_SIZE_MAX: most posts in one transaction; 1 turns group commit off. */
  batchSizeMax: number;
  /** LEDGER_EXPIRY_SWEEP_S: each app's expiry sweep interval. */
  expirySweepS: number;
  /** Registers what must stop before the database closes (the sweepers). */
  onStop: (stop: () => Promise<void>) => void;
  /** The relay's state for /health (running here, or off with the lag only). */
  relayState: () => RelayState;
  /** The process's metrics, shared by its apps (with workers: summed over them at each scrape). */
  metrics: LedgerMetrics;
  /** API keys and rate limits (LEDGER_AUTH=required); unset: off. */
  auth?: { limits: RateLimits; defaultRatePerS: number } | undefined;
}

export interface BootedApp {
  name: string;
  port: number;
  create: (deps: BootDeps) => { fetch: Listener["fetch"] };
}

/**
 * Opens the database (migrating it), builds each app over it and serves them, all from a parsed env.
 * A failure at boot is logged and exits the process with status 1, after closing what was opened.
 */
export async function boot(
  env: Pick<
    AppEnv,
    | "DATABASE_URL"
    | "LEDGER_DATA_DIR"
    | "DB_POOL_SIZE"
    | "DB_STARTUP_TIMEOUT_S"
    | "LOG_LEVEL"
    | "HOST"
    | "LEDGER_BATCH_SIZE_MAX"
    | "LEDGER_EXPIRY_SWEEP_S"
    | "LEDGER_WORKERS"
    | "LEDGER_EVENTS_URL"
    | "LEDGER_EVENTS_RETENTION_DAYS"
    | keyof BrokerPlace
    | "LEDGER_RELAY"
    | "NODE_ENV"
    | "LEDGER_AUTH"
    | "LEDGER_RATE_LIMIT_PER_S"
    | "LEDGER_AUTH_FAILURES_PER_MIN"
    | "LEDGER_REDIS_URL"
  >,
  name: string,
  apps: BootedApp[],
): Promise<void> {
  if (env.LEDGER_WORKERS > 1 && env.DATABASE_URL === undefined) {
    process.stderr.write(
      "Invalid configuration:\n  LEDGER_WORKERS: more than one worker needs DATABASE_URL " +
        "(embedded PGlite has a single writer)\n",
    );
    process.exit(2);
  }
  const logger = createLogger({ level: env.LOG_LEVEL, name });
  const workers = env.LEDGER_WORKERS > 1;
  if (workers && cluster.isPrimary) {
    superviseWorkers(env, logger);
    return;
  }
  // First, so that a worker answers its primary's scrapes as soon as it can (runtime/metrics.ts).
  const metrics = workers ? workerMetrics({ reportsRelay: env.LEDGER_RELAY === "off" }) : new LedgerMetrics();
  let database: LedgerDatabase | undefined;
  let relay: Relay | undefined;
  let redis: Redis | undefined;
  try {
    let auth: BootDeps["auth"];
    if (authModeOf(env) === "off") {
      logger.warn(
        "LEDGER_AUTH=off: every ledger route is open to anyone who can reach this port; set LEDGER_AUTH=required (the default with NODE_ENV=production) and create keys with `pnpm ledger keys create`",
      );
    } else {
      // The limits exist only for keys: with auth off nothing counts, and Redis is not even connected.
      redis = env.LEDGER_REDIS_URL === undefined ? undefined : connectRedis(env.LEDGER_REDIS_URL, logger);
      const limits = createRateLimits({
        redis,
        authFailuresPerMin: env.LEDGER_AUTH_FAILURES_PER_MIN,
        logger,
      });
      auth = { limits, defaultRatePerS: env.LEDGER_RATE_LIMIT_PER_S };
    }
    database = await openWithRetry(env, logger);
    logger.info({ driver: database.driver }, "database ready, migrations applied");
    const opened = database;
    // One relay per process, whatever the number of apps in it; it stops after the apps' own background
    // work and before the database closes.
    // With several workers the primary runs the relay (primary-relay.ts) and tells the workers its state.
    const observing = { db: opened.db, eventsUrl: env.LEDGER_EVENTS_URL, logger };
    const started =
      env.LEDGER_RELAY === "off"
        ? observeRelay(observing)
        : workers
          ? relayOfPrimary(observing)
          : startRelayFrom(env, opened.db, logger);
    relay = started;
    const stops: (() => Promise<void>)[] = [];
    const deps: BootDeps = {
      db: opened.db,
      ping: () => opened.ping(),
      logger,
      batchSizeMax: env.LEDGER_BATCH_SIZE_MAX,
      expirySweepS: env.LEDGER_EXPIRY_SWEEP_S,
      onStop: (stop) => stops.push(stop),
      relayState: () => started.state(),
      metrics,
      auth,
    };
    await serveAll(
      apps.map((a) => ({ name: a.name, port: a.port, hostname: env.HOST, fetch: a.create(deps).fetch })),
      logger,
      async () => {
        await started.stop();
        await opened.close();
        await redis?.quit().catch(() => {});
      },
      async () => {
        await Promise.all(stops.map((stop) => stop()));
      },
    );
  } catch (error) {
    logger.fatal({ err: error }, "could not start");
    await relay?.stop().catch(() => {});
    await database?.close().catch(() => {});
    redis?.disconnect();
    process.exit(1);
  }
}

/**
 * The rate limits' Redis: commands fail at once while it is away (no offline queue, one try), so a
 * request never waits on it; the limiter then fails open. It reconnects by itself, every second at most.
 */
function connectRedis(url: string, logger: Logger): Redis {
  const client = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    retryStrategy: (times) => Math.min(times * 200, 1_000),
  });
  let down = false;
  client.on("error", (error: Error) => {
    if (down) return;
    down = true;
    logger.warn({ err: error }, "rate limits: Redis is not answering; limits fail open until it is back");
  });
  client.on("ready", () => {
    if (down) logger.info("rate limits: Redis answers again");
    down = false;
  });
  return client;
}

/**
 * apps/relay: the relay alone, against Postgres and a broker, until SIGINT/SIGTERM. It opens the database
 * like an app (waiting for it, migrating it), so it may start first. Exits 1 if it cannot start.
 */
export async function bootRelay(env: RelayEnv, name = "relay"): Promise<void> {
  const logger = createLogger({ level: env.LOG_LEVEL, name });
  try {
    const relay = await openRelay(env, logger);
    logger.info({ broker: relay.state().broker }, "relay started; contending for the lock");
    let closing = false;
    const shutdown = (signal: NodeJS.Signals) => {
      if (closing) return;
      closing = true;
      logger.info({ signal }, "shutting down");
      void relay.stop().then(
        () => process.exit(0),
        (error: unknown) => {
          logger.error({ err: error }, "shutdown failed");
          process.exit(1);
        },
      );
    };
    process.once("SIGINT", () => shutdown("SIGINT"));
    process.once("SIGTERM", () => shutdown("SIGTERM"));
  } catch (error) {
    // openRelay closed what it opened.
    logger.fatal({ err: error }, "could not start");
    process.exit(1);
  }
}

/**
 * A relay on a pool of two of its own (apps/relay's, and the primary's of a multi-worker server): opened
 * like an app's database (waiting for it, migrating it); stop() stops the relay, then closes the pool.
 */
async function openRelay(
  env: Parameters<typeof startRelayFrom>[0] & Pick<AppEnv, "DB_STARTUP_TIMEOUT_S">,
  logger: Logger,
): Promise<Relay> {
  const database = await openWithRetry(
    {
      DATABASE_URL: env.DATABASE_URL,
      LEDGER_DATA_DIR: undefined,
      DB_POOL_SIZE: 2,
      DB_STARTUP_TIMEOUT_S: env.DB_STARTUP_TIMEOUT_S,
    },
    logger,
  );
  try {
    const relay = startRelayFrom(env, database.db, logger);
    return {
      state: () => relay.state(),
      async stop() {
        await relay.stop();
        await database.close();
      },
    };
  } catch (error) {
    await database.close().catch(() => {});
    throw error;
  }
}

/**
 * The primary of a multi-process server: forks the workers (each boots the apps, with its own pool,
 * and they share the listening ports), replaces a worker that dies, runs the relay (LEDGER_RELAY=on) on a
 * small pool of its own, and on SIGINT/SIGTERM passes the signal on and exits once every worker has
 * finished its in-flight requests and the relay has stopped.
 */
function superviseWorkers(
  env: Pick<
    AppEnv,
    | "LEDGER_WORKERS"
    | "DATABASE_URL"
    | "DB_STARTUP_TIMEOUT_S"
    | "LEDGER_EVENTS_URL"
    | "LEDGER_EVENTS_RETENTION_DAYS"
    | "LEDGER_RELAY"
  > &
    BrokerPlace,
  logger: Logger,
): void {
  let stopping = false;
  let relay: Promise<{ stop(): Promise<void> } | undefined> = Promise.resolve(undefined);
  // The primary's own metrics are its relay's; a worker's scrape gets them after the workers' sum.
  const metrics = new Registry();
  answerClusterScrapes(metrics, logger);
  logger.info({ workers: env.LEDGER_WORKERS }, "starting worker processes");
  for (let i = 0; i < env.LEDGER_WORKERS; i++) cluster.fork();
  const exit = () => {
    void relay
      .then((r) => r?.stop())
      .then(
        () => process.exit(0),
        (error: unknown) => {
          logger.error({ err: error }, "the relay did not stop cleanly");
          process.exit(1);
        },
      );
  };
  cluster.on("exit", (worker, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) exit();
      return;
    }
    logger.error({ worker_pid: worker.process.pid, code, signal }, "worker exited; starting another");
    setTimeout(() => {
      if (!stopping) cluster.fork();
    }, WORKER_RESTART_DELAY_MS);
  });
  if (env.LEDGER_RELAY === "on") {
    relay = startPrimaryRelay(env, logger, metrics).catch((error: unknown) => {
      // The workers open the same database and fail the same way; the server cannot work without it.
      logger.fatal({ err: error }, "could not start the relay");
      process.exit(1);
    });
  }
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down workers");
    const workers = Object.values(cluster.workers ?? {});
    if (workers.length === 0) exit();
    for (const worker of workers) worker?.process.kill(signal);
  };
  process.once("SIGINT", () => stop("SIGINT"));
  process.once("SIGTERM", () => stop("SIGTERM"));
}

/**
 * The primary's relay: a pool of two, the relay, its state sent to the workers every second and
 * reported in `metrics`.
 */
async function startPrimaryRelay(
  env: Parameters<typeof startRelayFrom>[0] & Pick<AppEnv, "DB_STARTUP_TIMEOUT_S">,
  logger: Logger,
  metrics: Registry,
): Promise<{ stop(): Promise<void> }> {
  const relay = await openRelay(env, logger);
  registerRelayMetrics(metrics, () => relay.state());
  const stopBroadcast = broadcastRelayState(relay, () =>
    Object.values(cluster.workers ?? {}).filter((w) => w !== undefined),
  );
  return {
    async stop() {
      stopBroadcast();
      await relay.stop();
    },
  };
}
