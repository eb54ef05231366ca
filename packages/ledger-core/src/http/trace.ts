// W3C Trace Context: the trace id of a request's traceparent header, carried into its log lines and the
// events it writes (through the request context).
/** A W3C traceparent's trace id (version 00, or any later version read the same way), if valid. */
export function traceIdOf(header: string | undefined): string | null {
  if (header === undefined) return null;
  const m = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/.exec(header.trim());
  if (!m || m[1] === "ff") return null;
  const traceId = m[2] as string; // in the pattern
  if (/^0+$/.test(traceId) || /^0+$/.test(m[3] as string)) return null;
  if (m[1] === "00" && m[5] !== undefined) return null;
  return traceId;
}
