// `pnpm chaos`: load against app1 and app2 on real Postgres while app processes are killed with
// SIGKILL and restarted, and Postgres itself is stopped in immediate mode and started again. The client
// records every request as acknowledged, refused or unknown, and sends every unknown one again (same
// app, same nonce, same body) until its answer is definite. Part of the load are credits that expire
// within seconds, and every app process sweeps due grants every second, so EXPIRY entries are written
// both by writes and by the sweepers, under kills and Postgres restarts too. At the end, with
// everything up and every such credit past its expiry, the ledger must agree with the client: see
// checkLedger in model.ts, plus `ledger verify`.
//
// The events go out all along: the apps' in-process relays and a relay process of their own publish the
// outbox to a NATS JetStream stream of the run's own while a consumer handles it. The relay process is
// SIGKILLed on odd cycles, nats-server is stopped and started on cycles 2, 6, 10..., and the consumer
// is stopped and started again on cycles 4, 8, ...; at the end the stream and the consumer are held to the
// log (chaos-events.ts).
//
//   pnpm chaos                     the full run: 20 kill cycles, 3 Postgres restarts
//   pnpm chaos --quick             the short run CI does: 6 kill cycles, 1 Postgres restart
//   pnpm chaos --help              every option
//
// Needs root (pg_ctlcluster) and the machine's own Postgres on 127.0.0.1. Postgres is shared with
// other work, so it is always started again: in a finally, on SIGINT/SIGTERM/SIGHUP, and from an exit
// handler. Exit status: 0 no violation; 1 violations (or, with --strict, availability findings);
// 2 the run could not be carried out (interrupted, an app never healthy, fewer cycles than asked).
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import { adminUrlFrom, DEFAULT_ADMIN_URL, localPostgresUrl, parseCli } from "./cli-args.js";
import {
  batchResultSchema,
  captureResultSchema,
  holdResultSchema,
  postResultSchema,
  readLedger,
  reversalResultSchema,
  sendUntilDefinite,
  statusResultSchema,
  transferResultSchema,
  type Endpoint,
  type Entry,
  type LedgerRead,
  type Resolution,
  type RetryOptions,
} from "./client.js";
import {
  batchItems,
  checkLedger,
  countByKind,
  EXPIRY,
  HOLD_EXPIRY,
  kindOf,
  lateExpiry,
  signedAmount,
  type OpKind,
  type OpOutcome,
  type OpRecord,
  type PostRecord,
  type Violation,
} from "./model.js";
import type { AppName } from "./paths.js";
import {
  countEntries,
  countOverdueGrants,
  countOverdueHolds,
  createDatabase,
  dropDatabase,
  LocalCluster,
} from "./postgres.js";
import { startEventsRig, type EventsRig, type EventsSummary } from "./chaos-events.js";
import { AppProcess, createKey, freePort, runLedgerCli } from "./processes.js";
import { EXPECTED_REFUSALS, pathOf, seededRandom, Workload, type Request } from "./workload.js";

