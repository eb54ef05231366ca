// The pure parts of `pnpm bench`: its options, the bodies it sends, what it makes of one autocannon
// result, the table it prints and the targets. No I/O here, so all of it is unit-tested.
import { z } from "zod";
import { adminUrlFrom, DEFAULT_ADMIN_URL, localPostgresUrl, parseCli } from "./cli-args.js";

const optionsSchema = z.object({
  durationS: z.coerce.number().int().min(1).max(600),
  warmupS: z.coerce.number().int().min(0).max(60),
  connections: z.coerce.number().int().min(1).max(1_000),
  owners: z.coerce.number().int().min(1).max(1_000_000),
  replaySet: z.coerce.number().int().min(1).max(1_000_000),
  poolSize: z.coerce.number().int().min(1).max(200),
  batchSize: z.coerce.number().int().min(1).max(1_000),
  batchConnections: z.coerce.number().int().min(1).max(1_000),
  pgbenchClients: z.coerce.number().int().min(1).max(90),
  workers: z.union([z.literal("auto"), z.coerce.number().int().min(1).max(64)]),
  adminUrl: localPostgresUrl,
  natsUrl: z.string().regex(/^nats:\/\//, "a nats:// URL"),
  jsonOut: z.string().min(1).optional(),
  cpuProfDir: z.string().min(1).optional(),
  quick: z.boolean(),
  keepDatabase: z.boolean(),
});

export type BenchOptions = z.infer<typeof optionsSchema>;

const FULL = { durationS: 20, warmupS: 3 } as const;
const QUICK = { durationS: 3, warmupS: 1 } as const;

export const BENCH_USAGE = `usage: pnpm bench [options]

  --quick              short run (${QUICK.durationS} s per scenario, ${QUICK.warmupS} s warm-up): under a minute in all
  --duration-s S       measured seconds per scenario (default ${FULL.durationS})
  --warmup-s S         unmeasured load before each scenario (default ${FULL.warmupS}; quick ${QUICK.warmupS})
  --connections C      autocannon connections (default 50)
  --owners N           owners of the uniform scenario, each credited first (default 10000)
  --replay-set N       posts applied once, then replayed (default 10000)
  --pool-size N        the app's DB_POOL_SIZE per worker (default 10, the app's own default)
  --batch-size N       operations per POST /ledger/batch in the batched scenario (default 100)
  --batch-connections C  autocannon connections of the batched scenario (default 10)
  --pgbench-clients N  pgbench clients of the database ceiling (default 8)
  --workers N|auto     the app's LEDGER_WORKERS: server processes (default auto: one per core)
  --admin-url URL      Postgres to create the run's database on (default TEST_DATABASE_URL, else
                       ${DEFAULT_ADMIN_URL}); must be 127.0.0.1
  --nats-url URL       the NATS JetStream of the uniform-events scenario (default TEST_NATS_URL, else
                       nats://127.0.0.1:4222); it publishes to a stream of the run's own, deleted after
  --keep-database      do not drop the run's database at the end
  --json-out FILE      also write every result as JSON
  --cpu-prof-dir DIR   run the app under node --cpu-prof, writing its profiles to DIR
`;

/** Parses the command line; a string is a usage error to print. Explicit flags win over --quick's. */
export function parseBenchArgs(
  argv: string[],
  env: Record<string, string | undefined>,
): BenchOptions | { help: true } | string {
  return parseCli(
    argv,
    {
      "duration-s": { type: "string" },
      "warmup-s": { type: "string" },
      connections: { type: "string" },
      owners: { type: "string" },
      "replay-set": { type: "string" },
      "pool-size": { type: "string" },
      "batch-size": { type: "string" },
      "batch-connections": { type: "string" },
      "pgbench-clients": { type: "string" },
      workers: { type: "string" },
      "admin-url": { type: "string" },
      "nats-url": { type: "string" },
      "keep-database": { type: "boolean", default: false },
      "json-out": { type: "string" },
      "cpu-prof-dir": { type: "string" },
    },
    optionsSchema,
    (v) => {
      const base = v.quick ? QUICK : FULL;
      return {
        durationS: v["duration-s"] ?? base.durationS,
        warmupS: v["warmup-s"] ?? base.warmupS,
        connections: v.connections ?? 50,
        owners: v.owners ?? 10_000,
        replaySet: v["replay-set"] ?? 10_000,
        poolSize: v["pool-size"] ?? 10,
        batchSize: v["batch-size"] ?? 100,
        batchConnections: v["batch-connections"] ?? 10,
        pgbenchClients: v["pgbench-clients"] ?? 8,
        workers: v.workers ?? "auto",
        adminUrl: adminUrlFrom(v, env),
        natsUrl: v["nats-url"] ?? env.TEST_NATS_URL ?? "nats://127.0.0.1:4222",
        jsonOut: v["json-out"],
        cpuProfDir: v["cpu-prof-dir"],
        quick: v.quick,
        keepDatabase: v["keep-database"],
      };
    },
  );
}

export interface PostBody {
  operation: "CREDIT_ADD" | "CREDIT_SPEND";
  owner_id: string;
  nonce: string;
}

export function ownerId(index: number): string {
  return `bench_${index}`;
}

/** A stride coprime with the owner count, so every run of `owners` requests touches each owner once. */
export function ownerStride(owners: number): number {
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  for (let stride = 7_919; stride < 7_919 + 10_000; stride++) {
    if (gcd(stride, owners) === 1) return stride % owners || 1;
  }
  return 1;
}

/**
 * The uniform mix, request i: owners in a scattered order, each owner alternating CREDIT_ADD (+10) and
 * CREDIT_SPEND (-1) from one pass over the owners to the next, so half the requests are credits, half
 * debits, and (owners having been credited first) no debit is refused for lack of credits.
 */
export function uniformBody(i: number, owners: number, stride: number, noncePrefix: string): PostBody {
  const pass = Math.floor(i / owners);
  return {
    operation: pass % 2 === 0 ? "CREDIT_SPEND" : "CREDIT_ADD",
    owner_id: ownerId((i * stride) % owners),
    nonce: `${noncePrefix}-${i}`,
  };
}

/** The hot mix: one owner, one CREDIT_ADD (+10) for every ten CREDIT_SPEND (-1): hovers near zero. */
export function hotBody(i: number, owner: string, noncePrefix: string): PostBody {
  return {
    operation: i % 11 === 0 ? "CREDIT_ADD" : "CREDIT_SPEND",
    owner_id: owner,
    nonce: `${noncePrefix}-${i}`,
  };
}

/**
 * The batched mix, request i: `size` items of the uniform mix, those it would send as requests
 * i*size .. i*size+size-1, so a batch never names an owner twice (size <= owners) and the items cover
 * the owners as uniform's requests do.
 */
export function batchBody(
  i: number,
  size: number,
  owners: number,
  stride: number,
  noncePrefix: string,
): { operations: PostBody[] } {
  return {
    operations: Array.from({ length: size }, (_, j) =>
      uniformBody(i * size + j, owners, stride, noncePrefix),
    ),
  };
}

/** The hold-capture mix, iteration i: a hold of CREDIT_SPEND (1 credit) on the uniform mix's owner i. */
export function holdBody(
  i: number,
  owners: number,
  stride: number,
  noncePrefix: string,
): { owner_id: string; operation: "CREDIT_SPEND"; nonce: string } {
  return {
    owner_id: ownerId((i * stride) % owners),
    operation: "CREDIT_SPEND",
    nonce: `${noncePrefix}-hold-${i}`,
  };
}

/** What the answers of a batched scenario held: items answered 201 or 200, and any other item. */
export interface ItemCounts {
  ok: number;
  unexpected: number;
}

/** Counts one POST /ledger/batch answer's items: a request that is not a 200 counts all its items as unexpected. */
export function countBatchItems(counts: ItemCounts, status: number, body: string, size: number): void {
  if (status !== 200) {
    counts.unexpected += size;
    return;
  }
  let results: { status?: unknown }[];
  try {
    const parsed = JSON.parse(body) as { results?: { status?: unknown }[] };
    results = Array.isArray(parsed.results) ? parsed.results : [];
  } catch {
    results = [];
  }
  const ok = results.filter((r) => r.status === 201 || r.status === 200).length;
  counts.ok += ok;
  counts.unexpected += size - ok;
}

/** What bench needs from autocannon's result (a subset of its shape). */
export interface AutocannonLike {
  duration: number;
  errors: number;
  timeouts: number;
  latency: { p50: number; p99: number; p99_9: number };
  statusCodeStats?: Record<string, { count?: number }>;
}

export interface ScenarioResult {
  scenario: string;
  durationS: number;
  /** Answers counted as operations done: 2xx, plus 422 where a refusal is expected. */
  ops: number;
  opsPerS: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  status2xx: number;
  status422: number;
  /** Non-2xx answers other than an expected 422. */
  unexpectedNon2xx: number;
  /** Socket errors and timeouts. */
  errors: number;
  /** Replay only: 200 answers whose body said replayed: true. */
  replayedTrue?: number;
  /** Batched only: HTTP requests per second (opsPerS counts the operations they carried). */
  requestsPerS?: number;
  /** Batched only: items answered other than 201 or 200. */
  unexpectedItems?: number;
  /** uniform-events only: events on the stream, events the scenario wrote, and the relay's drain time. */
  events?: { published: number; expected: number; drainMs: number };
  /** The database ceiling only: rows per pgbench transaction, and a transaction's average latency. */
  rowsPerTransaction?: number;
  latencyAvgMs?: number;
  statusCodes: Record<string, number>;
  verify?: "pass" | "FAIL";
  /**
   * The app's scenarios: commands per group-commit transaction during the measured load (from /metrics,
   * ledger_group_commit_batch_size read before and after it). Smaller batches mean more transactions
   * for the same load.
   */
  batchMean?: number;
}

/** The sum and count of ledger_group_commit_batch_size in a /metrics text, over every label set. */
export function batchSizeTotals(metricsText: string): { sum: number; count: number } {
  let sum = 0;
  let count = 0;
  for (const line of metricsText.split("\n")) {
    const m = /^ledger_group_commit_batch_size_(sum|count)(?:\{[^}]*\})? ([0-9.e+-]+)$/.exec(line);
    if (!m) continue;
    if (m[1] === "sum") sum += Number(m[2]);
    else count += Number(m[2]);
  }
  return { sum, count };
}

