// The database ceiling of `pnpm bench`: the rows the batched scenario writes (an entry per operation and
// its owner's new balance), written by pgbench straight into a scratch copy of the schema, in
// transactions of `rows`. The copy is a fresh database migrated as the bench's own is (the app's
// migrator, openDatabase), seeded with the bench's owners, and dropped at the end.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { openDatabase } from "@ledger/core/db";
import postgres from "postgres";
import { parsePgbench, pgbenchScript, type PgbenchResult } from "./bench-report.js";
import { createDatabase, dropDatabase } from "./postgres.js";

export interface DbCeilingOptions {
  adminUrl: string;
  /** Owners seeded (`bench_0` ..), each with one CREDIT_ADD of 10, as the bench seeds its own. */
  owners: number;
  /** Rows per transaction: the batched scenario's operations per request. */
  rows: number;
  clients: number;
  durationS: number;
  warmupS: number;
}

/** pgbench on PATH, else the newest one installed with Postgres; undefined when there is none. */
export function findPgbench(): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(":")) {
    if (dir && existsSync(join(dir, "pgbench"))) return join(dir, "pgbench");
  }
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
  return versions.map((v) => join(root, v, "bin", "pgbench")).find((p) => existsSync(p));
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number) {
  return new Promise<{ code: number | null; output: string }>((resolve) => {
    const child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs });
    const chunks: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => chunks.push(c));
    child.stderr.on("data", (c: Buffer) => chunks.push(c));
    child.once("error", (error) => resolve({ code: null, output: error.message }));
    child.once("close", (code) => resolve({ code, output: Buffer.concat(chunks).toString("utf8") }));
  });
}

/** The ceiling, or a sentence saying why it could not be measured. */
export async function measureDbCeiling(opts: DbCeilingOptions): Promise<PgbenchResult | string> {
  const pgbench = findPgbench();
  if (!pgbench) return "pgbench is not installed (it comes with the Postgres server packages)";
  const blocks = Math.floor(opts.owners / opts.rows);
  if (blocks < 1) return `--owners (${opts.owners}) must be at least --batch-size (${opts.rows})`;

  const db = await createDatabase(opts.adminUrl, "bench_ceiling");
  const dir = mkdtempSync(join(tmpdir(), "ledger-pgbench-"));
  try {
    const opened = await openDatabase({ url: db.url, poolSizeMax: 1 });
    await opened.close();
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      await sql`insert into ledger_entries (app, operation, owner_id, amount, balance_after, held_after, sequence,
                  nonce, created_at)
                select 'app1', 'CREDIT_ADD', 'bench_' || i, 10, 10, 0, 1, 'seed ' || i, now()
                from generate_series(0, ${opts.owners - 1}::int) as i`;
      await sql`insert into ledger_owners (owner_id, balance, last_sequence, status, held, updated_at)
                select 'bench_' || i, 10, 1, 'active', 0, now() from generate_series(0, ${opts.owners - 1}::int) as i`;
      await sql`vacuum analyze`;
    } finally {
      await sql.end({ timeout: 5 });
    }
    const script = join(dir, "batch.sql");
    writeFileSync(script, pgbenchScript());
    const args = (seconds: number) => [
      "--no-vacuum",
      "--protocol=prepared",
      `--file=${script}`,
      `--client=${opts.clients}`,
      `--jobs=${Math.max(1, Math.min(opts.clients, cpus().length))}`,
      `--time=${seconds}`,
      `--define=rows=${opts.rows}`,
      `--define=blocks=${blocks}`,
      db.url,
    ];
    // The app's own connections plan each statement per execution (force_custom_plan): so do these.
    const env = { PATH: process.env.PATH ?? "", PGOPTIONS: "-c plan_cache_mode=force_custom_plan" };
    if (opts.warmupS > 0) await run(pgbench, args(opts.warmupS), env, (opts.warmupS + 60) * 1000);
    const out = await run(pgbench, args(opts.durationS), env, (opts.durationS + 60) * 1000);
    if (out.code !== 0) return `pgbench exited ${out.code}:\n${out.output.slice(-2_000)}`;
    return parsePgbench(out.output);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await dropDatabase(opts.adminUrl, db.name);
  }
}
