// `ledger verify` and `ledger rebuild`: audits of a live ledger database, on PGlite or DATABASE_URL.
//   pnpm ledger verify [--json]        check every invariant; exit 1 with a report on any violation
//   pnpm ledger rebuild [--repair]     recompute balances from the entries: print the differences,
//                                      or with --repair rewrite them, in one transaction
import { parseArgs } from "node:util";
import { z } from "zod";
import {
  errorText,
  rebuildBalances,
  verifyLedger,
  type RebuildReport,
  type VerifyReport,
} from "../store/audit.js";
import { DEFAULT_DATA_DIR, openDatabase, type LedgerDb } from "../store/client.js";

const USAGE = `usage: ledger <verify|rebuild> [options]

  verify            check every invariant of the ledger; exit 1 and report on any violation
    --json          print the report as JSON
  rebuild           recompute every balance from the entries and print the differences
    --repair        rewrite the differing balances, in one transaction
    --json          print the report as JSON

Database: DATABASE_URL (postgres://...) when set, else embedded PGlite in LEDGER_DATA_DIR
(default ${DEFAULT_DATA_DIR}). Exit status: 0 ok, 1 violations or differences found, 2 usage or connection error.`;

const envSchema = z.object({
  DATABASE_URL: z
    .string()
    .optional()
    .transform((v) => (v ? v : undefined)),
  LEDGER_DATA_DIR: z.string().min(1).optional(),
});

export function formatVerify(report: VerifyReport): string {
  const lines = report.checks.map((c) => {
    const head = `${c.violations === 0 ? "ok  " : "FAIL"} ${c.name}: ${c.description}`;
    if (c.violations === 0) return head;
    return [head, `     ${c.violations} violation(s), e.g.:`, ...c.examples.map((e) => `       - ${e}`)].join(
      "\n",
    );
  });
  const failed = report.checks.filter((c) => c.violations > 0).length;
  lines.push(
    report.ok ? `verify: all ${report.checks.length} checks passed` : `verify: ${failed} check(s) FAILED`,
  );
  return lines.join("\n");
}

export function formatRebuild(report: RebuildReport): string {
  const count = report.differences.length + report.grantDifferences.length;
  if (count === 0) return "rebuild: every balance and grant matches its entries; nothing to do";
  const lines = report.differences.map((d) => {
    const stored = d.stored ? `${d.stored.balance} (#${d.stored.last_sequence})` : "missing";
    const held =
      d.stored && d.stored.held !== d.computed.held
        ? `; held: stored ${d.stored.held}, from holds ${d.computed.held}`
        : "";
    return `  ${d.owner_id}: stored ${stored}, from entries ${d.computed.balance} (#${d.computed.last_sequence})${held}`;
  });
  const grantLines = report.grantDifferences.map((g) => {
    const stored = g.stored ? `remaining ${g.stored.remaining}` : "missing";
    return `  ${g.owner_id} grant #${g.sequence}.${g.part}: stored ${stored}, from entries remaining ${g.computed.remaining}`;
  });
  const verb = report.repaired ? "repaired" : "differ (run with --repair to rewrite them)";
  return [
    `rebuild: ${report.differences.length} balance(s) and ${report.grantDifferences.length} grant(s) ${verb}:`,
    ...lines,
    ...grantLines,
  ].join("\n");
}

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
}

const stdio: Io = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

export type Command = { name: "verify"; json: boolean } | { name: "rebuild"; json: boolean; repair: boolean };

/** Parses the command line; undefined (after printing the usage) when it is not a valid one. */
export function parseCommand(argv: string[], io: Io = stdio): Command | undefined {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { repair: { type: "boolean", default: false }, json: { type: "boolean", default: false } },
    });
  } catch (error) {
    io.err(`${(error as Error).message}\n\n${USAGE}\n`);
    return undefined;
  }
  const [name, ...rest] = parsed.positionals;
  const { json, repair } = parsed.values;
  if (name === "verify" && rest.length === 0 && !repair) return { name, json };
  if (name === "rebuild" && rest.length === 0) return { name, json, repair };
  io.err(`${USAGE}\n`);
  return undefined;
}

/** Runs a command on an open database; returns the exit status. */
export async function runCommand(db: LedgerDb, command: Command, io: Io = stdio): Promise<number> {
  try {
    if (command.name === "verify") {
      const report = await verifyLedger(db);
      io.out(`${command.json ? JSON.stringify(report, null, 2) : formatVerify(report)}\n`);
      return report.ok ? 0 : 1;
    }
    const report = await rebuildBalances(db, { repair: command.repair });
    io.out(`${command.json ? JSON.stringify(report, null, 2) : formatRebuild(report)}\n`);
    return report.differences.length + report.grantDifferences.length === 0 || report.repaired ? 0 : 1;
  } catch (error) {
    io.err(`ledger ${command.name}: ${errorText(error)}\n`);
    return 2;
  }
}

export async function main(
  argv: string[],
  env: Record<string, string | undefined>,
  io: Io = stdio,
): Promise<number> {
  const command = parseCommand(argv, io);
  if (!command) return 2;
  const config = envSchema.parse(env);
  let database;
  try {
    database = await openDatabase({
      url: config.DATABASE_URL,
      dataDir: config.LEDGER_DATA_DIR ?? DEFAULT_DATA_DIR,
      poolSizeMax: 2,
      // An audit never changes the schema; a database without the ledger's tables fails clearly.
      migrate: false,
      statementTimeoutMs: 0,
      plans: "default",
    });
  } catch (error) {
    io.err(`ledger: cannot open the database: ${errorText(error)}\n`);
    return 2;
  }
  try {
    return await runCommand(database.db, command, io);
  } finally {
    await database.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.exitCode = await main(process.argv.slice(2), process.env);
}
