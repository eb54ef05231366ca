// `pnpm bench:reads`: how fast the reads a support page makes stay for an owner with a long history.
// One owner gets OWNER_ENTRIES entries (written by SQL, in one statement, spread over 100 days, both
// apps, a credit then nine debits, running balances as the ledger keeps them), on a fresh Postgres
// database; then app1 (in process, over a real postgres.js pool) answers each read REPEATS times
// through `app.request()`, and the script prints p50 / p99 / max per read. The support console's owner
// page is made of these reads (its table, its filters, its older pages, Explain and the balance).
//
//   pnpm bench:reads                     100,000 entries, 50 repeats of each read
//   pnpm bench:reads --entries 1000000   a longer history
//
// The entries are not a history the API could have written (no events, no nonce rules), so `ledger
// verify` is not run: this measures reads only. Exit status: 0 done; 2 the run could not be carried out.
import { createApp } from "@ledger/app1/app";
import { encodeCursor } from "@ledger/core";
import { openDatabase } from "@ledger/core/db";
import { createLogger } from "@ledger/core/http";
import postgres from "postgres";
import { z } from "zod";
import { adminUrlFrom, DEFAULT_ADMIN_URL, localPostgresUrl, parseCli } from "./cli-args.js";
import { createDatabase, dropDatabase } from "./postgres.js";

const DAY_MS = 86_400_000;
const HISTORY_DAYS = 100;

const USAGE = `usage: pnpm bench:reads [--entries N] [--repeats N] [--admin-url URL]

  --entries N      entries of the one owner (default 100000)
  --repeats N      times each read is made, after one unmeasured (default 50)
  --admin-url URL  Postgres to create the run's database on (default TEST_DATABASE_URL, else
                   ${DEFAULT_ADMIN_URL}); must be 127.0.0.1`;

const optionsSchema = z.object({
  entries: z.coerce.number().int().min(1_000).max(10_000_000).default(100_000),
  repeats: z.coerce.number().int().min(1).max(10_000).default(50),
  adminUrl: localPostgresUrl,
});

// The owner's history in one statement: entry i is a CREDIT_ADD of 10 when i % 10 = 1, else a
// CREDIT_SPEND of 1; blocks of ten alternate between app1 and app2; balance_after is the running sum.
const SEED = `insert into ledger_entries (app, operation, owner_id, amount, balance_after, sequence, nonce,
    created_at, held_after)
  select app, operation, $1, amount, sum(amount) over (order by i), i, 'rb-' || i,
         $2::timestamptz + (i * $3::double precision) * interval '1 millisecond', 0
  from (select i,
               case when (i / 10) % 2 = 0 then 'app1' else 'app2' end as app,
               case when i % 10 = 1 then 'CREDIT_ADD' else 'CREDIT_SPEND' end as operation,
               case when i % 10 = 1 then 10 else -1 end as amount
          from generate_series(1, $4::bigint) as i) s`;

interface Read {
  name: string;
  path: string;
}

function say(message: string): void {
  process.stdout.write(`${message}\n`);
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

async function main(): Promise<number> {
  const parsed = parseCli(
    process.argv.slice(2),
    { entries: { type: "string" }, repeats: { type: "string" }, "admin-url": { type: "string" } },
    optionsSchema,
    (v) => ({ entries: v.entries, repeats: v.repeats, adminUrl: adminUrlFrom(v, process.env) }),
  );
  if (typeof parsed === "string") {
    say(`${parsed}\n\n${USAGE}`);
    return 2;
  }
  if ("help" in parsed) {
    say(USAGE);
    return 0;
  }
  const opts = parsed;
  const adminUrl = opts.adminUrl;

  const db = await createDatabase(adminUrl, "bench_reads");
  const database = await openDatabase({ url: db.url, poolSizeMax: 4 });
  try {
    const owner = "long_history";
    const start = new Date(Date.now() - HISTORY_DAYS * DAY_MS);
    const stepMs = (HISTORY_DAYS * DAY_MS) / opts.entries;
    const seeded = performance.now();
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      await sql.unsafe(SEED, [owner, start.toISOString(), stepMs, opts.entries]);
      await sql.unsafe(
        `insert into ledger_owners (owner_id, balance, last_sequence, updated_at)
         select owner_id, balance_after, sequence, now() from ledger_entries
          where owner_id = $1 order by sequence desc limit 1`,
        [owner],
      );
      await sql.unsafe("analyze ledger_entries");
    } finally {
      await sql.end();
    }
    say(
      `seeded ${opts.entries} entries of one owner over ${HISTORY_DAYS} days in ${Math.round(performance.now() - seeded)} ms (database ${db.name})`,
    );

    const app = createApp({
      db: database.db,
      ping: () => database.ping(),
      logger: createLogger({ level: "silent", name: "bench-reads" }),
    });
    const at = (daysAgo: number) => new Date(Date.now() - daysAgo * DAY_MS).toISOString();
    const q = encodeURIComponent;
    const middle = encodeCursor(Math.floor(opts.entries / 2));
    const reads: Read[] = [
      { name: "balance", path: `/ledger/${owner}` },
      { name: "entries, newest 50", path: `/ledger/${owner}/entries` },
      { name: "entries, newest 200", path: `/ledger/${owner}/entries?limit=200` },
      { name: "entries, 50 from the middle (cursor)", path: `/ledger/${owner}/entries?cursor=${middle}` },
      { name: "entries, oldest page (cursor)", path: `/ledger/${owner}/entries?cursor=${encodeCursor(51)}` },
      { name: "entries, app2 only", path: `/ledger/${owner}/entries?app=app2` },
      { name: "entries, CREDIT_ADD only", path: `/ledger/${owner}/entries?operation=CREDIT_ADD` },
      {
        name: "entries, one day 60 days ago",
        path: `/ledger/${owner}/entries?from=${q(at(61))}&to=${q(at(60))}`,
      },
      { name: "summary, last 30 days", path: `/ledger/${owner}/summary` },
      { name: "summary, all 100 days", path: `/ledger/${owner}/summary?from=${q(at(HISTORY_DAYS + 1))}` },
      { name: "balance at 50 days ago", path: `/ledger/${owner}?at=${q(at(50))}` },
    ];
    say(`each read ${opts.repeats} times after one unmeasured, app1 in process, one at a time\n`);
    say("| read | p50 ms | p99 ms | max ms | answer bytes |");
    say("| ---- | -----: | -----: | -----: | -----------: |");
    for (const r of reads) {
      const first = await app.request(r.path);
      const body = await first.text();
      if (first.status !== 200) throw new Error(`${r.name}: ${first.status} ${body}`);
      const ms: number[] = [];
      for (let i = 0; i < opts.repeats; i++) {
        const t = performance.now();
        const res = await app.request(r.path);
        await res.arrayBuffer();
        ms.push(performance.now() - t);
      }
      ms.sort((a, b) => a - b);
      const f = (x: number) => x.toFixed(1);
      say(
        `| ${r.name} | ${f(percentile(ms, 0.5))} | ${f(percentile(ms, 0.99))} | ${f(ms.at(-1) ?? NaN)} | ${body.length} |`,
      );
    }
    return 0;
  } finally {
    await database.close();
    await dropDatabase(adminUrl, db.name);
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(2);
  },
);
