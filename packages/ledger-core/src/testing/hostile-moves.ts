// Hostile input for POST /ledger/entries/{entry_id}/reversal and POST /ledger/transfers: rows of the
// one hostile vocabulary (hostile.ts gathers them). Each is sent for an owner holding 10 credits and
// must be refused with its exact problem and nothing written. Each body is built around a request that
// would write if accepted: a transfer of 1 from that owner, and a reversal of 1 of entry 1, the first
// entry of the suite's fresh database (an app's CREDIT_ADD of 10, made by the suite's first row).
import type { HttpErrorCode } from "../http/problem.js";
import {
  AMOUNT_MAX,
  BODY_SIZE_MAX_BYTES,
  NONCE_LENGTH_MAX,
  OWNER_ID_LENGTH_MAX,
  REASON_LENGTH_MAX,
} from "../domain/limits.js";
import { RESERVED_OWNER_IDS } from "../domain/input.js";
import {
  hostilePost,
  type HostileBody,
  type HostileCase,
  type HostileRequest,
  type RawBody,
} from "./hostile.js";
import { JSON_HEADERS, op } from "./requests.js";

/** How a raw body is sent: what HostileBody says besides the body itself. */
type Sending = Pick<HostileBody, "contentType" | "padToBytes" | "chunked" | "contentLength">;

/** A POST of exactly these bytes, with hostilePost's sending rules (padding, chunks, a lying length). */
function rawPost(path: string, body: RawBody, sending: Sending = {}): HostileRequest {
  const spec: HostileBody = { name: "", body: () => body, status: 0, code: "BAD_REQUEST", ...sending };
  // hostilePost builds around a valid post of its own; the body here ignores it.
  return hostilePost(path, spec, op("unused", "CREDIT_SPEND"));
}

type Valid = Record<string, unknown>;

interface BodyRow {
  name: string;
  /** The body, from the valid request. */
  body: (valid: Valid) => RawBody;
  sending?: Sending;
  status: number;
  code: HttpErrorCode;
}

const bad = (name: string, body: BodyRow["body"], code: HttpErrorCode = "VALIDATION_FAILED"): BodyRow => ({
  name,
  body,
  status: 400,
  code,
});
const malformed = (name: string, body: BodyRow["body"]) => bad(name, body, "MALFORMED_JSON");
const asJson = (v: Valid) => JSON.stringify(v);
const withValue = (key: string, value: unknown) => (v: Valid) => JSON.stringify({ ...v, [key]: value });
/** The valid body with one member's value as raw JSON text. */
const withRaw = (key: string, raw: string) => (v: Valid) => {
  const rest = JSON.stringify(Object.fromEntries(Object.entries(v).filter(([k]) => k !== key)));
  return `${rest.slice(0, -1)},${JSON.stringify(key)}:${raw}}`;
};
const without = (key: string) => (v: Valid) =>
  JSON.stringify(Object.fromEntries(Object.entries(v).filter(([k]) => k !== key)));
const firstAlso = (first: Valid) => (v: Valid) =>
  `{${JSON.stringify(first).slice(1, -1)},${JSON.stringify(v).slice(1)}`;

