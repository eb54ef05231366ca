// Shared shapes and how the pages write instants and amounts.
import type { Entry as ClientEntry, LedgerPaths } from "@ledger/client";

export type Entry = ClientEntry<LedgerPaths>;

/** Owner ids as the ledger takes them (README "The API"); anything else is refused before a call. */
export const OWNER_ID = /^[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,127}$/;
export const OPERATION = /^[A-Z][A-Z0-9_]{0,63}$/;

/** "2026-12-02 14:40:07 UTC": unambiguous for staff in any time zone. */
export function formatInstant(iso: string | undefined | null): string {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

/** "2026-12-02": the date alone. */
export function formatDate(iso: string): string {
  return formatInstant(iso).slice(0, 10);
}

/** A signed amount: "+10", "-5", "0". */
export function signed(n: number): string {
  return n > 0 ? `+${n}` : String(n);
}

/** What an <input type="datetime-local"> shows for an instant (UTC, to the second). */
export function toLocalInput(iso: string | undefined): string {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString().slice(0, 19);
}

const LOCAL = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/i;

/**
 * An instant typed into a form: a datetime-local value (read as UTC, as the labels say) or an RFC 3339
 * date-time. Undefined for an empty field; null for one that is not an instant.
 */
export function parseInstant(raw: string | undefined): string | undefined | null {
  const value = raw?.trim() ?? "";
  if (value === "") return undefined;
  if (value.length > 40) return null;
  const text = LOCAL.test(value) ? `${value}Z` : value;
  if (!LOCAL.test(value) && !RFC3339.test(value)) return null;
  const d = new Date(text);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}
