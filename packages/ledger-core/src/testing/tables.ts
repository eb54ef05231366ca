// Table-driven tests (describe.each over rows) name their rows one way, so long names survive.

/** Table rows as [name, row] pairs for `describe.each(...)("... %s", ...)`: `$name` would cut long names short. */
export function named<T extends { name: string }>(rows: readonly T[]): (readonly [string, T])[] {
  return rows.map((row) => [row.name, row] as const);
}
