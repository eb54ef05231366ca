// Hostile input: the one vocabulary of requests the ledger must refuse, each with the exact problem it
// must answer. One table, generated per app from its own catalog and the other app's operation names,
// of requests over every route (bad bodies, owner ids in the path, page and balance queries, routes and
// methods that do not exist) that the ledger must refuse with an exact problem, and without writing
// anything. Each app's hostile suite runs all of it; an app's own table of bad POSTs writes its rows
// with the same HostileBody builders. Each row is built around a valid CREDIT_SPEND for an owner holding
// credits, so a row the ledger wrongly accepts shows up as a write, not just as a wrong status.
import { expect } from "vitest";
import type { LedgerDb } from "../store/client.js";
import type { HttpErrorCode } from "../http/problem.js";
import {
  AMOUNT_MAX,
  BODY_SIZE_MAX_BYTES,
  NONCE_LENGTH_MAX,
  OWNER_ID_LENGTH_MAX,
  PAGE_SIZE_MAX,
} from "../domain/limits.js";
import { RESERVED_OWNER_IDS } from "../domain/input.js";
import type { OperationCatalogView } from "../domain/operations.js";
import { freshOwner } from "./index.js";
import { reversalTransferHostileCases } from "./hostile-moves.js";
import { holdHostileCases, placeHostileHold } from "./hostile-holds.js";
import { batchHostileCases } from "./hostile-batch.js";
import { suspensionHostileCases } from "./hostile-suspension.js";
import { expectRefusal } from "./problems.js";
import { apply, JSON_HEADERS, op, type PostInput, type RequestApp } from "./requests.js";
import { ledgerTotals, ownerState } from "./snapshots.js";

/** The cursor format the ledger issues, forged, for tests of cursors it did not issue. */
export function forgeCursor(payload: string): string {
  return Buffer.from(payload).toString("base64url");
}

/** The operation every hostile POST is built around: shared, so every catalog has it. */
export const HOSTILE_BASE_OPERATION = "CREDIT_SPEND";

/** A request as app.request() takes it. */
export interface HostileRequest {
  path: string;
  init: RequestInit;
}

/** A request the ledger must refuse, and how. */
export interface HostileCase {
  /** The route and what is wrong with the request, e.g. `POST /ledger: amount -1`. */
  name: string;
  /** Builds the request for an owner who holds credits (and, with `needsHold`, the id of its live hold). */
  request: (owner: string, holdId?: string) => HostileRequest;
  /** The owner also has a live hold of CREDIT_SPEND (placed before the snapshot) for the request to name. */
  needsHold?: boolean;
  status: number;
  code: HttpErrorCode;
}

export interface HostileCatalogs {
  /** The app's own catalog: amounts are checked against each of its operations. */
  catalog: OperationCatalogView;
  /** Operations that only the other app offers: this app must not know them. */
  otherAppOperations: readonly string[];
}

export type RawBody = string | Uint8Array;

/**
 * A hostile POST body and how it is sent. The body is built around a valid request that would move
 * the owner's balance if accepted, so a body the ledger wrongly accepts shows up as a write.
 */
export interface HostileBody {
  name: string;
  body: (valid: PostInput) => RawBody;
  /** null: no content-type header. Default application/json. */
  contentType?: string | null;
  /** Spaces appended up to this many bytes: made as they are read when chunked, so 10 MiB costs nothing. */
  padToBytes?: number;
  /** Sent as a stream of 1 KiB chunks, transfer-encoding: chunked, no content-length. */
  chunked?: boolean;
  /** A content-length header to send instead of the true one (a lie about the size); null: none at all. */
  contentLength?: string | null;
  status: number;
  code: HttpErrorCode;
}

const encoder = new TextEncoder();

function bytesOf(body: RawBody): Uint8Array {
  return typeof body === "string" ? encoder.encode(body) : body;
}

/** A body stream of 1 KiB chunks, made only as fast as the app reads it: the body, then spaces. */
function chunkedStream(head: Uint8Array, totalBytes: number): ReadableStream<Uint8Array> {
  const chunkBytes = 1024;
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= totalBytes) {
        controller.close();
        return;
      }
      const chunk = new Uint8Array(Math.min(chunkBytes, totalBytes - sent)).fill(0x20);
      chunk.set(head.subarray(sent, sent + chunk.length));
      sent += chunk.length;
      controller.enqueue(chunk);
    },
  });
}

/** The request that sends a hostile body, as bytes: a string body would get an implicit text/plain type. */
export function hostilePost(path: string, spec: HostileBody, valid: PostInput): HostileRequest {
  const head = bytesOf(spec.body(valid));
  const totalBytes = Math.max(head.byteLength, spec.padToBytes ?? 0);
  const headers = new Headers();
  if (spec.contentType !== null) headers.set("content-type", spec.contentType ?? "application/json");
  if (spec.chunked) {
    headers.set("transfer-encoding", "chunked");
    const body = chunkedStream(head, totalBytes);
    return { path, init: { method: "POST", headers, body, duplex: "half" } };
  }
  const bytes = new Uint8Array(totalBytes).fill(0x20);
  bytes.set(head);
  if (spec.contentLength !== null) headers.set("content-length", spec.contentLength ?? String(totalBytes));
  return { path, init: { method: "POST", headers, body: bytes } };
}

/** Sends a hostile body to POST {path}, built around `valid`. */
export async function sendHostileBody(
  app: RequestApp,
  spec: HostileBody,
  valid: PostInput,
  path = "/ledger",
): Promise<Response> {
  const request = hostilePost(path, spec, valid);
  return app.request(request.path, request.init);
}

/** The valid request as JSON text with one member's value replaced by raw JSON text (or added). */
export const rawMember =
  (key: string, raw: string) =>
  (valid: PostInput): string => {
    const rest = JSON.stringify(Object.fromEntries(Object.entries(valid).filter(([k]) => k !== key)));
    return `${rest.slice(0, -1)},${JSON.stringify(key)}:${raw}}`;
  };

