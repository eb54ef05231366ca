// Postgres errors become domain errors here and nowhere else, by SQLSTATE and constraint name.
import { DatabaseUnavailableError, LedgerError } from "../domain/errors.js";

export interface PgErrorFacts {
  code: string | undefined;
  constraint: string | undefined;
}

/** Reads SQLSTATE and constraint from a driver error, looking through drizzle's DrizzleQueryError wrapper. */
export function pgErrorFacts(error: unknown): PgErrorFacts {
  let e: unknown = error;
  for (let depth = 0; depth < 5 && e instanceof Error; depth++) {
    const rec = e as Error & { code?: unknown; constraint_name?: unknown; constraint?: unknown };
    if (typeof rec.code === "string" && /^[0-9A-Z]{5}$/.test(rec.code)) {
      const constraint = rec.constraint_name ?? rec.constraint;
      return { code: rec.code, constraint: typeof constraint === "string" ? constraint : undefined };
    }
    e = rec.cause;
  }
  return { code: undefined, constraint: undefined };
}

const CONNECTION_ERROR_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "CONNECT_TIMEOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
]);

/** True when the error says the database could not be reached or went away, not that a query was wrong. */
export function isUnavailable(error: unknown): boolean {
  let e: unknown = error;
  for (let depth = 0; depth < 5 && e instanceof Error; depth++) {
    const code = (e as Error & { code?: unknown }).code;
    if (typeof code === "string") {
      if (CONNECTION_ERROR_CODES.has(code)) return true;
      // 08: connection exception; 57P01-57P03: admin shutdown, crash shutdown, cannot connect now.
      if (code.startsWith("08") || code === "57P01" || code === "57P02" || code === "57P03") return true;
    }
    if (e.message.startsWith("no answer within")) return true;
    // Embedded PGlite throws plain errors, without a code, once it is closed or closing.
    if (/^PGlite is clos(ed|ing)$/.test(e.message)) return true;
    e = e.cause;
  }
  return false;
}

/** Domain errors pass through; lost connections become DatabaseUnavailableError; anything else is a bug. */
export function translateDriverError(error: unknown): unknown {
  if (error instanceof LedgerError) return error;
  if (isUnavailable(error)) return new DatabaseUnavailableError(error);
  return error;
}
