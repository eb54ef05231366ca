// `redocly lint` with the recommended ruleset over an app's OpenAPI document: each app's `openapi:lint`
// script (run by its `lint`, so by `pnpm lint` in CI) hands its factory to lintOpenApi. Core cannot
// import the apps, so the apps call in. The document is what the app serves at /openapi.json, built
// in-process in milliseconds without a database (see openApiDocumentOf). Redocly runs offline: no
// telemetry (REDOCLY_TELEMETRY=off and `telemetry: off` in redocly.yaml), no update check.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import pino from "pino";
import { z } from "zod";
import type { AppDeps } from "../http/app.js";
import { openDatabase } from "../store/client.js";

/** The rules beyond `recommended`, each with the reason it differs. */
export const REDOCLY_CONFIG = fileURLToPath(new URL("../../redocly.yaml", import.meta.url));

type AppFactory = (deps: AppDeps) => { request: (path: string) => Response | Promise<Response> };

/**
 * The document an app serves at /openapi.json. The app's routes are registered when it is created, and
 * the document is made from them alone, so the app is given a connection pool that never connects (the
 * postgres.js pool opens connections at a first query, and there is none): no database is needed.
 */
export async function openApiDocumentOf(createApp: AppFactory): Promise<unknown> {
  const db = await openDatabase({ url: "postgres://openapi@127.0.0.1:9/none", migrate: false });
  try {
    const app = createApp({
      db: db.db,
      ping: () => Promise.reject(new Error("no database: the document is built without one")),
      logger: pino({ level: "silent" }),
    });
    const res = await app.request("/openapi.json");
    const text = await res.text();
    if (res.status !== 200) throw new Error(`GET /openapi.json answered ${res.status}: ${text}`);
    return JSON.parse(text) as unknown;
  } finally {
    await db.close();
  }
}

function redoclyBin(): string {
  const require = createRequire(import.meta.url);
  const manifest = require.resolve("@redocly/cli/package.json");
  const { bin } = JSON.parse(readFileSync(manifest, "utf8")) as { bin: Record<string, string> };
  const path = bin["redocly"];
  if (path === undefined) throw new Error(`@redocly/cli (${manifest}) has no redocly bin`);
  return join(dirname(manifest), path);
}

const redoclyReportSchema = z.object({
  totals: z.object({ errors: z.number(), warnings: z.number() }),
  problems: z.array(
    z.object({
      ruleId: z.string(),
      severity: z.string(),
      message: z.string(),
      location: z.array(z.object({ pointer: z.string().optional() })),
    }),
  ),
});

/**
 * Writes the app's document to a temporary file and runs `redocly lint --extends=recommended` over it
 * with redocly.yaml. A warning fails as an error does (the recommended ruleset only warns of a missing
 * operationId, for one): a rule that should not apply is turned off in redocly.yaml, with its reason.
 * Prints each problem and a summary (to stdout, or to `print`); answers the exit status (0: no problem).
 */
export async function lintOpenApi(
  name: string,
  createApp: AppFactory,
  opts: { print?: (line: string) => void } = {},
): Promise<number> {
  const print = opts.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const document = await openApiDocumentOf(createApp);
  const dir = mkdtempSync(join(tmpdir(), "ledger-openapi-"));
  try {
    const file = join(dir, `${name}.openapi.json`);
    writeFileSync(file, `${JSON.stringify(document, null, 2)}\n`);
    const args = ["lint", "--extends=recommended", `--config=${REDOCLY_CONFIG}`, "--format=json", file];
    const run = spawnSync(process.execPath, [redoclyBin(), ...args], {
      encoding: "utf8",
      maxBuffer: 64 * 1024 * 1024,
      env: { ...process.env, REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true" },
    });
    if (run.error) throw run.error;
    let report: z.infer<typeof redoclyReportSchema>;
    try {
      report = redoclyReportSchema.parse(JSON.parse(run.stdout));
    } catch {
      // Not a report (a bad config, a crash): what redocly said is the only clue.
      print(`${run.stdout}${run.stderr}`);
      print(`${name}: redocly lint did not report (exit status ${run.status})`);
      return run.status || 1;
    }
    for (const p of report.problems) {
      const at = p.location[0]?.pointer ?? "";
      print(`${name}: ${p.severity} ${p.ruleId} at ${at}: ${p.message}`);
    }
    const { errors, warnings } = report.totals;
    print(`${name}: redocly lint (recommended, redocly.yaml): ${errors} errors, ${warnings} warnings`);
    return errors + warnings === 0 && run.status === 0 ? 0 : 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