/** Commands per batch between two readings of batchSizeTotals; undefined when no batch ran between. */
export function batchMeanBetween(
  before: { sum: number; count: number },
  after: { sum: number; count: number },
): number | undefined {
  const batches = after.count - before.count;
  return batches > 0 ? Math.round(((after.sum - before.sum) / batches) * 10) / 10 : undefined;
}

export function summarize(
  scenario: string,
  r: AutocannonLike,
  opts: { refusalsExpected: boolean },
): ScenarioResult {
  const statusCodes: Record<string, number> = {};
  let status2xx = 0;
  let status422 = 0;
  let non2xx = 0;
  for (const [code, stat] of Object.entries(r.statusCodeStats ?? {})) {
    const count = stat.count ?? 0;
    statusCodes[code] = count;
    if (/^2\d\d$/.test(code)) status2xx += count;
    else {
      non2xx += count;
      if (code === "422") status422 += count;
    }
  }
  const durationS = r.duration > 0 ? r.duration : 1;
  const ops = status2xx + (opts.refusalsExpected ? status422 : 0);
  return {
    scenario,
    durationS,
    ops,
    opsPerS: Math.round(ops / durationS),
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    p999Ms: r.latency.p99_9,
    status2xx,
    status422,
    unexpectedNon2xx: non2xx - (opts.refusalsExpected ? status422 : 0),
    errors: r.errors + r.timeouts,
    statusCodes,
  };
}