/** Rows every JSON write route refuses the same way, whatever its fields. */
function anyBodyRows(): BodyRow[] {
  const unsupported = (name: string, contentType: string | null): BodyRow => ({
    name,
    body: asJson,
    sending: { contentType },
    status: 415,
    code: "UNSUPPORTED_MEDIA_TYPE",
  });
  const tooLarge = (name: string, sending: Sending): BodyRow => ({
    name,
    body: asJson,
    sending,
    status: 413,
    code: "PAYLOAD_TOO_LARGE",
  });
  return [
    malformed("truncated JSON", (v) => asJson(v).slice(0, -1)),
    malformed("trailing garbage", (v) => `${asJson(v)}xyz`),
    malformed("two JSON documents", (v) => `${asJson(v)}${asJson(v)}`),
    malformed("an empty body", () => ""),
    malformed("single quotes", (v) => asJson(v).replaceAll('"', "'")),
    malformed("a comment", (v) => `/* c */${asJson(v)}`),
    malformed("bytes that are not UTF-8", () => new Uint8Array([0xff, 0xfe, 0x7b, 0x7d])),
    malformed("10,000 unclosed [ levels", () => "[".repeat(10_000)),
    bad("8,000 closed [ levels", () => `${"[".repeat(8_000)}${"]".repeat(8_000)}`),
    bad("JSON null", () => "null"),
    bad("a JSON array", (v) => `[${asJson(v)}]`),
    bad("a JSON string", (v) => JSON.stringify(asJson(v))),
    bad("a JSON number", () => "42"),
    bad("an empty JSON object", () => "{}"),
    unsupported("a JSON body sent as text/plain", "text/plain"),
    unsupported("a JSON body with no content type", null),
    unsupported("a JSON body sent as application/x-www-form-urlencoded", "application/x-www-form-urlencoded"),
    unsupported("a JSON body declared as charset=latin1", "application/json; charset=latin1"),
    tooLarge(`a body of ${BODY_SIZE_MAX_BYTES + 1} bytes`, { padToBytes: BODY_SIZE_MAX_BYTES + 1 }),
    tooLarge("a chunked body of 10 MiB, no content-length", { padToBytes: 10 * 1024 * 1024, chunked: true }),
    tooLarge("a small body whose content-length claims 1 GiB", { contentLength: String(1024 ** 3) }),
    malformed("duplicate keys: nonce", firstAlso({ nonce: "n-first" })),
    malformed("duplicate keys: amount (first 1000000)", firstAlso({ amount: 1_000_000 })),
    bad("a __proto__ key", withRaw("__proto__", '{"amount":1000,"polluted":true}')),
    bad("an app key naming another app", withValue("app", "another-app")),
    bad("an unknown key", withValue("extra", 1)),
    bad("nonce missing", without("nonce")),
    ...(
      [
        ["empty", ""],
        [`of ${NONCE_LENGTH_MAX + 1} characters`, "n".repeat(NONCE_LENGTH_MAX + 1)],
        ["with a space", "n 1"],
        ["shaped as a transfer's own (transfer-in x)", "transfer-in x"],
        ["with a newline", "n\n1"],
        ["with non-ASCII letters", "nönce"],
        ["as a number", 42],
        ["as null", null],
        ["as an array", ["n-1"]],
      ] as [string, unknown][]
    ).map(([label, nonce]) => bad(`nonce ${label}`, withValue("nonce", nonce))),
  ];
}

/** A magnitude of credits, 1..AMOUNT_MAX, for both routes. */
function badAmounts(): BodyRow[] {
  return [
    bad("amount 0", withValue("amount", 0)),
    bad("amount -1", withValue("amount", -1)),
    bad("amount 1.5", withValue("amount", 1.5)),
    bad('amount as the string "1"', withValue("amount", "1")),
    bad("amount null", withValue("amount", null)),
    bad("amount true", withValue("amount", true)),
    bad("amount as an array", withValue("amount", [1])),
    bad("amount as an object", withValue("amount", { value: 1 })),
    bad(`amount ${AMOUNT_MAX + 1} (AMOUNT_MAX + 1)`, withValue("amount", AMOUNT_MAX + 1)),
    bad("amount 2^53", withValue("amount", 2 ** 53)),
    bad("amount 2^64 (raw text)", withRaw("amount", "18446744073709551616")),
    bad("amount 1e400 (raw text)", withRaw("amount", "1e400")),
    bad("amount 1.0 (raw text)", withRaw("amount", "1.0")),
    bad("amount 1e0 (raw text)", withRaw("amount", "1e0")),
    bad("amount -0 (raw text)", withRaw("amount", "-0")),
    malformed("amount NaN (raw text)", withRaw("amount", "NaN")),
    malformed("amount 01 (raw text)", withRaw("amount", "01")),
  ];
}

function reversalBodyRows(): BodyRow[] {
  const reasons: [string, unknown][] = [
    ["empty", ""],
    ["of spaces only", "   "],
    [`of ${REASON_LENGTH_MAX + 1} characters`, "r".repeat(REASON_LENGTH_MAX + 1)],
    ["of 10,000 characters", "r".repeat(10_000)],
    ["with a NUL", "a\u0000b"],
    ["with a newline (a forged log line)", "refund\nREVERSED 1000000"],
    ["with an escape character", "a\u001b[31mb"],
    ["with a DEL", "a\u007fb"],
    ["with a right-to-left override", "a\u202eb"],
    ["with a lone surrogate", "a\ud800b"],
    ["as a number", 42],
    ["as null", null],
    ["as an array", ["refund"]],
  ];
  return [
    ...anyBodyRows(),
    ...badAmounts(),
    ...reasons.map(([label, reason]) => bad(`reason ${label}`, withValue("reason", reason))),
    bad("an entry_id key (the entry is the path's)", withValue("entry_id", 2)),
    bad("a reverses key", withValue("reverses", 2)),
    bad("an owner_id key", withValue("owner_id", "someone_else")),
    bad("an operation key", withValue("operation", "CREDIT_ADD")),
  ];
}

