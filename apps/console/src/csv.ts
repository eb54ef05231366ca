// A statement as RFC 4180 CSV: CRLF line ends, a field quoted when it holds a comma, quote, CR or LF,
// quotes doubled. A cell a spreadsheet would run as a formula (starting with = + - @, or a tab or CR,
// which some read past) gets a leading apostrophe, so it is shown as text. Numbers are written as
// numbers: a negative amount stays -5 and sums in a spreadsheet, since it is ours and not user text.
import type { Entry } from "./format.js";

/** The columns of the statement, the same as the entries table's. */
export const STATEMENT_COLUMNS = [
  "id",
  "created_at",
  "app",
  "operation",
  "amount",
  "balance_after",
  "expires_at",
  "hold_id",
  "reverses",
  "reversed_amount",
  "counterparty_owner_id",
  "actor",
  "reason",
] as const;

const FORMULA_START = /^[=+\-@\t\r]/;

/** One text field, neutralised and quoted as needed. */
export function csvText(value: string): string {
  const safe = FORMULA_START.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
}

function csvCell(value: string | number | undefined | null): string {
  if (value === undefined || value === null) return "";
  if (typeof value === "number") return String(value);
  return csvText(value);
}

export function csvRow(cells: readonly (string | number | undefined | null)[]): string {
  return `${cells.map(csvCell).join(",")}\r\n`;
}

export function statementHeader(): string {
  return csvRow(STATEMENT_COLUMNS);
}

export function statementRow(entry: Entry): string {
  return csvRow([
    entry.id,
    entry.created_at,
    entry.app,
    entry.operation,
    entry.amount,
    entry.balance_after,
    entry.expires_at,
    entry.hold_id,
    entry.reverses,
    entry.reversed_amount,
    entry.counterparty_owner_id,
    entry.actor,
    entry.reason,
  ]);
}

/**
 * Reads CSV written by these rules back into rows of fields (RFC 4180: quoted fields may hold commas,
 * doubled quotes and line breaks). The apostrophe that neutralised a formula stays: it is in the file.
 * For tests and tools that check a statement; a final line end ends the last row, it adds none.
 */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') {
        quoted = false;
      } else {
        field += ch;
      }
    } else if (ch === '"' && field === "") {
      quoted = true;
    } else if (ch === ",") {
      row.push(field);
      field = "";
    } else if (ch === "\r" && text[i + 1] === "\n") {
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
      i++;
    } else {
      field += ch;
    }
  }
  if (quoted) throw new Error("CSV ends inside a quoted field");
  if (field !== "" || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}
