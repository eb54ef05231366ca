// The JSON a write accepts: stricter than JSON.parse in the two ways that matter for money.
// - Duplicate member names are refused (as I-JSON, RFC 7493, requires): JSON.parse keeps the last one,
//   while a proxy, firewall or audit log may read the first, so such a body means two different requests.
// - Numbers must be written as integers: `1.0`, `1e3` or `0.99999999999999999` are not credits, even
//   when JSON.parse would round them to one.
// Syntax itself is left to JSON.parse; this scan runs on text JSON.parse has accepted, iteratively, so
// deep nesting cannot overflow the stack.

export type StrictJsonProblem =
  { kind: "duplicate-key"; key: string } | { kind: "non-integer-number"; literal: string };

/** Returns the first problem in already-valid JSON text, or undefined when there is none. */
export function findStrictJsonProblem(text: string): StrictJsonProblem | undefined {
  // One entry per open container: the member names seen so far for an object, null for an array.
  const stack: (Set<string> | null)[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === "{") {
      stack.push(new Set());
      expectKey = true;
    } else if (ch === "[") {
      stack.push(null);
      expectKey = false;
    } else if (ch === "}" || ch === "]") {
      stack.pop();
      expectKey = false;
    } else if (ch === ",") {
      expectKey = stack.at(-1) instanceof Set;
    } else if (ch === '"') {
      const end = endOfString(text, i);
      if (expectKey) {
        const key = JSON.parse(text.slice(i, end + 1)) as string;
        const seen = stack.at(-1);
        if (seen instanceof Set) {
          if (seen.has(key)) return { kind: "duplicate-key", key };
          seen.add(key);
        }
        expectKey = false;
      }
      i = end;
    } else if (ch === "-" || (ch !== undefined && ch >= "0" && ch <= "9")) {
      let end = i + 1;
      while (end < text.length && /[0-9.eE+-]/.test(text[end] ?? "")) end++;
      const literal = text.slice(i, end);
      if (/[.eE]/.test(literal)) return { kind: "non-integer-number", literal };
      i = end - 1;
    }
  }
  return undefined;
}

/** Index of the closing quote of the string starting at `start`. */
function endOfString(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    const ch = text[i];
    if (ch === "\\") i++;
    else if (ch === '"') return i;
  }
  return text.length - 1;
}
