// The command-line plumbing shared by `pnpm chaos` and `pnpm bench`: flags parsed by node:util, then
// checked by a zod schema, with every problem returned as a usage message rather than thrown.
import { parseArgs, type ParseArgsConfig } from "node:util";
import { z } from "zod";

type Options = NonNullable<ParseArgsConfig["options"]>;
type Values = Record<string, string | boolean | undefined>;

/**
 * Parses argv with `options` (plus --quick and --help), builds the raw option object with `build`,
 * and validates it with `schema`. A string result is a usage error to print.
 */
export function parseCli<S extends z.ZodType>(
  argv: string[],
  options: Options,
  schema: S,
  build: (values: Values & { quick: boolean }) => unknown,
): z.infer<S> | { help: true } | string {
  let values: Values;
  try {
    values = parseArgs({
      // `pnpm chaos -- --quick` passes the "--" through.
      args: argv[0] === "--" ? argv.slice(1) : argv,
      options: {
        quick: { type: "boolean", default: false },
        help: { type: "boolean", default: false },
        ...options,
      },
    }).values;
  } catch (error) {
    return (error as Error).message;
  }
  if (values.help) return { help: true };
  const result = schema.safeParse(build({ ...values, quick: values.quick === true }));
  if (result.success) return result.data;
  return result.error.issues.map((i) => `${i.path.join(".") || "options"}: ${i.message}`).join("\n");
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]"]);
export const DEFAULT_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres";

/** The Postgres a run creates its database on: only ever this machine's, since a run may restart it. */
export const localPostgresUrl = z
  .url()
  .refine((u) => /^postgres(ql)?:$/.test(new URL(u).protocol), "must be a postgres:// URL")
  .refine((u) => LOOPBACK.has(new URL(u).hostname), "must point at this machine (127.0.0.1)");

/** --admin-url, else TEST_DATABASE_URL, else the local default. */
export function adminUrlFrom(values: Values, env: Record<string, string | undefined>): string | boolean {
  return values["admin-url"] ?? env.TEST_DATABASE_URL ?? DEFAULT_ADMIN_URL;
}
