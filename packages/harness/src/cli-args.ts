// The command-line plumbing shared by `pnpm chaos` and `pnpm bench`: flags parsed by node:util, then
// checked by a zod schema, with every problem returned as a usage message rather than thrown.
import { parseArgs, type ParseArgsConfig } from "node:util";
import type { z } from "zod";

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
