// Where the things the harness runs live. The apps are started from their entry points as real OS
// processes (not imported): a SIGKILL must take down exactly one app and its connection pool, the way
// a crash in production would. Their packages export no entry point, so the path is built here.
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export type AppName = "app1" | "app2";

export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));

/** Each app's package directory (the working directory it is started in, so `--import tsx` resolves). */
export const APP_DIRS: Readonly<Record<AppName, string>> = {
  app1: join(REPO_ROOT, "apps/app1"),
  app2: join(REPO_ROOT, "apps/app2"),
};

export const APP_ENTRY = "src/main.ts";

export const CORE_DIR = join(REPO_ROOT, "packages/ledger-core");
export const LEDGER_CLI = "src/cli/ledger.ts";