/** The valid request with one member dropped. */
export const omitted =
  (key: string) =>
  (valid: PostInput): string =>
    JSON.stringify(Object.fromEntries(Object.entries(valid).filter(([k]) => k !== key)));

/** The valid request preceded by members repeating some of its keys with other values: JSON.parse keeps the last. */
export const duplicated =
  (first: Record<string, unknown>) =>
  (valid: PostInput): string =>
    `{${JSON.stringify(first).slice(1, -1)},${JSON.stringify(valid).slice(1)}`;

/** The valid request with some members replaced (or added). */
export const withMembers =
  (patch: Record<string, unknown>) =>
  (valid: PostInput): string =>
    JSON.stringify({ ...valid, ...patch });

/** A body answered 400 with this code (VALIDATION_FAILED unless told). */
export const badBody = (
  name: string,
  body: HostileBody["body"],
  code: HttpErrorCode = "VALIDATION_FAILED",
): HostileBody => ({
  name,
  body,
  status: 400,
  code,
});

const malformed = (name: string, body: HostileBody["body"]): HostileBody =>
  badBody(name, body, "MALFORMED_JSON");

const asJson = (valid: PostInput): string => JSON.stringify(valid);

/** Wrong JSON types, for every field. */
function wrongTypes(): HostileBody[] {
  const values: [string, (valid: PostInput, key: keyof PostInput) => unknown][] = [
    ["null", () => null],
    ["a number", () => 42],
    ["true", () => true],
    ["an empty object", () => ({})],
    ["an array of its valid value", (v, key) => [v[key] ?? 1]],
    ["an object wrapping its valid value", (v, key) => ({ value: v[key] ?? 1 })],
  ];
  const rows: HostileBody[] = [];
  for (const key of ["owner_id", "operation", "nonce", "amount"] as const) {
    for (const [label, value] of values) {
      if (key === "amount" && label === "a number") continue;
      rows.push(badBody(`${key} as ${label}`, (v) => JSON.stringify({ ...v, [key]: value(v, key) })));
    }
  }
  rows.push(badBody('amount as the string "1"', (v) => JSON.stringify({ ...v, amount: "1" })));
  rows.push(badBody('amount as the string "10"', (v) => JSON.stringify({ ...v, amount: "10" })));
  return rows;
}

/** Amounts that are not a magnitude of credits (an integer in 0..AMOUNT_MAX), whatever the operation. */
function badAmounts(): HostileBody[] {
  return [
    badBody("amount -1", rawMember("amount", "-1")),
    badBody("amount 1.5", rawMember("amount", "1.5")),
    badBody("amount 0.5", rawMember("amount", "0.5")),
    badBody(`amount ${AMOUNT_MAX + 1} (AMOUNT_MAX + 1)`, rawMember("amount", String(AMOUNT_MAX + 1))),
    badBody("amount 2^53", rawMember("amount", String(2 ** 53))),
    badBody("amount 2^53 + 1 (raw text)", rawMember("amount", "9007199254740993")),
    badBody("amount 2^63 (raw text)", rawMember("amount", "9223372036854775808")),
    badBody("amount -2^63 (raw text)", rawMember("amount", "-9223372036854775808")),
    badBody("amount 2^64 (raw text)", rawMember("amount", "18446744073709551616")),
    badBody("amount 1e400 (raw text: Infinity once parsed)", rawMember("amount", "1e400")),
    badBody("amount -1e400 (raw text)", rawMember("amount", "-1e400")),
    badBody("amount of 400 digits (raw text)", rawMember("amount", "9".repeat(400))),
    // Credits are integers in the text too: JSON.parse would read these as whole numbers.
    badBody("amount 10.0 (raw text)", rawMember("amount", "10.0")),
    badBody("amount 1e1 (raw text)", rawMember("amount", "1e1")),
    badBody("amount 9.99999999999999999 (raw text)", rawMember("amount", "9.99999999999999999")),
    malformed("amount NaN (raw text)", rawMember("amount", "NaN")),
    malformed("amount Infinity (raw text)", rawMember("amount", "Infinity")),
    malformed("amount -Infinity (raw text)", rawMember("amount", "-Infinity")),
    malformed("amount 0x10 (raw text)", rawMember("amount", "0x10")),
    malformed("amount 01 (raw text, a leading zero)", rawMember("amount", "01")),
    malformed("amount +1 (raw text)", rawMember("amount", "+1")),
  ];
}

/** Amounts that are numbers but not this operation's: checked per operation of the app's catalog. */
function amountsPerOperation(catalog: OperationCatalogView): HostileBody[] {
  const rows: HostileBody[] = [];
  const withAmount = (operation: string, amount: number | undefined) => (v: PostInput) =>
    JSON.stringify({ ...v, operation, ...(amount === undefined ? {} : { amount }) });
  for (const operation of catalog.names) {
    const def = catalog.get(operation);
    if (def === undefined) continue;
    if (def.kind === "fixed") {
      const magnitude = Math.abs(def.amount);
      const wrong = magnitude === 0 ? [1] : [0, magnitude + 1];
      for (const amount of wrong) {
        rows.push(
          badBody(`amount ${amount} for ${operation}`, withAmount(operation, amount), "AMOUNT_MISMATCH"),
        );
      }
      if (magnitude !== 0) {
        // Numbers JSON.parse reads as 0: they must not slip past as "no amount".
        rows.push(
          badBody(
            `amount -0 for ${operation}`,
            (v) => rawMember("amount", "-0")({ ...v, operation }),
            "AMOUNT_MISMATCH",
          ),
        );
        // Not an integer literal at all: refused before any amount rule is applied.
        rows.push(
          badBody(
            `amount 1e-400 for ${operation}`,
            (v) => rawMember("amount", "1e-400")({ ...v, operation }),
            "VALIDATION_FAILED",
          ),
        );
      }
    } else {
      rows.push(badBody(`no amount for ${operation}`, withAmount(operation, undefined), "AMOUNT_REQUIRED"));
      rows.push(badBody(`amount 0 for ${operation}`, withAmount(operation, 0), "AMOUNT_OUT_OF_RANGE"));
      if (def.min > 1) {
        rows.push(
          badBody(
            `amount ${def.min - 1} for ${operation}`,
            withAmount(operation, def.min - 1),
            "AMOUNT_OUT_OF_RANGE",
          ),
        );
      }
      if (def.max < AMOUNT_MAX) {
        rows.push(
          badBody(
            `amount ${def.max + 1} for ${operation}`,
            withAmount(operation, def.max + 1),
            "AMOUNT_OUT_OF_RANGE",
          ),
        );
      }
    }
  }
  return rows;
}

