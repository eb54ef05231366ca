// `ledger verify` and `ledger rebuild`: audits of a live ledger database, on PGlite or DATABASE_URL;
// `ledger keys`: the apps' API keys.
//   pnpm ledger verify [--json]        check every invariant; exit 1 with a report on any violation
//   pnpm ledger rebuild [--repair]     recompute balances from the entries: print the differences,
//                                      or with --repair rewrite them, in one transaction
//   pnpm ledger keys create|list|revoke   see USAGE
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
import { SCOPES, type Scope } from "../domain/api-keys.js";
import { AUTH_CACHE_TTL_MS } from "../http/auth.js";
import { createApiKey, listApiKeys, revokeApiKey, type ApiKeyRecord, type NewApiKey } from "../store/keys.js";
import { sqlClientOf } from "../store/sql-client.js";

const USAGE = `usage: ledger <verify|rebuild|keys> [options]

  verify            check every invariant of the ledger; exit 1 and report on any violation
    --json          print the report as JSON
  rebuild           recompute every balance from the entries and print the differences
    --repair        rewrite the differing balances, in one transaction
    --json          print the report as JSON
  keys create --app APP --scope SCOPE [--scope SCOPE...] [--name NAME] [--rate N] [--json]
                    create an API key for APP and print its secret, once (only its hash is kept);
                    scopes: ${SCOPES.join(", ")}; --rate: requests per second (default: the
                    server's LEDGER_RATE_LIMIT_PER_S); --json: one line {id, key, app, scopes, name, rate}
  keys list [--app APP] [--json]
                    every key (never its secret): id, app, scopes, name, rate, created, last used, revoked
  keys revoke ID    revoke a key: every process refuses it within seconds

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

export type Command =
  | { name: "verify"; json: boolean }
  | { name: "rebuild"; json: boolean; repair: boolean }
  | { name: "keys create"; json: boolean; key: NewApiKey }
  | { name: "keys list"; json: boolean; app?: string | undefined }
  | { name: "keys revoke"; id: string };

const APP_NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const KEY_NAME_LENGTH_MAX = 200;
const RATE_MAX = 100_000;

/** Parses the command line; undefined (after printing the usage) when it is not a valid one. */
export function parseCommand(argv: string[], io: Io = stdio): Command | undefined {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        repair: { type: "boolean", default: false },
        json: { type: "boolean", default: false },
        app: { type: "string" },
        scope: { type: "string", multiple: true },
        name: { type: "string" },
        rate: { type: "string" },
      },
    });
  } catch (error) {
    io.err(`${(error as Error).message}\n\n${USAGE}\n`);
    return undefined;
  }
  const [name, ...rest] = parsed.positionals;
  const { json, repair, app, scope, name: keyName, rate } = parsed.values;
  const keyOptions = app !== undefined || scope !== undefined || keyName !== undefined || rate !== undefined;
  const usage = (problem?: string) => {
    io.err(problem ? `ledger: ${problem}\n\n${USAGE}\n` : `${USAGE}\n`);
    return undefined;
  };
  if (name === "verify" && rest.length === 0 && !repair && !keyOptions) return { name, json };
  if (name === "rebuild" && rest.length === 0 && !keyOptions) return { name, json, repair };
  if (name !== "keys" || repair) return usage();
  const [sub, ...args] = rest;
  if (sub === "create" && args.length === 0) {
    if (app === undefined || !APP_NAME_PATTERN.test(app)) {
      return usage("keys create needs --app: the app's name (lowercase letters, digits, _ or -)");
    }
    const scopes = scope ?? [];
    if (scopes.length === 0) return usage(`keys create needs at least one --scope (${SCOPES.join(", ")})`);
    const unknown = scopes.filter((s) => !(SCOPES as readonly string[]).includes(s));
    if (unknown.length > 0)
      return usage(`unknown scope ${unknown.join(", ")}: the scopes are ${SCOPES.join(", ")}`);
    if (keyName !== undefined && (keyName.trim() === "" || keyName.length > KEY_NAME_LENGTH_MAX)) {
      return usage(`--name must be 1 to ${KEY_NAME_LENGTH_MAX} characters`);
    }
    let ratePerS: number | undefined;
    if (rate !== undefined) {
      ratePerS = /^[1-9][0-9]{0,5}$/.test(rate) ? Number(rate) : Number.NaN;
      if (!(ratePerS >= 1 && ratePerS <= RATE_MAX))
        return usage(`--rate must be a whole number from 1 to ${RATE_MAX}`);
    }
    return {
      name: "keys create",
      json,
      key: { app, scopes: scopes as Scope[], name: keyName, rate: ratePerS },
    };
  }
  if (
    sub === "list" &&
    args.length === 0 &&
    scope === undefined &&
    keyName === undefined &&
    rate === undefined
  ) {
    if (app !== undefined && !APP_NAME_PATTERN.test(app))
      return usage("--app: lowercase letters, digits, _ or -");
    return { name: "keys list", json, app };
  }
  if (sub === "revoke" && args.length === 1 && !keyOptions && !json) {
    const id = args[0] as string; // length checked
    if (!/^[0-9a-f]{16}$/.test(id))
      return usage("keys revoke takes a key's id: 16 hex digits, as keys list shows");
    return { name: "keys revoke", id };
  }
  return usage();
}

function formatKeys(keys: readonly ApiKeyRecord[]): string {
  if (keys.length === 0) return "no keys";
  const rows = keys.map((k) => [
    k.id,
    k.app,
    k.scopes.join(","),
    k.name ?? "",
    k.rate === null ? "default" : String(k.rate),
    k.created_at,
    k.last_used_at ?? "never",
    k.revoked_at ?? "",
  ]);
  const head = ["id", "app", "scopes", "name", "rate/s", "created", "last used", "revoked"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(head), ...rows.map(line)].join("\n");
}

async function runKeys(db: LedgerDb, command: Command, io: Io): Promise<number> {
  const runner = sqlClientOf(db);
  if (command.name === "keys create") {
    const created = await createApiKey(runner, command.key);
    const { key, ...record } = created;
    if (command.json) {
      io.out(
        `${JSON.stringify({ id: record.id, key, app: record.app, scopes: record.scopes, name: record.name, rate: record.rate })}\n`,
      );
    } else {
      io.out(
        [
          `created key ${record.id} for ${record.app} (scopes: ${record.scopes.join(", ")}; rate: ${record.rate ?? "the server's default"} per second)`,
          "",
          `  ${key}`,
          "",
          "This is the only time the key is shown: keep it in a secret store. Send it as Authorization: Bearer <key>.",
        ].join("\n") + "\n",
      );
    }
    return 0;
  }
  if (command.name === "keys list") {
    const keys = await listApiKeys(runner, command.app);
    io.out(`${command.json ? JSON.stringify(keys, null, 2) : formatKeys(keys)}\n`);
    return 0;
  }
  if (command.name === "keys revoke") {
    const outcome = await revokeApiKey(runner, command.id);
    if (outcome === "unknown") {
      io.err(`ledger keys revoke: no key ${command.id}\n`);
      return 1;
    }
    io.out(
      outcome === "revoked"
        ? `revoked key ${command.id}: every process refuses it within ${AUTH_CACHE_TTL_MS / 1000} s\n`
        : `key ${command.id} was already revoked\n`,
    );
    return 0;
  }
  return 2;
}

/** Runs a command on an open database; returns the exit status. */
export async function runCommand(db: LedgerDb, command: Command, io: Io = stdio): Promise<number> {
  try {
    if (command.name.startsWith("keys ")) return await runKeys(db, command, io);
    if (command.name === "verify") {
      const report = await verifyLedger(db);
      io.out(`${command.json ? JSON.stringify(report, null, 2) : formatVerify(report)}\n`);
      return report.ok ? 0 : 1;
    }
    if (command.name !== "rebuild") return 2;
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
      // An audit never changes the schema; a database without the ledger's tables fails clearly. Keys
      // may be made before any app has started: their command migrates, as an app would.
      migrate: command.name.startsWith("keys "),
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