function transferBodyRows(): BodyRow[] {
  const ids: [string, unknown][] = [
    ["empty", ""],
    [`of ${OWNER_ID_LENGTH_MAX + 1} characters`, "a".repeat(OWNER_ID_LENGTH_MAX + 1)],
    ...RESERVED_OWNER_IDS.map((w): [string, unknown] => [`the route word ${w}`, w]),
    ["with a slash", "a/b"],
    ['".."', ".."],
    ["with a space", "a b"],
    ["with a NUL", "a\u0000b"],
    ["with non-ASCII letters", "jürgen"],
    ["with SQL in it", "x' OR '1'='1"],
    ["as a number", 42],
    ["as null", null],
    ["as an array", ["a"]],
  ];
  return [
    ...anyBodyRows(),
    ...badAmounts(),
    bad("amount missing", without("amount")),
    ...(["from_owner_id", "to_owner_id"] as const).flatMap((key) => [
      bad(`${key} missing`, without(key)),
      ...ids.map(([label, id]) => bad(`${key} ${label}`, withValue(key, id))),
    ]),
    bad("the same owner on both sides", (v) => JSON.stringify({ ...v, to_owner_id: v.from_owner_id })),
    malformed(
      "duplicate keys: from_owner_id (first another owner)",
      firstAlso({ from_owner_id: "someone_else" }),
    ),
    malformed("duplicate keys: to_owner_id (first the sender)", (v) =>
      firstAlso({ to_owner_id: v.from_owner_id })(v),
    ),
    bad("an owner_id key", withValue("owner_id", "someone_else")),
    bad("an operation key", withValue("operation", "TRANSFER_IN")),
    bad("an expires_at key", withValue("expires_at", "2030-01-01T00:00:00Z")),
    bad("a reason key", withValue("reason", "gift")),
  ];
}

/** Entry ids in the path that are not a positive whole number within 2^53-1. */
function entryIdRows(): HostileCase[] {
  const ids: [string, string][] = [
    ["0", "0"],
    ["-1", "-1"],
    ["+1", "+1"],
    ["01 (a leading zero)", "01"],
    ["1.5", "1.5"],
    ["1e3", "1e3"],
    ["0x10", "0x10"],
    ["abc", "abc"],
    ["2^53", "9007199254740992"],
    ["2^64", "18446744073709551616"],
    ["of 400 digits", "9".repeat(400)],
    ["%00", "1%00"],
    ["%20 (a space)", "%201"],
    ["an owner id", "owner_1"],
    ["SQL in it", "1%20or%201%3D1"],
  ];
  const valid = (nonce: string) => JSON.stringify({ nonce, amount: 1 });
  return [
    ...ids.map(([label, id]): HostileCase => ({
      name: `POST /ledger/entries/{entry_id}/reversal: entry_id ${label}`,
      request: (owner) => rawPost(`/ledger/entries/${id}/reversal`, valid(`n-${owner}`)),
      status: 400,
      code: "VALIDATION_FAILED",
    })),
    ...(
      [
        ["GET", "/ledger/entries/1/reversal"],
        ["PUT", "/ledger/entries/1/reversal"],
        ["DELETE", "/ledger/entries/1/reversal"],
        ["POST", "/ledger/entries/1/reversals"],
        ["POST", "/ledger/entries/1/reversal/again"],
        ["POST", "/ledger/entries/1"],
        ["POST", "/ledger/entries"],
        ["POST", "/ledger/ENTRIES/1/reversal"],
        ["PUT", "/ledger/transfers"],
        ["DELETE", "/ledger/transfers"],
        ["POST", "/ledger/transfers/1"],
        ["POST", "/ledger/transfer"],
      ] as const
    ).map(([method, path]): HostileCase => ({
      name: `${method} ${path}: no such route`,
      request: (owner) => ({
        path,
        init:
          method === "GET" || method === "DELETE"
            ? { method }
            : {
                method,
                headers: JSON_HEADERS,
                body: JSON.stringify({
                  nonce: `n-${owner}`,
                  amount: 1,
                  from_owner_id: owner,
                  to_owner_id: `${owner}_to`,
                }),
              },
      }),
      status: 404,
      code: "NOT_FOUND",
    })),
  ];
}

/** Every hostile request for the reversal and transfer routes. */
export function reversalTransferHostileCases(): HostileCase[] {
  const reversalPath = "/ledger/entries/1/reversal";
  return [
    ...reversalBodyRows().map((row): HostileCase => ({
      name: `POST /ledger/entries/{entry_id}/reversal: ${row.name}`,
      request: (owner) =>
        rawPost(reversalPath, row.body({ nonce: `n-${owner}`, amount: 1, reason: "hostile" }), row.sending),
      status: row.status,
      code: row.code,
    })),
    ...transferBodyRows().map((row): HostileCase => ({
      name: `POST /ledger/transfers: ${row.name}`,
      request: (owner) =>
        rawPost(
          "/ledger/transfers",
          row.body({ from_owner_id: owner, to_owner_id: `${owner}_to`, amount: 1, nonce: `n-${owner}` }),
          row.sending,
        ),
      status: row.status,
      code: row.code,
    })),
    ...entryIdRows(),
  ];
}