/** A batched scenario's result: operations are the items answered 201 or 200, not the requests. */
export function summarizeItems(scenario: string, r: AutocannonLike, items: ItemCounts): ScenarioResult {
  const requests = summarize(scenario, r, { refusalsExpected: false });
  return {
    ...requests,
    ops: items.ok,
    opsPerS: Math.round(items.ok / requests.durationS),
    requestsPerS: requests.opsPerS,
    unexpectedItems: items.unexpected,
  };
}

/**
 * The database ceiling's transaction, for pgbench: what one batch of `rows` plain operations writes,
 * in one statement: lock `rows` owners (in one order, as the ledger does), insert an entry for each
 * (a debit of 1, or a credit of 10 when the balance is 0: the uniform mix's amounts), move their
 * balances. Owners are `bench_<block + k * blocks>` for k in 0..rows-1: blocks of distinct owners
 * (blocks = owners / rows), one drawn at random per transaction.
 */
export function pgbenchScript(): string {
  return `\\set block random(0, :blocks - 1)
BEGIN;
WITH o AS (
    SELECT owner_id, balance, last_sequence FROM ledger_owners
    WHERE owner_id IN (SELECT 'bench_' || (:block + k * :blocks) FROM generate_series(0, :rows - 1) AS k)
    ORDER BY owner_id FOR UPDATE
  ), e AS (
    INSERT INTO ledger_entries (app, operation, owner_id, amount, balance_after, held_after, sequence, nonce, created_at)
    SELECT 'app1', CASE WHEN balance > 0 THEN 'CREDIT_SPEND' ELSE 'CREDIT_ADD' END, owner_id,
           CASE WHEN balance > 0 THEN -1 ELSE 10 END, balance + CASE WHEN balance > 0 THEN -1 ELSE 10 END, 0,
           last_sequence + 1, 'pgbench ' || owner_id || ' ' || (last_sequence + 1), now()
    FROM o
    RETURNING owner_id, balance_after, sequence
  )
UPDATE ledger_owners AS b SET balance = e.balance_after, last_sequence = e.sequence, updated_at = now()
FROM e WHERE b.owner_id = e.owner_id;
COMMIT;
`;
}