/**
 * Owner ids the body must not name: empty, long, control characters, path tricks, look-alikes. An owner
 * id is 1..128 letters, digits and _ . : @ -, and does not start with . : @ or -.
 */
function badBodyOwnerIds(): HostileBody[] {
  const ids: [string, string][] = [
    ["empty", ""],
    [`of ${OWNER_ID_LENGTH_MAX + 1} characters`, "a".repeat(OWNER_ID_LENGTH_MAX + 1)],
    ["of 1,000 characters", "a".repeat(1000)],
    ["with a NUL", "a\u0000b"],
    ["that is a NUL", "\u0000"],
    ["with a newline", "a\nb"],
    ["with a carriage return", "a\rb"],
    ["with a tab", "a\tb"],
    ["with a DEL", "a\u007fb"],
    ["with an escape character", "a\u001bb"],
    ["with a slash", "a/b"],
    ...RESERVED_OWNER_IDS.map((word): [string, string] => [`that is the route word ${word}`, word]),
    ["with a backslash", "a\\b"],
    ['".."', ".."],
    ['"."', "."],
    ['"../admin"', "../admin"],
    ['"a/../b"', "a/../b"],
    ['"..%2Fadmin"', "..%2Fadmin"],
    ["with %2F", "a%2Fb"],
    ["with %00", "a%00b"],
    ["with a space", "a b"],
    ["with a trailing space", "a "],
    ["starting with .", ".a"],
    ["starting with -", "-a"],
    ["starting with :", ":a"],
    ["starting with @", "@a"],
    ["with a quote", "a'b"],
    ["with a semicolon", "a;b"],
    ["with SQL in it", "x' OR '1'='1"],
    ["with ? and #", "a?b#c"],
    ["with non-ASCII letters", "jürgen"],
    ["with a zero-width space", "a\u200bb"],
    ["with a right-to-left override", "a\u202eb"],
    ["with a fullwidth letter", "ａ"],
    ["with an emoji", "a\u{1F600}"],
    ["with a lone surrogate", "a\ud800b"],
  ];
  return ids.map(([label, id]) =>
    badBody(`owner_id ${label}`, (v) => JSON.stringify({ ...v, owner_id: id })),
  );
}

/** A nonce is 1..128 printable ASCII characters, without spaces. */
function badNonces(): HostileBody[] {
  const nonces: [string, string][] = [
    ["empty", ""],
    [`of ${NONCE_LENGTH_MAX + 1} characters`, "n".repeat(NONCE_LENGTH_MAX + 1)],
    ["of 10,000 characters", "n".repeat(10_000)],
    ["with a space", "n 1"],
    ["that is a space", " "],
    ["with a tab", "n\t1"],
    ["with a newline", "n\n1"],
    ["with a NUL", "n\u00001"],
    ["with a control character (U+0001)", "n\u00011"],
    ["with a DEL", "n\u007f1"],
    ["with non-ASCII letters", "nönce"],
    ["with an emoji", "n\u{1F600}"],
    ["with a lone surrogate", "n\ud800"],
  ];
  return [
    badBody("nonce missing", omitted("nonce")),
    ...nonces.map(([label, nonce]) =>
      badBody(`nonce ${label}`, (v: PostInput) => JSON.stringify({ ...v, nonce })),
    ),
  ];
}

function badOperations({ catalog, otherAppOperations }: HostileCatalogs): HostileBody[] {
  const unknown = (name: string, operation: string): HostileBody =>
    badBody(name, (v) => JSON.stringify({ ...v, operation }), "UNKNOWN_OPERATION");
  return [
    badBody("operation missing", omitted("operation")),
    badBody("operation empty", (v) => JSON.stringify({ ...v, operation: "" })),
    badBody("operation of 65 characters", (v) => JSON.stringify({ ...v, operation: "A".repeat(65) })),
    badBody("operation of 10,000 characters", (v) => JSON.stringify({ ...v, operation: "A".repeat(10_000) })),
    unknown("an unknown operation", "FREE_MONEY"),
    ...catalog.names.map((name) => unknown(`${name} in lower case`, name.toLowerCase())),
    unknown("an operation in mixed case", "Credit_Add"),
    unknown("an operation with a trailing space", "CREDIT_ADD "),
    unknown("an operation with a NUL", "CREDIT_ADD\u0000"),
    unknown("an operation with a Cyrillic look-alike letter", "CREDIT_\u0410DD"),
    ...["__proto__", "constructor", "prototype", "toString", "hasOwnProperty", "valueOf"].map((name) =>
      unknown(`operation ${name} (an Object.prototype name)`, name),
    ),
    ...otherAppOperations.flatMap((name) => [
      unknown(`the other app's ${name}`, name),
      badBody(
        `the other app's ${name} with an amount`,
        (v) => JSON.stringify({ ...v, operation: name, amount: 5 }),
        "UNKNOWN_OPERATION",
      ),
    ]),
  ];
}