const optionsSchema = z
  .object({
    cycles: z.coerce.number().int().min(1).max(1_000),
    pgRestarts: z.coerce.number().int().min(0).max(100),
    durationS: z.coerce.number().int().min(10).max(3_600),
    concurrency: z.coerce.number().int().min(1).max(64),
    owners: z.coerce.number().int().min(1).max(1_000),
    intervalMs: z.coerce.number().int().min(100).max(60_000),
    pgDownMs: z.coerce.number().int().min(0).max(60_000),
    requestTimeoutMs: z.coerce.number().int().min(100).max(60_000),
    resolveTimeoutS: z.coerce.number().int().min(5).max(3_600),
    hotShare: z.coerce.number().min(0).max(1),
    seed: z.coerce
      .number()
      .int()
      .min(0)
      .max(2 ** 32 - 1),
    adminUrl: localPostgresUrl,
    natsUrl: z.string().regex(/^nats:\/\//, "a nats:// URL"),
    cluster: z
      .string()
      .regex(/^\d+(\.\d+)?\/[\w-]+$/, "like 15/main")
      .optional(),
    keepDatabase: z.boolean(),
    strict: z.boolean(),
    jsonOut: z.string().min(1).optional(),
    quick: z.boolean(),
  })
  .refine(
    (o) => o.pgRestarts <= o.cycles,
    "--pg-restarts cannot exceed --cycles (each rides on a kill cycle)",
  );

export type ChaosOptions = z.infer<typeof optionsSchema>;

const FULL = {
  cycles: 20,
  pgRestarts: 3,
  durationS: 600,
  concurrency: 8,
  owners: 40,
  intervalMs: 2_500,
} as const;
const QUICK = {
  cycles: 6,
  pgRestarts: 1,
  durationS: 100,
  concurrency: 6,
  owners: 20,
  intervalMs: 1_500,
} as const;

export const USAGE = `usage: pnpm chaos [options]

  --quick                  the short run (CI): ${QUICK.cycles} cycles, ${QUICK.pgRestarts} Postgres restart, ${QUICK.concurrency} clients, ${QUICK.owners} owners
  --cycles N               SIGKILL + restart cycles (default ${FULL.cycles})
  --pg-restarts M          of those cycles, how many also stop Postgres (-m immediate) (default ${FULL.pgRestarts})
  --interval-ms MS         pause before each cycle (default ${FULL.intervalMs}; quick ${QUICK.intervalMs})
  --pg-down-ms MS          how long Postgres stays down (default 2000)
  --duration-s S           upper bound on the chaos phase; stops early if reached (default ${FULL.durationS})
  --concurrency C          concurrent client loops (default ${FULL.concurrency})
  --owners K               owners in the mix (default ${FULL.owners}); owner 0 is hot
  --hot-share F            share of requests to the hot owner (default 0.25)
  --request-timeout-ms MS  client timeout of one attempt (default 3000)
  --resolve-timeout-s S    give up resolving one unknown outcome after this long (default 120)
  --seed N                 the workload's random seed (default: random, printed)
  --admin-url URL          Postgres to create the run's database on (default TEST_DATABASE_URL, else
                           ${DEFAULT_ADMIN_URL}); must be 127.0.0.1
  --nats-url URL           the NATS JetStream the events go to, in a stream of the run's own (default
                           TEST_NATS_URL, else nats://127.0.0.1:4222); nats-server is restarted with the
                           machine's own commands
  --cluster V/NAME         the pg_ctlcluster cluster (default: newest in /etc/postgresql, "main")
  --strict                 also fail (exit 1) on availability findings: an app crashing by itself, not
                           recovering once Postgres is back, or answering a 5xx other than 503
  --keep-database          do not drop the run's database at the end
  --json-out FILE          also write the summary as JSON
`;

/** Parses the command line; a string is a usage error to print. Explicit flags win over --quick's. */
export function parseChaosArgs(
  argv: string[],
  env: Record<string, string | undefined>,
): ChaosOptions | { help: true } | string {
  return parseCli(
    argv,
    {
      cycles: { type: "string" },
      "pg-restarts": { type: "string" },
      "interval-ms": { type: "string" },
      "pg-down-ms": { type: "string" },
      "duration-s": { type: "string" },
      concurrency: { type: "string" },
      owners: { type: "string" },
      "hot-share": { type: "string" },
      "request-timeout-ms": { type: "string" },
      "resolve-timeout-s": { type: "string" },
      seed: { type: "string" },
      "admin-url": { type: "string" },
      "nats-url": { type: "string" },
      cluster: { type: "string" },
      "keep-database": { type: "boolean", default: false },
      strict: { type: "boolean", default: false },
      "json-out": { type: "string" },
    },
    optionsSchema,
    (v) => {
      const base = v.quick ? QUICK : FULL;
      return {
        cycles: v.cycles ?? base.cycles,
        pgRestarts: v["pg-restarts"] ?? base.pgRestarts,
        intervalMs: v["interval-ms"] ?? base.intervalMs,
        pgDownMs: v["pg-down-ms"] ?? 2_000,
        durationS: v["duration-s"] ?? base.durationS,
        concurrency: v.concurrency ?? base.concurrency,
        owners: v.owners ?? base.owners,
        hotShare: v["hot-share"] ?? 0.25,
        requestTimeoutMs: v["request-timeout-ms"] ?? 3_000,
        resolveTimeoutS: v["resolve-timeout-s"] ?? 120,
        seed: v.seed ?? randomBytes(4).readUInt32BE(0),
        adminUrl: adminUrlFrom(v, env),
        natsUrl: v["nats-url"] ?? env.TEST_NATS_URL ?? "nats://127.0.0.1:4222",
        cluster: v.cluster,
        keepDatabase: v["keep-database"],
        strict: v.strict,
        jsonOut: v["json-out"],
        quick: v.quick,
      };
    },
  );
}

/**
 * Which cycles also restart Postgres: spread evenly over the run, one per cycle. The values are at
 * least cycles / (restarts + 1) apart, which is >= 1 when restarts < cycles; when restarts = cycles,
 * ceil(j - j / (cycles + 1)) = j. So `restarts` distinct cycles, whenever restarts <= cycles.
 */
export function pgRestartCycles(cycles: number, restarts: number): Set<number> {
  const chosen = new Set<number>();
  for (let j = 1; j <= restarts; j++) chosen.add(Math.ceil((j * cycles) / (restarts + 1)));
  return chosen;
}

interface CycleRecord {
  cycle: number;
  app: AppName;
  pgRestart: boolean;
  /** From the SIGKILL to /health answering 200 again. */
  downMs: number;
  /** Postgres restarts: from the stop to accepting connections again. */
  pgOutageMs?: number;
  /** Postgres restarts: from Postgres ready to the app that was not killed answering 200 again. */
  otherRecoveryMs?: number;
}

export interface ChaosSummary {
  options: ChaosOptions;
  database: string;
  wallS: number;
  cyclesRequested: number;
  cycles: CycleRecord[];
  pgRestarts: number;
  appSpawns: number;
  failedBoots: number;
  appCrashes: number;
  appErrorLogLines: number;
  operations: number;
  attempts: number;
  acknowledged: { total: number; created: number; replayed: number };
  refused: { total: number; byCode: Record<string, number> };
  /** Per kind of write (batches: their items are counted as posts too, in the totals above): acknowledged, refused. */
  byKind: Record<string, { acked: number; refused: number; unresolved: number }>;
  /** HOLD_EXPIRY entries read back (holds the ledger expired, by a write or a sweeper). */
  holdExpiryEntries: number;
  unknown: {
    operations: number;
    attempts: number;
    byReason: Record<string, number>;
    resolvedAppliedBefore: number;
    resolvedAppliedByRetry: number;
    resolvedRefused: number;
    unresolved: number;
  };
  entriesChecked: number;
  databaseEntries: number;
  grants: {
    /** Acknowledged credits with an expiry (grants), by operation: CREDIT_ADD with expires_at, PROMO_CREDIT. */
    granted: Record<string, number>;
    /** EXPIRY entries read back over the API / in the database. */
    expiryEntries: number;
    databaseExpiryEntries: number;
    /** Of those read back: at the instant of the owner's next client entry (expired by that write). */
    expiredByWrite: number;
    /** The others: by a sweeper (or by a write in a batch whose entry came later). */
    expiredOtherwise: number;
    /** Credits with expires_at answered 400 VALIDATION_FAILED once it had passed (never applied). */
    refusedAfterExpiry: number;
  };
  verify: { code: number | null; lastLine: string };
  violations: { total: number; byKind: Record<string, number>; examples: string[] };
  findings: { total: number; byKind: Record<string, number>; examples: string[] };
  events: EventsSummary;
}

const log = (text: string): void => {
  process.stdout.write(`${text}\n`);
};

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

interface Run {
  opts: ChaosOptions;
  apps: Record<AppName, AppProcess>;
  events: EventsRig;
  cluster: LocalCluster;
  signal: AbortSignal;
  /** The ledger disagrees with the client, or `ledger verify` fails: the run fails. */
  violations: Violation[];
  /** Availability bugs (a crash, no recovery, a 500): reported; fail the run only with --strict. */
  findings: Violation[];
  records: OpRecord[];
  startedAt: number;
}

const HEALTHY_TIMEOUT_MS = 90_000;
/** LEDGER_EXPIRY_SWEEP_S of every app the run starts: sweep often, so sweeps race writes and kills. */
const EXPIRY_SWEEP_S = 1;
/** The scopes of the apps' keys: the workload writes (write), reverses and suspends (admin), reads back (read). */
const CHAOS_KEY_SCOPES = ["read", "write", "admin"] as const;
/**
 * Before the ledger is read back, every credit of the run must be this long past its expiry: then
 * every grant the check has to reason about is due (the balance excludes it, swept or not), and the
 * sweepers, every EXPIRY_SWEEP_S, have had time to expire them all (checked, as a finding).
 */
const SETTLE_AFTER_EXPIRY_MS = 3_000;
/** A grant due longer than this at the end, not yet expired, means no sweeper did its work. */
const SWEEP_GRACE_S = 2;
/** Reads of the whole ledger, at most, until one sees no entry written meanwhile. */
const READS_MAX = 5;
/** How long an app that was not killed may take to answer 200 again once Postgres is back. */
const RECOVERY_TIMEOUT_MS = 30_000;

/** Every app answers /health 200; one that has exited (crashed, or failed to boot) is started again. */
async function allHealthy(run: Run): Promise<void> {
  await Promise.all(
    Object.values(run.apps).map((a) =>
      a.waitHealthy({ timeoutMs: HEALTHY_TIMEOUT_MS, respawn: true, signal: run.signal }),
    ),
  );
}

/** Kills and restarts the apps, cycle after cycle; some cycles take Postgres down meanwhile. */
async function killer(run: Run): Promise<CycleRecord[]> {
  const { opts, apps, cluster, signal } = run;
  const pgCycles = pgRestartCycles(opts.cycles, opts.pgRestarts);
  const done: CycleRecord[] = [];
  const order: AppName[] = ["app1", "app2"];
  for (let cycle = 1; cycle <= opts.cycles; cycle++) {
    if (Date.now() - run.startedAt > opts.durationS * 1000) {
      log(`chaos: --duration-s ${opts.durationS} reached after ${cycle - 1} cycles`);
      break;
    }
    await sleep(opts.intervalMs, undefined, { signal });
    await eventFaults(run, cycle);
    const name = order[(cycle - 1) % 2] ?? "app1";
    const target = apps[name];
    const other = apps[name === "app1" ? "app2" : "app1"];
    const pid = target.pid;
    if (!pgCycles.has(cycle)) {
      const killedAt = Date.now();
      await target.kill("SIGKILL");
      target.start();
      await target.waitHealthy({ timeoutMs: HEALTHY_TIMEOUT_MS, respawn: true, signal });
      const downMs = Date.now() - killedAt;
      await allHealthy(run);
      done.push({ cycle, app: name, pgRestart: false, downMs });
      log(
        `cycle ${cycle}/${opts.cycles}: SIGKILL ${name} (pid ${pid}), healthy again after ${seconds(downMs)}; ` +
          `${run.records.length} operations settled`,
      );
      continue;
    }
    // Postgres goes down under load. The target is killed and started while it is down: it either waits
    // for the database at boot, or exits and is started again until it is healthy. The other app is
    // left alone: it must come back by itself once Postgres is back.
    const stoppedAt = Date.now();
    let killedAt: number;
    const failedBootsBefore = target.failedBoots;
    const crashesBefore = other.crashes;
    try {
      await cluster.stopImmediate();
      killedAt = Date.now();
      await target.kill("SIGKILL");
      target.start();
      await sleep(opts.pgDownMs, undefined, { signal });
    } finally {
      await cluster.start();
    }
    const readyAt = Date.now();
    let otherRecoveryMs: number | undefined;
    await Promise.all([
      target.waitHealthy({ timeoutMs: HEALTHY_TIMEOUT_MS, respawn: true, signal }),
      other.waitHealthy({ timeoutMs: RECOVERY_TIMEOUT_MS, respawn: false, signal }).then(
        () => {
          otherRecoveryMs = Date.now() - readyAt;
        },
        async () => {
          signal.throwIfAborted();
          // Exited by itself: counted as a crash. Still running but not healthy: it does not recover.
          if (other.running) {
            run.findings.push({
              kind: "no-recovery",
              detail: `${other.app} did not answer /health 200 within ${RECOVERY_TIMEOUT_MS} ms of Postgres being back`,
            });
            await other.kill("SIGKILL");
          }
        },
      ),
    ]);
    const downMs = Date.now() - killedAt;
    await allHealthy(run);
    done.push({
      cycle,
      app: name,
      pgRestart: true,
      downMs,
      pgOutageMs: readyAt - stoppedAt,
      ...(otherRecoveryMs === undefined ? {} : { otherRecoveryMs }),
    });
    const otherState =
      otherRecoveryMs !== undefined
        ? `${other.app} answered 200 ${seconds(otherRecoveryMs)} after Postgres was back`
        : other.crashes > crashesBefore
          ? `${other.app} CRASHED and was restarted`
          : `${other.app} did NOT recover and was restarted`;
    log(
      `cycle ${cycle}/${opts.cycles}: Postgres stopped (immediate), SIGKILL ${name} (pid ${pid}) and started it ` +
        `(${target.failedBoots - failedBootsBefore} failed boot(s) while down); Postgres ready after ` +
        `${seconds(readyAt - stoppedAt)}, ${name} healthy after ${seconds(downMs)}; ${otherState}; ` +
        `${run.records.length} operations settled`,
    );
  }
  return done;
}

/** Which fault the events get on a cycle: odd: the relay process; 2, 6, ...: nats-server; 4, 8, ...: the consumer. */
async function eventFaults(run: Run, cycle: number): Promise<void> {
  const { events, opts } = run;
  if (cycle % 2 === 1) {
    const pid = events.relay.pid;
    await events.killRelay();
    log(`cycle ${cycle}/${opts.cycles}: SIGKILL the relay process (pid ${pid}), started again`);
  } else if (cycle % 4 === 2) {
    const outageMs = await events.restartBroker(opts.pgDownMs);
    log(
      `cycle ${cycle}/${opts.cycles}: nats-server stopped and started, answering again after ${seconds(outageMs)}`,
    );
  } else {
    await events.restartConsumer();
    log(`cycle ${cycle}/${opts.cycles}: the consumer stopped and started again from its durable checkpoint`);
  }
}

/** A request's resolution as the record the checker holds the ledger against. */
function outcomeOf<R>(resolution: Resolution<R>): OpOutcome<R> {
  return resolution.final ?? { kind: "unresolved", detail: resolution.lastUnknownDetail ?? "" };
}

/** Sends one write of any kind until its answer is definite, and records it. */
export async function sendWrite(to: Endpoint, r: Request, retry: RetryOptions): Promise<OpRecord> {
  const path = pathOf(r);
  const done = <R>(res: Resolution<R>) => ({
    app: r.app,
    attempts: res.attempts,
    unknowns: res.unknowns,
    outcome: outcomeOf(res),
    answeredAtMs: Date.now(),
  });
  switch (r.kind) {
    case "post":
      return {
        body: r.body,
        amount: signedAmount(r.app, r.body.operation, r.body.amount),
        ...done(await sendUntilDefinite(to, path, r.body, postResultSchema, retry)),
      };
    case "hold":
      return {
        kind: r.kind,
        body: r.body,
        ...done(await sendUntilDefinite(to, path, r.body, holdResultSchema, retry)),
      };
    case "capture":
      return {
        kind: r.kind,
        holdId: r.holdId,
        body: r.body,
        ...done(await sendUntilDefinite(to, path, r.body, captureResultSchema, retry)),
      };
    case "release":
      return {
        kind: r.kind,
        holdId: r.holdId,
        body: r.body,
        ...done(await sendUntilDefinite(to, path, r.body, holdResultSchema, retry)),
      };
    case "reversal":
      return {
        kind: r.kind,
        entryId: r.entryId,
        body: r.body,
        ...done(await sendUntilDefinite(to, path, r.body, reversalResultSchema, retry)),
      };
    case "transfer":
      return {
        kind: r.kind,
        body: r.body,
        ...done(await sendUntilDefinite(to, path, r.body, transferResultSchema, retry)),
      };
    case "suspension":
    case "reinstatement":
      return {
        kind: r.kind,
        ownerId: r.ownerId,
        body: r.body,
        ...done(await sendUntilDefinite(to, path, r.body, statusResultSchema, retry)),
      };
    case "batch":
      return {
        kind: r.kind,
        body: r.body,
        ...done(await sendUntilDefinite(to, path, r.body, batchResultSchema, retry)),
      };
  }
}

/** One client loop: the next write, sent until its answer is definite, recorded; until told to stop. */
async function clientLoop(run: Run, workload: Workload, stop: { now: boolean }): Promise<void> {
  const retry: RetryOptions = {
    timeoutMs: run.opts.requestTimeoutMs,
    giveUpAfterMs: run.opts.resolveTimeoutS * 1000,
    signal: run.signal,
  };
  while (!stop.now && !run.signal.aborted) {
    const request = workload.next();
    const record = await sendWrite(run.apps[request.app], request, retry);
    run.records.push(record);
    workload.observe(record);
  }
}

/** Every post of the run, batches' items included, each with its own outcome. */
const postsOf = (records: readonly OpRecord[]): PostRecord[] =>
  records.flatMap((r) => (r.kind === "batch" ? batchItems(r) : r.kind === undefined ? [r] : []));

/** Whether a definite answer was the original again (a batch: whether all its items were). */
function replayed(r: OpRecord): boolean {
  if (r.outcome.kind !== "acked") return false;
  if (r.kind === "batch") return r.outcome.result.results.every((x) => x.status === 200);
  return (r.outcome.result as { replayed: boolean }).replayed;
}

/**
 * EXPIRY entries by who most likely wrote them: one with the created_at of the owner's next client
 * entry was written in that write's transaction (the ledger expires due grants first); the others by
 * a sweeper. A sweep in the same batch as a write looks like the write's: the two are the same thing.
 */
function expiriesByWriter(entries: readonly Entry[]): { byWrite: number; otherwise: number } {
  const byOwner = new Map<string, Entry[]>();
  for (const e of entries) {
    const list = byOwner.get(e.owner_id) ?? [];
    list.push(e);
    byOwner.set(e.owner_id, list);
  }
  let byWrite = 0;
  let otherwise = 0;
  for (const list of byOwner.values()) {
    list.sort((a, b) => a.sequence - b.sequence);
    // Newest first, so the next client entry's instant is known when its expiries are reached.
    let nextClientAt: string | undefined;
    for (const e of list.reverse()) {
      if (e.operation !== EXPIRY) nextClientAt = e.created_at;
      else if (nextClientAt === e.created_at) byWrite += 1;
      else otherwise += 1;
    }
  }
  return { byWrite, otherwise };
}

function summarize(
  run: Run,
  database: string,
  cycles: CycleRecord[],
  read: { entries: readonly Entry[]; databaseEntries: number; databaseExpiryEntries: number },
  verify: { code: number | null; lastLine: string },
): ChaosSummary {
  const records = run.records;
  const acked = records.filter((r) => r.outcome.kind === "acked");
  const replays = acked.filter(replayed).length;
  const byKind: Record<string, { acked: number; refused: number; unresolved: number }> = {};
  for (const r of records) {
    const k: OpKind = kindOf(r);
    const counts = (byKind[k] ??= { acked: 0, refused: 0, unresolved: 0 });
    counts[r.outcome.kind] += 1;
  }
  const byCode: Record<string, number> = {};
  for (const r of records)
    if (r.outcome.kind === "refused") byCode[r.outcome.code] = (byCode[r.outcome.code] ?? 0) + 1;
  const withUnknown = records.filter((r) => r.unknowns.length > 0);
  const byReason: Record<string, number> = {};
  for (const r of withUnknown)
    for (const reason of r.unknowns) byReason[reason] = (byReason[reason] ?? 0) + 1;
  const apps = Object.values(run.apps);
  const expiries = expiriesByWriter(read.entries);
  const granted: Record<string, number> = {};
  for (const r of postsOf(records))
    if (r.outcome.kind === "acked" && r.outcome.result.entry.expires_at !== undefined)
      granted[r.body.operation] = (granted[r.body.operation] ?? 0) + 1;
  return {
    options: run.opts,
    database,
    wallS: Math.round((Date.now() - run.startedAt) / 100) / 10,
    cyclesRequested: run.opts.cycles,
    cycles,
    pgRestarts: cycles.filter((c) => c.pgRestart).length,
    appSpawns: apps.reduce((n, a) => n + a.spawned, 0),
    failedBoots: apps.reduce((n, a) => n + a.failedBoots, 0),
    appCrashes: apps.reduce((n, a) => n + a.crashes, 0),
    appErrorLogLines: apps.reduce((n, a) => n + a.errorLines, 0),
    operations: records.length,
    attempts: records.reduce((n, r) => n + r.attempts, 0),
    acknowledged: { total: acked.length, created: acked.length - replays, replayed: replays },
    refused: { total: records.filter((r) => r.outcome.kind === "refused").length, byCode },
    byKind,
    holdExpiryEntries: read.entries.filter((e) => e.operation === HOLD_EXPIRY).length,
    unknown: {
      operations: withUnknown.length,
      attempts: withUnknown.reduce((n, r) => n + r.unknowns.length, 0),
      byReason,
      resolvedAppliedBefore: withUnknown.filter(replayed).length,
      resolvedAppliedByRetry: withUnknown.filter((r) => r.outcome.kind === "acked" && !replayed(r)).length,
      resolvedRefused: withUnknown.filter((r) => r.outcome.kind === "refused").length,
      unresolved: withUnknown.filter((r) => r.outcome.kind === "unresolved").length,
    },
    entriesChecked: read.entries.length,
    databaseEntries: read.databaseEntries,
    grants: {
      granted,
      expiryEntries: read.entries.filter((e) => e.operation === EXPIRY).length,
      databaseExpiryEntries: read.databaseExpiryEntries,
      expiredByWrite: expiries.byWrite,
      expiredOtherwise: expiries.otherwise,
      refusedAfterExpiry: postsOf(records).filter(lateExpiry).length,
    },
    verify,
    violations: {
      total: run.violations.length,
      byKind: countByKind(run.violations),
      examples: run.violations.slice(0, 20).map((v) => `${v.kind}: ${v.detail}`),
    },
    findings: {
      total: run.findings.length,
      byKind: countByKind(run.findings),
      examples: run.findings.slice(0, 10).map((v) => `${v.kind}: ${v.detail}`),
    },
    events: run.events.summary,
  };
}

function printSummary(s: ChaosSummary): void {
  const kills = s.cycles.map((c) => c.downMs);
  const pg = s.cycles.filter((c) => c.pgRestart);
  const fmt = (o: Record<string, number>) =>
    Object.entries(o)
      .sort((a, b) => b[1] - a[1])
      .map(([k, n]) => `${k} ${n}`)
      .join(", ") || "none";
  const lines = [
    "",
    `chaos summary (${s.options.quick ? "quick" : "full"} run, seed ${s.options.seed}, ${s.wallS} s)`,
    `  kill cycles          ${s.cycles.length} of ${s.cyclesRequested} (SIGKILL, restart, /health 200): back after ${seconds(median(kills))} median, ${seconds(Math.max(0, ...kills))} max`,
    `  Postgres restarts    ${s.pgRestarts} (stop -m immediate): ready again after ${pg.map((c) => seconds(c.pgOutageMs ?? 0)).join(", ") || "-"}`,
    `  app processes        ${s.appSpawns} started, ${s.failedBoots} failed to boot (Postgres down), ${s.appCrashes} crashed on their own, ${s.appErrorLogLines} error log lines`,
    `  operations           ${s.operations} (one nonce each), ${s.attempts} HTTP attempts, ${s.options.concurrency} client loops, ${s.options.owners} owners`,
    `  acknowledged         ${s.acknowledged.total} (${s.acknowledged.created} x 201, ${s.acknowledged.replayed} x 200 replay)`,
    `  refused              ${s.refused.total} (${fmt(s.refused.byCode)})`,
    `  by kind              ${Object.entries(s.byKind)
      .map(([k, c]) => `${k} ${c.acked}/${c.refused}${c.unresolved ? `/${c.unresolved} unresolved` : ""}`)
      .join(", ")} (acknowledged/refused; a batch counts once here, its items as posts in the lines above)`,
    `  unknown outcomes     ${s.unknown.operations} operations, ${s.unknown.attempts} attempts (${fmt(s.unknown.byReason)})`,
    `    resolved by retry  ${s.unknown.resolvedAppliedBefore} had been applied (200 replay), ${s.unknown.resolvedAppliedByRetry} applied by the retry (201), ${s.unknown.resolvedRefused} refused; ${s.unknown.unresolved} unresolved`,
    `  history checked      ${s.entriesChecked} entries read back over the API; ${s.databaseEntries} in the database`,
    `  expiring credits     ${Object.values(s.grants.granted).reduce((a, b) => a + b, 0)} granted (${fmt(s.grants.granted)}); ${s.grants.expiryEntries} EXPIRY entries read back (${s.grants.databaseExpiryEntries} in the database): ${s.grants.expiredByWrite} by a write, ${s.grants.expiredOtherwise} by a sweeper; ${s.grants.refusedAfterExpiry} refused once their expires_at had passed`,
    `  holds expired        ${s.holdExpiryEntries} HOLD_EXPIRY entries read back`,
    `  events               ${s.events.logEvents} in the log for ${s.events.entries} entries; ${s.events.onStream} on the stream (${s.events.entryCreatedOnStream} entry.created), ` +
      `${s.events.consumed} handled by the consumer (${s.events.consumerRetried} retried, ${s.events.consumerDeadLettered} dead-lettered); relay drained ${s.events.relayDrainMs ?? "-"} ms, consumer ${s.events.consumerDrainMs ?? "-"} ms after the read-back`,
    `  event faults         ${s.events.relayKills} relay SIGKILLs, ${s.events.brokerRestarts} nats-server restarts (answering after ${s.events.brokerOutageMs.map((ms) => seconds(ms)).join(", ") || "-"}), ${s.events.consumerRestarts} consumer restarts`,
    `  ledger verify        exit ${s.verify.code}: ${s.verify.lastLine}`,
    `  violations           ${s.violations.total}${s.violations.total ? ` (${fmt(s.violations.byKind)})` : ""}`,
    ...s.violations.examples.map((e) => `    - ${e}`),
    `  findings             ${s.findings.total}${s.findings.total ? ` (${fmt(s.findings.byKind)})` : ""}` +
      `${s.findings.total && !s.options.strict ? "; availability bugs, not ledger violations: --strict fails on them" : ""}`,
    ...s.findings.examples.map((e) => `    - ${e.replaceAll("\n", "\n      ")}`),
  ];
  log(lines.join("\n"));
}

export async function runChaos(
  opts: ChaosOptions,
  signal: AbortSignal,
  cluster: LocalCluster,
): Promise<number> {
  const runId = `c${Date.now().toString(36)}${randomBytes(2).toString("hex")}`;
  log(
    `chaos: ${opts.cycles} kill cycles, ${opts.pgRestarts} Postgres restarts (cluster ${cluster.label}), ` +
      `${opts.concurrency} client loops over ${opts.owners} owners, seed ${opts.seed}`,
  );
  await cluster.ensureRunning();
  const { name: database, url } = await createDatabase(opts.adminUrl, "ledger_chaos");
  log(`chaos: database ${database}`);
  const [port1, port2] = [await freePort(), await freePort()];
  const events = await startEventsRig({
    adminUrl: opts.adminUrl,
    databaseUrl: url,
    natsUrl: opts.natsUrl,
    runId,
    log,
  }).catch(async (error: unknown) => {
    await dropDatabase(opts.adminUrl, database);
    throw error;
  });
  exitHooks.relay = events.relay;
  log(`chaos: events to NATS stream ${events.summary.stream}, relay process pid ${events.relay.pid}`);
  // The apps run as in production: every request carries a key of its app (LEDGER_AUTH=required), with
  // every scope the workload needs and a rate far above what the client loops send, so auth is on the
  // path of every write and read through the kills and restarts, and never refuses.
  const appEnv = {
    LEDGER_AUTH: "required",
    LEDGER_EXPIRY_SWEEP_S: String(EXPIRY_SWEEP_S),
    ...events.env,
  };
  const keyOf = (app: AppName) =>
    createKey(url, { app, scopes: CHAOS_KEY_SCOPES, ratePerS: 100_000, name: "chaos" });
  const [key1, key2] = await Promise.all([keyOf("app1"), keyOf("app2")]);
  const apps: Record<AppName, AppProcess> = {
    app1: new AppProcess({ app: "app1", port: port1, databaseUrl: url, env: appEnv, apiKey: key1 }),
    app2: new AppProcess({ app: "app2", port: port2, databaseUrl: url, env: appEnv, apiKey: key2 }),
  };
  exitHooks.apps = Object.values(apps);
  const run: Run = {
    opts,
    apps,
    events,
    cluster,
    signal,
    violations: [],
    findings: [],
    records: [],
    startedAt: Date.now(),
  };
  try {
    apps.app1.start();
    apps.app2.start();
    await Promise.all(
      Object.values(apps).map((a) => a.waitHealthy({ timeoutMs: HEALTHY_TIMEOUT_MS, signal })),
    );
    log(
      `chaos: app1 on ${apps.app1.baseUrl} (pid ${apps.app1.pid}), app2 on ${apps.app2.baseUrl} (pid ${apps.app2.pid})`,
    );

    const owners = Array.from({ length: opts.owners }, (_, i) => `${runId}_${i === 0 ? "hot" : `o${i}`}`);
    const workload = new Workload({
      owners,
      hotShare: opts.hotShare,
      random: seededRandom(opts.seed),
      noncePrefix: runId,
    });
    const stop = { now: false };
    const loops = Promise.all(
      Array.from({ length: opts.concurrency }, () => clientLoop(run, workload, stop)),
    );
    let cycles: CycleRecord[];
    try {
      cycles = await killer(run);
      // A calm tail: traffic on the recovered system, and time for the last unknowns to settle.
      await sleep(Math.min(3_000, opts.intervalMs * 2), undefined, { signal });
    } finally {
      stop.now = true;
      await loops;
    }
    signal.throwIfAborted();

    // Everything up, every outcome settled, every credit of the run past its expiry: read the ledger
    // back and hold it against the records.
    await allHealthy(run);
    // Every credit with an expiry and every hold of the run past its expiry: none counts by then.
    const latestExpiryMs = Math.max(
      0,
      ...postsOf(run.records).flatMap((r) =>
        r.body.expires_at === undefined ? [] : [Date.parse(r.body.expires_at)],
      ),
      ...run.records.flatMap((r) =>
        r.kind === "hold" && r.outcome.kind === "acked" ? [Date.parse(r.outcome.result.hold.expires_at)] : [],
      ),
    );
    await sleep(Math.max(0, latestExpiryMs + SETTLE_AFTER_EXPIRY_MS - Date.now()), undefined, { signal });
    const holds = run.records.flatMap((r) =>
      r.kind === "hold" && r.outcome.kind === "acked" ? [{ app: r.app, id: r.outcome.result.hold.id }] : [],
    );
    const { read, counts } = await readQuiet(run, owners, url, holds);
    run.violations.push(
      ...checkLedger(
        run.records,
        {
          owners,
          entries: read.entries,
          balances: read.balances,
          expiring: read.expiring,
          figures: read.figures,
          holds: read.holds,
          readWindow: read.readWindow,
          totalEntries: counts.total,
          totalExpiryEntries: counts.expiry,
        },
        { allowedRefusals: EXPECTED_REFUSALS },
      ),
    );
    const overdue = await countOverdueGrants(url, SWEEP_GRACE_S);
    if (overdue > 0)
      run.findings.push({
        kind: "sweep-missed",
        detail: `${overdue} grants due for over ${SWEEP_GRACE_S} s still not expired, with sweepers every ${EXPIRY_SWEEP_S} s`,
      });
    const overdueHolds = await countOverdueHolds(url, SWEEP_GRACE_S);
    if (overdueHolds > 0)
      run.findings.push({
        kind: "sweep-missed",
        detail: `${overdueHolds} holds past their expiry for over ${SWEEP_GRACE_S} s still active, with sweepers every ${EXPIRY_SWEEP_S} s`,
      });
    const cli = await runLedgerCli(["verify"], url);
    const lastLine = `${cli.stdout}${cli.stderr}`.trim().split("\n").at(-1) ?? "";
    if (cli.code !== 0)
      run.violations.push({
        kind: "verify",
        detail: `ledger verify exited ${cli.code}:\n${cli.stdout}${cli.stderr}`,
      });
    // The apps stop (their relays with them; the relay process takes over), so nothing more is written,
    // and the stream and the consumer are held to the log.
    await Promise.all(Object.values(apps).map((a) => a.stop()));
    run.violations.push(...(await events.check(url)));
    for (const r of run.records) {
      if (r.unknowns.includes("http-5xx")) {
        run.findings.push({
          kind: "server-error",
          detail: `${r.app} ${kindOf(r)} ${JSON.stringify(r.body).slice(0, 200)}: a 5xx other than 503 (the client is only told to retry 503)`,
        });
      }
    }
    for (const a of Object.values(apps)) {
      for (const report of a.crashReports) {
        run.findings.push({ kind: "app-crash", detail: `${a.app} ${report}` });
      }
    }
    if (cycles.length < opts.cycles) log(`chaos: only ${cycles.length} of ${opts.cycles} cycles ran`);

    const summary = summarize(
      run,
      database,
      cycles,
      { entries: read.entries, databaseEntries: counts.total, databaseExpiryEntries: counts.expiry },
      { code: cli.code, lastLine },
    );
    printSummary(summary);
    if (opts.jsonOut) writeFileSync(opts.jsonOut, `${JSON.stringify(summary, null, 2)}\n`);
    if (summary.violations.total > 0 || (opts.strict && summary.findings.total > 0)) return 1;
    return cycles.length < opts.cycles ? 2 : 0;
  } finally {
    // Postgres first: it is shared, and is owed a start if this ends during an outage.
    await cluster.ensureRunning();
    await Promise.all(Object.values(apps).map((a) => a.stop()));
    await events.close(opts.keepDatabase);
    if (opts.keepDatabase) log(`chaos: kept database ${database}: ${url}`);
    else await dropDatabase(opts.adminUrl, database);
  }
}

/**
 * Reads the whole ledger back, and counts the database's entries before and after: the sweepers keep
 * running, and a snapshot they wrote into halfway would not add up. Read again until none did.
 */
async function readQuiet(
  run: Run,
  owners: readonly string[],
  url: string,
  holds: readonly { app: AppName; id: string }[],
): Promise<{ read: LedgerRead; counts: { total: number; expiry: number } }> {
  for (let attempt = 1; ; attempt++) {
    const before = await countEntries(url);
    const read = await readLedger(
      run.apps,
      owners,
      { timeoutMs: 10_000, giveUpAfterMs: 120_000, signal: run.signal },
      4,
      holds,
    );
    const counts = await countEntries(url);
    if (counts.total === before.total || attempt === READS_MAX) {
      if (counts.total !== before.total)
        run.violations.push({
          kind: "harness",
          detail: `entries kept being written while the ledger was read back (${READS_MAX} reads)`,
        });
      return { read, counts };
    }
    log(`chaos: ${counts.total - before.total} entries written while reading back; reading again`);
  }
}

/** What the exit handler must undo if the process ends while things are still out of place. */
const exitHooks: { cluster?: LocalCluster; apps: AppProcess[]; relay?: { killNow(): void } } = { apps: [] };

async function main(): Promise<number> {
  const opts = parseChaosArgs(process.argv.slice(2), process.env);
  if (typeof opts === "string") {
    process.stderr.write(`${opts}\n\n${USAGE}`);
    return 2;
  }
  if ("help" in opts) {
    log(USAGE);
    return 0;
  }
  const admin = new URL(opts.adminUrl);
  const cluster = new LocalCluster({
    cluster: opts.cluster,
    host: admin.hostname.replace(/^\[|\]$/g, ""),
    port: Number(admin.port || 5432),
  });
  exitHooks.cluster = cluster;
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (name: NodeJS.Signals) => {
    signals += 1;
    if (signals === 1) {
      log(`chaos: ${name}: stopping; Postgres will be running again before this exits`);
      controller.abort(new Error(`stopped by ${name}`));
    } else {
      log(
        `chaos: ${name} again: still cleaning up (starting Postgres, stopping the apps, dropping the database)`,
      );
    }
  };
  for (const name of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(name, onSignal);
  try {
    return await runChaos(opts, controller.signal, cluster);
  } catch (error) {
    if (controller.signal.aborted)
      process.stderr.write(`chaos: aborted (${String(controller.signal.reason)})\n`);
    else process.stderr.write(`chaos: failed: ${(error as Error).stack ?? String(error)}\n`);
    return 2;
  } finally {
    await cluster.ensureRunning().catch((error: unknown) => {
      process.stderr.write(`chaos: could not start Postgres again: ${String(error)}\n`);
    });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  // The last line of defence: whatever ended the process, leave no app running and Postgres started.
  process.on("exit", () => {
    for (const app of exitHooks.apps) app.killNow();
    exitHooks.relay?.killNow();
    if (exitHooks.cluster?.stoppedByUs) exitHooks.cluster.startSync();
  });
  process.exitCode = await main();
}
