// Instants as the API takes them: RFC 3339 date-times with an explicit offset, to the millisecond.
import { z } from "zod";

/** Longest instant text accepted: "2026-03-01T12:00:00.123456789+05:30" is 35 characters. */
export const INSTANT_LENGTH_MAX = 40;

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/**
 * Parses an RFC 3339 date-time into a Date, or returns a reason it is not one. The offset is required
 * (a time without one names no instant); a leap second (:60) is refused, since it names an instant no
 * clock here can hold; fractions past the millisecond are dropped.
 */
export function parseInstant(text: string): Date | string {
  if (text.length > INSTANT_LENGTH_MAX) return `an instant is at most ${INSTANT_LENGTH_MAX} characters`;
  const m = RFC3339.exec(text);
  if (!m) return "not an RFC 3339 date-time with an offset, such as 2026-03-01T12:00:00Z";
  const [, y, mo, d, h, mi, s, frac = "", z, sign, oh, om] = m;
  const [year, month, day, hour, minute, second] = [y, mo, d, h, mi, s].map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (second === 60) return "leap seconds (:60) are not accepted";
  if (month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59) return "a field is out of range";
  const dayMs = Date.UTC(year, month - 1, day);
  const check = new Date(dayMs);
  if (check.getUTCFullYear() !== year || check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day) {
    return "no such day";
  }
  let offsetMin = 0;
  if (!z) {
    const [offH, offM] = [Number(oh), Number(om)];
    if (offH > 23 || offM > 59) return "the offset is out of range";
    offsetMin = (sign === "-" ? -1 : 1) * (offH * 60 + offM);
  }
  const ms = Number(frac.padEnd(3, "0").slice(0, 3));
  return new Date(Date.UTC(year, month - 1, day, hour, minute, second, ms) - offsetMin * 60_000);
}

/** A string that parses as an instant; the domain checks whether it is a sensible one. */
export const instantSchema = z
  .string()
  .max(INSTANT_LENGTH_MAX, `an instant is at most ${INSTANT_LENGTH_MAX} characters`)
  .superRefine((text, ctx) => {
    const parsed = parseInstant(text);
    if (typeof parsed === "string") ctx.addIssue({ code: "custom", message: parsed });
  });