/** Keys the body must not carry: the body is a strict object. */
function extraKeys(): HostileBody[] {
  const keys = [
    "extra",
    "balance",
    "balance_after",
    "app",
    "id",
    "sequence",
    "created_at",
    "AMOUNT",
    "owner_id ",
    "",
  ];
  return [
    ...keys.map((key) =>
      badBody(`an unknown key ${JSON.stringify(key)}`, (v) => JSON.stringify({ ...v, [key]: 1 })),
    ),
    badBody("an app key naming another app (trying to write as it)", (v) =>
      JSON.stringify({ ...v, app: "another-app" }),
    ),
    badBody("a __proto__ key", rawMember("__proto__", '{"amount":1,"polluted":true}')),
    badBody("a constructor.prototype key", rawMember("constructor", '{"prototype":{"polluted":true}}')),
    badBody("__proto__ inside amount", rawMember("amount", '{"__proto__":{"polluted":true}}')),
    badBody("__proto__ inside owner_id", rawMember("owner_id", '{"__proto__":{"toString":"x"}}')),
    badBody("1,500 unknown keys", (v) => {
      const json = JSON.stringify(v);
      const keysText = Array.from({ length: 1500 }, (_, i) => `"k${i}":0`).join(",");
      return `${json.slice(0, -1)},${keysText}}`;
    }),
  ];
}

/**
 * Duplicate keys, refused as I-JSON (RFC 7493) does: a body that means one thing to a first-wins reader
 * (a proxy, a WAF, an audit log) and another to JSON.parse, which keeps the last, is not a request.
 */
function duplicateKeys(): HostileBody[] {
  const dup = (name: string, body: HostileBody["body"]): HostileBody =>
    malformed(`duplicate keys: ${name}`, body);
  return [
    dup("owner_id (first another owner)", duplicated({ owner_id: "someone_else" })),
    dup("owner_id (first one that fails validation)", duplicated({ owner_id: "../admin" })),
    dup("owner_id (twice the same)", (v) => duplicated({ owner_id: v.owner_id })(v)),
    dup("operation (first CREDIT_ADD)", duplicated({ operation: "CREDIT_ADD" })),
    dup("nonce (first another nonce)", duplicated({ nonce: "n-first" })),
    dup("amount (first 1000000)", (v) => duplicated({ amount: 1_000_000 })({ ...v, amount: 1 })),
    dup("500 copies of one key", (v) => {
      const copies = Array.from({ length: 500 }, () => `"operation":"CREDIT_ADD"`).join(",");
      return `{${copies},${JSON.stringify(v).slice(1)}`;
    }),
  ];
}