export interface PgbenchResult {
  transactions: number;
  failed: number;
  tps: number;
  latencyAvgMs: number;
}

/** Reads pgbench's summary; a string says what was missing from it. */
export function parsePgbench(output: string): PgbenchResult | string {
  const number = (re: RegExp) => {
    const m = re.exec(output);
    return m?.[1] === undefined ? undefined : Number(m[1]);
  };
  const transactions = number(/number of transactions actually processed: (\d+)/);
  const failed = number(/number of failed transactions: (\d+)/) ?? 0;
  const tps = number(/tps = ([\d.]+)/);
  const latencyAvgMs = number(/latency average = ([\d.]+) ms/);
  if (transactions === undefined || tps === undefined || latencyAvgMs === undefined) {
    return `pgbench printed no summary:\n${output.slice(-2_000)}`;
  }
  return { transactions, failed, tps, latencyAvgMs };
}

/** The database ceiling as a scenario row: rows written per second (tps x rows per transaction). */
export function dbCeilingResult(
  r: PgbenchResult,
  rowsPerTransaction: number,
  durationS: number,
): ScenarioResult {
  const ops = r.transactions * rowsPerTransaction;
  return {
    scenario: "db-ceiling",
    durationS,
    ops,
    opsPerS: Math.round(r.tps * rowsPerTransaction),
    // pgbench reports an average, not percentiles.
    p50Ms: Number.NaN,
    p99Ms: Number.NaN,
    p999Ms: Number.NaN,
    status2xx: r.transactions,
    status422: 0,
    unexpectedNon2xx: r.failed,
    errors: 0,
    statusCodes: {},
    rowsPerTransaction,
    latencyAvgMs: r.latencyAvgMs,
  };
}

/** The batched figure beside the database ceiling measured in the same run. */
export function batchedVsDbCeiling(results: ScenarioResult[]): string | undefined {
  const batched = results.find((r) => r.scenario === "batched");
  const db = results.find((r) => r.scenario === "db-ceiling");
  if (!batched || !db || db.opsPerS <= 0) return undefined;
  const share = ((100 * batched.opsPerS) / db.opsPerS).toFixed(1);
  return (
    `batched ${batched.opsPerS} ops/s = ${share}% of the database ceiling (${db.opsPerS} rows/s by pgbench ` +
    `in transactions of ${db.rowsPerTransaction ?? "?"}, ${db.latencyAvgMs ?? "?"} ms each on average)`
  );
}

function pad(s: string, width: number, right = false): string {
  return right ? s.padEnd(width) : s.padStart(width);
}