/** Syntax errors and JSON that is not an object. */
function badSyntax(): HostileBody[] {
  return [
    malformed("truncated JSON (last brace missing)", (v) => asJson(v).slice(0, -1)),
    malformed("truncated JSON (cut inside a string)", (v) => asJson(v).slice(0, 15)),
    malformed("trailing garbage", (v) => `${asJson(v)}xyz`),
    malformed("two JSON documents", (v) => `${asJson(v)}${asJson(v)}`),
    malformed("single quotes", (v) => asJson(v).replaceAll('"', "'")),
    malformed("unquoted keys", (v) => asJson(v).replace(/"(\w+)":/g, "$1:")),
    malformed("a trailing comma", (v) => `${asJson(v).slice(0, -1)},}`),
    malformed("a comment", (v) => `/* c */${asJson(v)}`),
    malformed("a raw newline inside a string", (v) => asJson(v).replace(/"owner_id":"/, '"owner_id":"a\n')),
    malformed("an invalid escape", (v) => asJson(v).replace(/"owner_id":"/, '"owner_id":"\\x41')),
    malformed("an empty body", () => ""),
    malformed("a body of whitespace", () => "   \n\t "),
    malformed("a UTF-16 body", (v) => {
      const text = asJson(v);
      const bytes = new Uint8Array(text.length * 2);
      for (let i = 0; i < text.length; i++) bytes[i * 2] = text.charCodeAt(i);
      return bytes;
    }),
    malformed("bytes that are not UTF-8", () => new Uint8Array([0xff, 0xfe, 0xfd, 0x7b, 0x7d])),
    malformed("an owner_id of bytes that are not UTF-8", (v) => {
      const [head = "", tail = ""] = asJson({ ...v, owner_id: "a\u0000b" }).split("\\u0000");
      return new Uint8Array([...encoder.encode(head), 0xc3, 0x28, ...encoder.encode(tail)]);
    }),
    badBody("JSON null", () => "null"),
    badBody("a JSON array", (v) => JSON.stringify([v])),
    badBody("an empty JSON array", () => "[]"),
    badBody("a JSON string", (v) => JSON.stringify(asJson(v))),
    badBody("a JSON number", () => "42"),
    badBody("JSON true", () => "true"),
    badBody("an empty JSON object", () => "{}"),
    badBody("owner_id missing", omitted("owner_id")),
  ];
}

/** Deep nesting, at the top and inside fields, all within the size limit. */
function deepNesting(): HostileBody[] {
  const closed = (levels: number) => `${"[".repeat(levels)}${"]".repeat(levels)}`;
  const objects = (levels: number) => `${'{"a":'.repeat(levels)}1${"}".repeat(levels)}`;
  return [
    malformed("10,000 unclosed [ levels", () => "[".repeat(10_000)),
    malformed("10,000 unclosed { levels", () => '{"a":'.repeat(3_000)),
    badBody("8,000 closed [ levels", () => closed(8_000)),
    badBody("2,500 nested objects", () => objects(2_500)),
    badBody("7,000 [ levels in amount", rawMember("amount", closed(7_000))),
    badBody("7,000 [ levels in owner_id", rawMember("owner_id", closed(7_000))),
    badBody("2,500 nested objects in an unknown key", rawMember("x", objects(2_500))),
    malformed("7,000 unclosed [ levels in nonce", rawMember("nonce", "[".repeat(7_000))),
  ];
}

function badMediaTypes(): HostileBody[] {
  const unsupported = (
    name: string,
    contentType: string | null,
    body: HostileBody["body"] = asJson,
  ): HostileBody => ({
    name,
    body,
    contentType,
    status: 415,
    code: "UNSUPPORTED_MEDIA_TYPE",
  });
  const boundary = "----hostile-boundary";
  return [
    unsupported("a JSON body sent as text/plain", "text/plain"),
    unsupported("a JSON body sent as text/plain; charset=utf-8", "text/plain; charset=utf-8"),
    unsupported("a JSON body with no content type", null),
    unsupported("a JSON body with an empty content type", ""),
    unsupported("a JSON body sent as text/json", "text/json"),
    unsupported("a JSON body sent as application/jsonx", "application/jsonx"),
    unsupported("a JSON body sent as application/xml", "application/xml"),
    unsupported("a JSON body sent as application/vnd.x+json", "application/vnd.x+json"),
    unsupported("a JSON body sent as application/json-patch+json", "application/json-patch+json"),
    unsupported("a JSON body declared as charset=latin1", "application/json; charset=latin1"),
    unsupported("a JSON body sent as application/octet-stream", "application/octet-stream"),
    unsupported("a form-urlencoded body", "application/x-www-form-urlencoded", (v) =>
      new URLSearchParams({ owner_id: v.owner_id, operation: v.operation, nonce: v.nonce }).toString(),
    ),
    unsupported("a multipart body", `multipart/form-data; boundary=${boundary}`, (v) =>
      [
        ...Object.entries(v).flatMap(([k, value]) => [
          `--${boundary}`,
          `Content-Disposition: form-data; name="${k}"`,
          "",
          String(value),
        ]),
        `--${boundary}--`,
        "",
      ].join("\r\n"),
    ),
  ];
}

function oversized(): HostileBody[] {
  const tooLarge = (name: string, padToBytes: number, extra: Partial<HostileBody> = {}): HostileBody => ({
    name,
    body: asJson,
    padToBytes,
    status: 413,
    code: "PAYLOAD_TOO_LARGE",
    ...extra,
  });
  const overLimit = BODY_SIZE_MAX_BYTES + 1;
  return [
    tooLarge(`a body of ${overLimit} bytes (valid JSON, then spaces)`, overLimit),
    tooLarge("a body of 1 MiB", 1024 * 1024),
    tooLarge(`a body of ${overLimit} bytes with neither content-length nor transfer-encoding`, overLimit, {
      contentLength: null,
    }),
    tooLarge(`a chunked body of ${overLimit} bytes, no content-length`, overLimit, { chunked: true }),
    tooLarge("a chunked body of 10 MiB, no content-length", 10 * 1024 * 1024, { chunked: true }),
    tooLarge("a small body whose content-length claims 1 GiB", 0, { contentLength: String(1024 ** 3) }),
    tooLarge("a body over the limit whose content-length claims 100 bytes", overLimit, {
      contentLength: "100",
    }),
    tooLarge("a body over the limit whose content-length is not a number", overLimit, {
      contentLength: "abc",
    }),
  ];
}

/**
 * expires_at of every wrong shape, on CREDIT_ADD (which takes one): numbers, other types, instants in the
 * past or over ten years ahead, bad offsets, leap seconds, impossible dates, 10,000 characters; and a
 * valid one on operations that take none.
 */
function badExpiries(): HostileBody[] {
  const credit = (expiresAt: unknown) => (v: PostInput) =>
    JSON.stringify({ ...v, operation: "CREDIT_ADD", expires_at: expiresAt });
  const rawCredit = (raw: string) => (v: PostInput) =>
    `${JSON.stringify({ ...v, operation: "CREDIT_ADD" }).slice(0, -1)},"expires_at":${raw}}`;
  const future = new Date(Date.now() + 86_400_000).toISOString();
  const texts: [string, string][] = [
    ["in the past", "2000-01-01T00:00:00Z"],
    ["at the epoch", "1970-01-01T00:00:00Z"],
    ["a second ago", new Date(Date.now() - 1_000).toISOString()],
    ["in 2100 (over ten years ahead)", "2100-01-01T00:00:00Z"],
    ["in 9999", "9999-12-31T23:59:59Z"],
    ["with a six-digit year", "+010000-01-01T00:00:00Z"],
    ["without an offset", "2030-01-01T00:00:00"],
    ["with offset +24:00", "2030-01-01T00:00:00+24:00"],
    ["with offset +02:60", "2030-01-01T00:00:00+02:60"],
    ["with offset +0200 (no colon)", "2030-01-01T00:00:00+0200"],
    ["with offset +2", "2030-01-01T00:00:00+2"],
    ["with a space before the offset", "2030-01-01T00:00:00 +02:00"],
    ["with UTC for Z", "2030-01-01T00:00:00UTC"],
    ["with GMT+2", "2030-01-01T00:00:00GMT+2"],
    ["with a leap second", "2030-06-30T23:59:60Z"],
    ["with a past leap second", "2016-12-31T23:59:60Z"],
    ["on February 30", "2030-02-30T00:00:00Z"],
    ["on February 29 of a common year", "2031-02-29T00:00:00Z"],
    ["in month 13", "2030-13-01T00:00:00Z"],
    ["at hour 24", "2030-01-01T24:00:00Z"],
    ["with a ten-digit fraction", "2030-01-01T00:00:00.0000000001Z"],
    ["as a date only", "2030-01-01"],
    ["with a space for T", "2030-01-01 00:00:00Z"],
    ["as a word", "tomorrow"],
    ["empty", ""],
    ["with a leading space", ` ${future}`],
    ["with a trailing newline", `${future}\n`],
    ["with a NUL", `${future}\u0000`],
    ["of 10,000 characters", `${future}${"0".repeat(10_000 - future.length)}`],
    ["of 10,000 digits", "9".repeat(10_000)],
  ];
  return [
    ...texts.map(([label, text]) => badBody(`expires_at ${label}`, credit(text))),
    badBody("expires_at as seconds since the epoch", rawCredit("1767225600")),
    badBody("expires_at as milliseconds since the epoch", rawCredit("1767225600000")),
    badBody("expires_at 0", rawCredit("0")),
    badBody("expires_at -1", rawCredit("-1")),
    badBody("expires_at null", rawCredit("null")),
    badBody("expires_at true", rawCredit("true")),
    badBody("expires_at as an object", credit({ at: future })),
    badBody("expires_at as an array", credit([future])),
    badBody(
      "expires_at on CREDIT_SPEND, which takes none",
      (v) => JSON.stringify({ ...v, expires_at: future }),
      "EXPIRY_NOT_ALLOWED",
    ),
    badBody(
      "expires_at on DAILY_REWARD, which takes none",
      (v) => JSON.stringify({ ...v, operation: "DAILY_REWARD", expires_at: future }),
      "EXPIRY_NOT_ALLOWED",
    ),
  ];
}

/** Every hostile body of POST /ledger, built around a valid CREDIT_SPEND (a batch's items reuse them). */
export function hostilePostBodies(catalogs: HostileCatalogs): HostileBody[] {
  return [
    ...badSyntax(),
    ...deepNesting(),
    ...badMediaTypes(),
    ...oversized(),
    ...wrongTypes(),
    ...badAmounts(),
    ...amountsPerOperation(catalogs.catalog),
    ...badBodyOwnerIds(),
    ...badNonces(),
    ...badOperations(catalogs),
    ...extraKeys(),
    ...duplicateKeys(),
    ...badExpiries(),
  ];
}

function postCases(catalogs: HostileCatalogs): HostileCase[] {
  const bodies = hostilePostBodies(catalogs);
  return ["/ledger", "/ledger/"].flatMap((path) =>
    bodies.map((spec): HostileCase => ({
      name: `POST ${path}: ${spec.name}`,
      request: (owner) => hostilePost(path, spec, op(owner, HOSTILE_BASE_OPERATION)),
      status: spec.status,
      code: spec.code,
    })),
  );
}

const get = (path: string): HostileRequest => ({ path, init: { method: "GET" } });

/** Owner ids in the path, for the balance and the entries route. */
function ownerPathCases(): HostileCase[] {
  // The last element, when true: the balance route only (with /entries appended the path means something else).
  const segments: [string, string, number, HttpErrorCode, boolean?][] = [
    [
      `an owner id of ${OWNER_ID_LENGTH_MAX + 1} characters`,
      "a".repeat(OWNER_ID_LENGTH_MAX + 1),
      400,
      "VALIDATION_FAILED",
    ],
    ["an owner id of 1,000 characters", "a".repeat(1000), 400, "VALIDATION_FAILED"],
    ["%00", "a%00b", 400, "VALIDATION_FAILED"],
    ["only %00", "%00", 400, "VALIDATION_FAILED"],
    ["%0A (newline)", "a%0Ab", 400, "VALIDATION_FAILED"],
    ["%0D%0A (header injection)", "a%0D%0Aset-cookie:x", 400, "VALIDATION_FAILED"],
    ["%09 (tab)", "a%09b", 400, "VALIDATION_FAILED"],
    ["%7F (DEL)", "a%7Fb", 400, "VALIDATION_FAILED"],
    ["%2F (an encoded slash)", "a%2Fb", 400, "VALIDATION_FAILED"],
    ["%2F%2E%2E%2F (an encoded /../)", "a%2F%2E%2E%2Fb", 400, "VALIDATION_FAILED"],
    ["..%2F (an encoded slash after ..)", "..%2Fadmin", 400, "VALIDATION_FAILED"],
    ["%252F (a double-encoded slash)", "a%252Fb", 400, "VALIDATION_FAILED"],
    ["%5C (an encoded backslash)", "a%5Cb", 400, "VALIDATION_FAILED"],
    ["%20 (a space)", "a%20b", 400, "VALIDATION_FAILED"],
    ["%3F and %23 (an encoded ? and #)", "a%3Fb%23c", 400, "VALIDATION_FAILED"],
    ["a semicolon", "a;b", 400, "VALIDATION_FAILED"],
    ["a quote", "a'b", 400, "VALIDATION_FAILED"],
    ["SQL in the owner id", "x'%20OR%20'1'%3D'1", 400, "VALIDATION_FAILED"],
    ["a leading -", "-a", 400, "VALIDATION_FAILED"],
    ["a leading .", ".a", 400, "VALIDATION_FAILED"],
    ["...", "...", 400, "VALIDATION_FAILED"],
    ["non-ASCII letters", "j%C3%BCrgen", 400, "VALIDATION_FAILED"],
    ["a fullwidth letter", "%EF%BD%81", 400, "VALIDATION_FAILED"],
    ["an encoded lone surrogate", "a%ED%A0%80b", 400, "VALIDATION_FAILED"],
    ["a truncated UTF-8 escape", "a%E0%A4%A", 400, "VALIDATION_FAILED"],
    ["an invalid escape", "a%zzb", 400, "VALIDATION_FAILED"],
    ["a lone %", "a%", 400, "VALIDATION_FAILED"],
    ["%FF", "a%FFb", 400, "VALIDATION_FAILED"],
    // A route word is never an owner, whichever route it would be read by (GET /ledger/events is the
    // event log itself: that word is tried on the entries route only, below).
    ...RESERVED_OWNER_IDS.filter((word) => word !== "events").map(
      (word): [string, string, number, HttpErrorCode, boolean?] => [
        `the route word ${word}`,
        word,
        400,
        "VALIDATION_FAILED",
      ],
    ),
    // Dot segments resolve (URL standard) before routing: these leave /ledger/{owner_id} altogether.
    ["..", "..", 404, "NOT_FOUND"],
    ["%2e%2e", "%2e%2e", 404, "NOT_FOUND"],
    ["%2E%2E", "%2E%2E", 404, "NOT_FOUND"],
    [".%2e", ".%2e", 404, "NOT_FOUND"],
    // a/../entries is /ledger/entries: a read of the balance of an owner called "entries", not an attack.
    ["a/.. (back to /ledger/)", "a/..", 404, "NOT_FOUND", true],
    ["../..", "../..", 404, "NOT_FOUND"],
    ["../../etc/passwd", "../../etc/passwd", 404, "NOT_FOUND"],
    ["a slash", "a/b/c", 404, "NOT_FOUND"],
    ["one slash (a/b)", "a/b", 404, "NOT_FOUND"],
    ["a backslash (a slash to the URL parser)", "a\\b\\c", 404, "NOT_FOUND"],
  ];
  const rows: HostileCase[] = [];
  for (const [label, segment, status, code, balanceOnly] of segments) {
    rows.push({
      name: `GET /ledger/{owner_id}: ${label}`,
      request: () => get(`/ledger/${segment}`),
      status,
      code,
    });
    if (balanceOnly) continue;
    rows.push({
      name: `GET /ledger/{owner_id}/entries: ${label}`,
      request: () => get(`/ledger/${segment}/entries`),
      status,
      code,
    });
  }
  rows.push({
    name: "GET /ledger/{owner_id}/entries: the route word events",
    request: () => get("/ledger/events/entries"),
    status: 400,
    code: "VALIDATION_FAILED",
  });
  return rows;
}

/** Query strings of the entries route, for an owner who has entries. */
function pageQueryCases(): HostileCase[] {
  const queries: [string, string, HttpErrorCode][] = [
    ["limit 0", "limit=0", "VALIDATION_FAILED"],
    ["limit -1", "limit=-1", "VALIDATION_FAILED"],
    ["limit -0", "limit=-0", "VALIDATION_FAILED"],
    [`limit ${PAGE_SIZE_MAX + 1}`, `limit=${PAGE_SIZE_MAX + 1}`, "VALIDATION_FAILED"],
    ["limit 1.5", "limit=1.5", "VALIDATION_FAILED"],
    ["limit 2^53", `limit=${2 ** 53}`, "VALIDATION_FAILED"],
    ["limit 1e400", "limit=1e400", "VALIDATION_FAILED"],
    ["limit of 400 digits", `limit=${"9".repeat(400)}`, "VALIDATION_FAILED"],
    ["limit NaN", "limit=NaN", "VALIDATION_FAILED"],
    ["limit Infinity", "limit=Infinity", "VALIDATION_FAILED"],
    ["limit 0x10", "limit=0x10", "VALIDATION_FAILED"],
    ["limit 1e2", "limit=1e2", "VALIDATION_FAILED"],
    ["limit 10.0", "limit=10.0", "VALIDATION_FAILED"],
    ["limit with a leading space", "limit=%2010", "VALIDATION_FAILED"],
    ["limit abc", "limit=abc", "VALIDATION_FAILED"],
    ["limit true", "limit=true", "VALIDATION_FAILED"],
    ["an empty limit", "limit=", "VALIDATION_FAILED"],
    ["limit %00", "limit=%00", "VALIDATION_FAILED"],
    ["limit twice", "limit=1&limit=2", "VALIDATION_FAILED"],
    ["cursor twice", "cursor=czox&cursor=czoy", "VALIDATION_FAILED"],
    ["a cursor of 65 characters", `cursor=${"A".repeat(65)}`, "VALIDATION_FAILED"],
    ["a cursor of 1,000 characters", `cursor=${"A".repeat(1000)}`, "VALIDATION_FAILED"],
    ["an empty cursor", "cursor=", "INVALID_CURSOR"],
    ["a cursor that decodes to nothing", "cursor=zzz", "INVALID_CURSOR"],
    ["a cursor with characters outside base64url", "cursor=s%3A1%21", "INVALID_CURSOR"],
    ["a cursor with %00", "cursor=czox%00", "INVALID_CURSOR"],
    ["a cursor with a space", "cursor=czo%20x", "INVALID_CURSOR"],
    ["a cursor with non-ASCII", "cursor=%C3%BC", "INVALID_CURSOR"],
    ["a cursor with base64 padding", `cursor=${Buffer.from("s:1").toString("base64")}=`, "INVALID_CURSOR"],
    ["a forged cursor at 0", `cursor=${forgeCursor("s:0")}`, "INVALID_CURSOR"],
    ["a forged negative cursor", `cursor=${forgeCursor("s:-1")}`, "INVALID_CURSOR"],
    ["a forged cursor with a leading zero", `cursor=${forgeCursor("s:01")}`, "INVALID_CURSOR"],
    ["a forged cursor in exponent form", `cursor=${forgeCursor("s:1e3")}`, "INVALID_CURSOR"],
    ["a forged cursor with SQL", `cursor=${forgeCursor("s:1 or 1=1")}`, "INVALID_CURSOR"],
    ["a forged cursor with a NUL", `cursor=${forgeCursor("s:1\u0000")}`, "INVALID_CURSOR"],
    ["a forged cursor past 2^53", `cursor=${forgeCursor("s:99999999999999999")}`, "INVALID_CURSOR"],
    ["a forged cursor of another format", `cursor=${forgeCursor("id:1")}`, "INVALID_CURSOR"],
    ...badInstantQueries("from"),
    ...badInstantQueries("to"),
    ["from after to", "from=2030-01-02T00:00:00Z&to=2030-01-01T00:00:00Z", "VALIDATION_FAILED"],
    ["an empty app", "app=", "VALIDATION_FAILED"],
    ["an app of 65 characters", `app=${"a".repeat(65)}`, "VALIDATION_FAILED"],
    ["an empty operation", "operation=", "VALIDATION_FAILED"],
    ["an operation of 65 characters", `operation=${"A".repeat(65)}`, "VALIDATION_FAILED"],
    ["operation twice", "operation=CREDIT_ADD&operation=CREDIT_SPEND", "VALIDATION_FAILED"],
  ];
  const balanceQueries: [string, string, HttpErrorCode][] = [
    ...badInstantQueries("at"),
    [
      "at in the future",
      `at=${encodeURIComponent(new Date(Date.now() + 86_400_000).toISOString())}`,
      "VALIDATION_FAILED",
    ],
    ["at in 9999", "at=9999-12-31T23:59:59Z", "VALIDATION_FAILED"],
  ];
  return [
    ...queries.map(([label, query, code]): HostileCase => ({
      name: `GET /ledger/{owner_id}/entries: ${label}`,
      request: (owner) => get(`/ledger/${owner}/entries?${query}`),
      status: 400,
      code,
    })),
    ...balanceQueries.map(([label, query, code]): HostileCase => ({
      name: `GET /ledger/{owner_id}: ${label}`,
      request: (owner) => get(`/ledger/${owner}?${query}`),
      status: 400,
      code,
    })),
  ];
}

/** Query values that are not an instant, for a parameter that takes one. */
function badInstantQueries(name: string): [string, string, HttpErrorCode][] {
  const values: [string, string][] = [
    ["empty", ""],
    ["a number", "1767225600"],
    ["without an offset", "2026-01-01T00:00:00"],
    ["with a leap second", "2016-12-31T23:59:60Z"],
    ["on February 30", "2026-02-30T00:00:00Z"],
    ["a word", "yesterday"],
    ["of 10,000 characters", "9".repeat(10_000)],
  ];
  return [
    ...values.map(([label, value]): [string, string, HttpErrorCode] => [
      `${name} ${label}`,
      `${name}=${encodeURIComponent(value)}`,
      "VALIDATION_FAILED",
    ]),
    [`${name} twice`, `${name}=2026-01-01T00:00:00Z&${name}=2026-01-02T00:00:00Z`, "VALIDATION_FAILED"],
  ];
}

/** Routes that do not exist and methods a route does not take: 404, even with a valid body. */
function unknownRouteCases(): HostileCase[] {
  // [method, path, and optionally: the path as the case's name shows it when not the path itself, and
  // body: false to send a method that takes a body without one]
  const routes: [string, (owner: string) => string, { shown?: string; body?: false }?][] = [
    ["PUT", () => "/ledger"],
    ["PUT", () => "/ledger", { body: false }],
    ["PATCH", () => "/ledger"],
    ["DELETE", () => "/ledger"],
    ["OPTIONS", () => "/ledger"],
    ["GET", () => "/ledger"],
    ["GET", () => "/ledger/"],
    ["GET", () => "/ledger//entries"],
    ["DELETE", () => "/ledger/x"],
    ["DELETE", (owner) => `/ledger/${owner}`],
    ["DELETE", () => "/ledger/someone", { body: false }],
    ["PUT", (owner) => `/ledger/${owner}`],
    ["PATCH", (owner) => `/ledger/${owner}`],
    ["POST", (owner) => `/ledger/${owner}`],
    ["POST", (owner) => `/ledger/${owner}/entries`],
    ["DELETE", (owner) => `/ledger/${owner}/entries`],
    ["GET", (owner) => `/ledger/${owner}/entries/1`],
    ["GET", (owner) => `/ledger/${owner}/balance`],
    ["POST", () => "/ledgers"],
    ["POST", () => "/LEDGER"],
    ["POST", () => "/ledger/post"],
    ["POST", () => "/v1/ledger"],
    ["GET", () => "/nope"],
    ["GET", () => "/admin"],
    ["GET", () => "/docs/index.html"],
    ["GET", () => "/docs/..%2F..%2Fpackage.json"],
    ["GET", () => "/redoc/..%2F..%2Fpackage.json"],
    ["GET", () => "/redoc/redoc.standalone.js.map"],
    ["GET", () => "/.env"],
    ["GET", () => "/ledger/../../etc/passwd"],
    ["GET", () => `/${"x".repeat(1000)}`, { shown: "/x...x (1,000 characters)" }],
  ];
  return routes.map(([method, path, { shown, body } = {}]) => ({
    name: `${method} ${shown ?? path("{owner_id}")}${body === false ? ", no body" : ""}: no such route`,
    request: (owner): HostileRequest => {
      const bodyAllowed = method !== "GET" && body !== false;
      return {
        path: path(owner),
        init: bodyAllowed
          ? { method, headers: JSON_HEADERS, body: JSON.stringify(op(owner, HOSTILE_BASE_OPERATION)) }
          : { method },
      };
    },
    status: 404,
    code: "NOT_FOUND",
  }));
}

/**
 * Every hostile request for one app, over every route: POST /ledger and POST /ledger/ (body syntax,
 * media type, size, nesting, every field's type and value, operations, extra and duplicate keys), GET
 * /ledger/{owner_id} and /entries (path tricks, cursor and limit), and routes or methods that do not exist.
 */
export function hostileCases(catalogs: HostileCatalogs): HostileCase[] {
  return [
    ...postCases(catalogs),
    ...ownerPathCases(),
    ...pageQueryCases(),
    ...unknownRouteCases(),
    ...holdHostileCases(catalogs),
    ...suspensionHostileCases(),
    ...batchHostileCases(catalogs),
    ...reversalTransferHostileCases(),
  ];
}

/**
 * Runs one hostile case against an app: an owner with credits, the request, then the exact problem
 * (never a 5xx, no leak), the owner's balance and entries, every table's row count and the balance
 * total unchanged, and Object.prototype unpolluted.
 */
export async function expectHostileRefused(
  app: RequestApp,
  db: LedgerDb,
  hostile: HostileCase,
): Promise<void> {
  const owner = freshOwner("hostile");
  await apply(app, op(owner, "CREDIT_ADD"));
  const holdId = hostile.needsHold ? await placeHostileHold(app, owner) : undefined;
  const snapshot = async () => ({ owner: await ownerState(app, owner), totals: await ledgerTotals(db) });
  const before = await snapshot();
  // CREDIT_ADD, a shared operation, gives 10: the CREDIT_SPEND each POST is built around is affordable.
  expect(before.owner).toEqual({ balance: 10, entryCount: holdId === undefined ? 1 : 2 });
  const prototypeKeys = Object.getOwnPropertyNames(Object.prototype);

  const { path, init } = hostile.request(owner, holdId);
  await expectRefusal(await app.request(path, init), hostile.status, hostile.code);

  expect(Object.getOwnPropertyNames(Object.prototype)).toEqual(prototypeKeys);
  expect(await snapshot()).toEqual(before);
}