/** The printed table; `ceiling` is the echo route's ops/s, the HTTP limit every ratio is taken to. */
export function formatTable(results: ScenarioResult[], ceilingOpsPerS: number | undefined): string {
  const header = [
    "scenario",
    "ops/s",
    "p50 ms",
    "p99 ms",
    "p99.9 ms",
    "2xx",
    "422",
    "other non-2xx",
    "errors",
  ];
  header.push("vs ceiling", "verify");
  // A figure not measured (the database ceiling's percentiles) prints as "-".
  const ms = (v: number) => (Number.isFinite(v) ? String(v) : "-");
  const rows = results.map((r) => [
    r.scenario,
    String(r.opsPerS),
    ms(r.p50Ms),
    ms(r.p99Ms),
    ms(r.p999Ms),
    String(r.status2xx),
    String(r.status422),
    String(r.unexpectedNon2xx),
    String(r.errors),
    // The database ceiling is not an HTTP figure: no share of the HTTP ceiling.
    ceilingOpsPerS && r.rowsPerTransaction === undefined
      ? `${((100 * r.opsPerS) / ceilingOpsPerS).toFixed(1)}%`
      : "-",
    r.verify ?? "-",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? "").length)));
  const line = (cells: string[]) =>
    "| " + cells.map((c, i) => pad(c, widths[i] ?? 0, i === 0)).join(" | ") + " |";
  const sep =
    "| " + widths.map((w, i) => (i === 0 ? "-".repeat(w) : "-".repeat(w - 1) + ":")).join(" | ") + " |";
  return [line(header), sep, ...rows.map(line)].join("\n");
}

export interface TargetCheck {
  target: string;
  measured: string;
  met: boolean;
}

/**
 * The issues' targets: uniform >= 15,000 ops/s with p99 <= 25 ms; events on lose at most 15%; hot >= 10,000;
 * replay >= 20,000.
 */
export function checkTargets(results: ScenarioResult[]): TargetCheck[] {
  const by = (name: string) => results.find((r) => r.scenario === name);
  const checks: TargetCheck[] = [];
  const uniform = by("uniform");
  if (uniform) {
    checks.push({
      target: "uniform >= 15,000 ops/s with p99 <= 25 ms",
      measured: `${uniform.opsPerS} ops/s, p99 ${uniform.p99Ms} ms`,
      met: uniform.opsPerS >= 15_000 && uniform.p99Ms <= 25,
    });
  }
  // The events' ABBA is uniform, events, events, uniform (2); a later uniform (3) belongs to auth's.
  const off = opsSummed(results, ["uniform", "uniform (2)"]);
  const on = opsSummed(results, ["uniform-events", "uniform-events (2)"]);
  if (off > 0 && on > 0) {
    const share = on / off;
    checks.push({
      target: "uniform with events on (NATS) loses at most 15% against uniform, same run",
      measured: `${on} vs ${off} ops/s summed over the runs (${(share * 100).toFixed(1)}%)`,
      met: share >= 0.85,
    });
  }
  const hot = by("hot");
  if (hot) {
    checks.push({
      target: "hot >= 10,000 ops/s",
      measured: `${hot.opsPerS} ops/s`,
      met: hot.opsPerS >= 10_000,
    });
  }
  const replay = by("replay");
  if (replay) {
    checks.push({
      target: "replay >= 20,000 ops/s",
      measured: `${replay.opsPerS} ops/s`,
      met: replay.opsPerS >= 20_000,
    });
  }
  return checks;
}

/**
 * What API keys cost: uniform with LEDGER_AUTH=required (its runs around the auth-off ones, uniform (2)
 * and uniform (3)) against uniform-noauth, summed over the ABBA runs. No target: the issue asks for the
 * figure. Undefined when the run has not both.
 */
export function authCost(
  results: ScenarioResult[],
): { withAuth: number; without: number; cost: number } | undefined {
  const withAuth = opsSummed(results, ["uniform (2)", "uniform (3)"]);
  const without = opsSummed(results, ["uniform-noauth", "uniform-noauth (2)"]);
  if (withAuth === 0 || without === 0) return undefined;
  return { withAuth, without, cost: 1 - withAuth / without };
}

/** The operations per second of these scenarios, summed (the runs of an ABBA comparison). */
function opsSummed(results: readonly ScenarioResult[], names: readonly string[]): number {
  return results.filter((r) => names.includes(r.scenario)).reduce((n, r) => n + r.opsPerS, 0);
}
