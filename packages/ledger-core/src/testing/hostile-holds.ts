// Hostile input over the hold routes: rows of the one hostile vocabulary (hostile.ts gathers them).
// POST /ledger/holds bodies are built around a valid hold of CREDIT_SPEND for an owner holding credits, so
// a body wrongly accepted shows as a write; capture and release rows are sent for a live hold of that
// owner (`needsHold`), so a wrongly accepted capture or release shows as a write too.
import type { HttpErrorCode } from "../http/problem.js";
import { HOLD_EXPIRES_IN_S_MAX } from "../domain/holds.js";
import { RESERVED_OWNER_IDS } from "../domain/input.js";
import {
  AMOUNT_MAX,
  BODY_SIZE_MAX_BYTES,
  NONCE_LENGTH_MAX,
  OWNER_ID_LENGTH_MAX,
  PAGE_SIZE_MAX,
} from "../domain/limits.js";
import { freshNonce } from "./index.js";
import {
  forgeCursor,
  hostilePost,
  type HostileBody,
  type HostileCase,
  type HostileCatalogs,
  type HostileRequest,
  type RawBody,
} from "./hostile.js";
import { expect } from "vitest";
import { JSON_HEADERS, op, type RequestApp } from "./requests.js";

/** The debit every hold row is built around: shared, so every catalog has it, and affordable. */
const HOLD_OPERATION = "CREDIT_SPEND";

/** A hold id no hold has: well formed, never issued (UUIDs are random, this one is written by hand). */
export const UNKNOWN_HOLD_ID = "3d6f0c2a-8b1e-4c7d-9f2a-5e4b3c2d1a0f";

/** Places the live hold a `needsHold` row is sent for; returns its id. */
export async function placeHostileHold(app: RequestApp, owner: string): Promise<string> {
  const res = await app.request("/ledger/holds", {
    method: "POST",
    headers: { ...JSON_HEADERS },
    body: JSON.stringify({ owner_id: owner, operation: HOLD_OPERATION, nonce: freshNonce() }),
  });
  const text = await res.text();
  expect(res.status, text).toBe(201);
  const id = (JSON.parse(text) as { hold?: { id?: unknown } }).hold?.id;
  if (typeof id !== "string") throw new Error(`no hold id in ${text}`);
  return id;
}

/** How a raw body is sent: what HostileBody says besides the body itself. */
type Sending = Pick<HostileBody, "contentType" | "padToBytes" | "chunked" | "contentLength">;

/** A POST of exactly these bytes, with hostilePost's sending rules. */
function rawPost(path: string, body: RawBody, sending: Sending = {}): HostileRequest {
  const spec: HostileBody = { name: "", body: () => body, status: 0, code: "BAD_REQUEST", ...sending };
  return hostilePost(path, spec, op("unused", HOLD_OPERATION));
}

interface BodyRow {
  name: string;
  /** The body, from the valid one as an object (a fresh nonce each time). */
  body: (valid: Record<string, unknown>) => RawBody;
  sending?: Sending;
  status: number;
  code: HttpErrorCode;
}

const asJson = (v: Record<string, unknown>) => JSON.stringify(v);
const bad = (name: string, body: BodyRow["body"], code: HttpErrorCode = "VALIDATION_FAILED"): BodyRow => ({
  name,
  body,
  status: 400,
  code,
});
const withValue = (key: string, value: unknown) => (v: Record<string, unknown>) =>
  JSON.stringify({ ...v, [key]: value });
const withRaw = (key: string, raw: string) => (v: Record<string, unknown>) => {
  const rest = JSON.stringify(Object.fromEntries(Object.entries(v).filter(([k]) => k !== key)));
  return `${rest.slice(0, -1)},${JSON.stringify(key)}:${raw}}`;
};
const without = (key: string) => (v: Record<string, unknown>) =>
  JSON.stringify(Object.fromEntries(Object.entries(v).filter(([k]) => k !== key)));
const duplicated = (first: Record<string, unknown>) => (v: Record<string, unknown>) =>
  `{${JSON.stringify(first).slice(1, -1)},${JSON.stringify(v).slice(1)}`;

/** What every write body must survive: syntax, media type, size, duplicate keys, prototype keys. */
function envelopeRows(): BodyRow[] {
  const sent = (name: string, sending: Sending, status: number, code: HttpErrorCode): BodyRow => ({
    name,
    body: asJson,
    sending,
    status,
    code,
  });
  return [
    bad("truncated JSON", (v) => asJson(v).slice(0, -1), "MALFORMED_JSON"),
    bad("trailing garbage", (v) => `${asJson(v)}xyz`, "MALFORMED_JSON"),
    bad("an empty body", () => "", "MALFORMED_JSON"),
    bad("single quotes", (v) => asJson(v).replaceAll('"', "'"), "MALFORMED_JSON"),
    bad("bytes that are not UTF-8", () => new Uint8Array([0xff, 0xfe, 0x7b, 0x7d]), "MALFORMED_JSON"),
    bad("3,000 unclosed { levels", () => `{"a":`.repeat(3_000), "MALFORMED_JSON"),
    bad("JSON null", () => "null"),
    bad("a JSON array of the valid body", (v) => `[${asJson(v)}]`),
    bad("a JSON string of the valid body", (v) => JSON.stringify(asJson(v))),
    bad("an empty JSON object", () => "{}"),
    sent("a JSON body sent as text/plain", { contentType: "text/plain" }, 415, "UNSUPPORTED_MEDIA_TYPE"),
    sent("a JSON body with no content type", { contentType: null }, 415, "UNSUPPORTED_MEDIA_TYPE"),
    sent(
      "a JSON body in latin1",
      { contentType: "application/json; charset=latin1" },
      415,
      "UNSUPPORTED_MEDIA_TYPE",
    ),
    sent(
      `a body of ${BODY_SIZE_MAX_BYTES + 1} bytes`,
      { padToBytes: BODY_SIZE_MAX_BYTES + 1 },
      413,
      "PAYLOAD_TOO_LARGE",
    ),
    sent(
      "a chunked body of 10 MiB, no content-length",
      { padToBytes: 10 * 1024 * 1024, chunked: true },
      413,
      "PAYLOAD_TOO_LARGE",
    ),
    sent(
      "a small body whose content-length claims 1 GiB",
      { contentLength: String(1024 ** 3) },
      413,
      "PAYLOAD_TOO_LARGE",
    ),
    bad("duplicate keys: nonce", (v) => duplicated({ nonce: "n-first" })(v), "MALFORMED_JSON"),
    bad("a __proto__ key", withRaw("__proto__", '{"polluted":true}')),
    bad("a constructor.prototype key", withRaw("constructor", '{"prototype":{"polluted":true}}')),
    bad("an app key naming another app", withValue("app", "another-app")),
    bad("nonce missing", without("nonce")),
    ...(
      [
        ["empty", ""],
        [`of ${NONCE_LENGTH_MAX + 1} characters`, "n".repeat(NONCE_LENGTH_MAX + 1)],
        ["with a space", "n 1"],
        ["with a NUL", "n\u00001"],
        ["with non-ASCII letters", "nönce"],
        ["as a number", 42],
        ["as null", null],
        ["as an array", ["n-1"]],
      ] as [string, unknown][]
    ).map(([label, nonce]) => bad(`nonce ${label}`, withValue("nonce", nonce))),
  ];
}

/** Amounts that are no magnitude of credits, whatever the hold. */
function badAmountRows(): BodyRow[] {
  return [
    bad("amount -1", withRaw("amount", "-1")),
    bad("amount 1.5", withRaw("amount", "1.5")),
    bad("amount 1.0 (raw text)", withRaw("amount", "1.0")),
    bad("amount 1e0 (raw text)", withRaw("amount", "1e0")),
    bad(`amount ${AMOUNT_MAX + 1} (AMOUNT_MAX + 1)`, withRaw("amount", String(AMOUNT_MAX + 1))),
    bad("amount 2^63 (raw text)", withRaw("amount", "9223372036854775808")),
    bad("amount 1e400 (raw text)", withRaw("amount", "1e400")),
    bad('amount as the string "1"', withValue("amount", "1")),
    bad("amount null", withValue("amount", null)),
    bad("amount true", withValue("amount", true)),
    bad("amount as an array", withValue("amount", [1])),
    bad("amount NaN (raw text)", withRaw("amount", "NaN"), "MALFORMED_JSON"),
    bad("amount 0x1 (raw text)", withRaw("amount", "0x1"), "MALFORMED_JSON"),
  ];
}

function placeRows({ catalog, otherAppOperations }: HostileCatalogs): BodyRow[] {
  const ownerIds: [string, unknown][] = [
    ["empty", ""],
    [`of ${OWNER_ID_LENGTH_MAX + 1} characters`, "a".repeat(OWNER_ID_LENGTH_MAX + 1)],
    ["with a NUL", "a\u0000b"],
    ["with a slash", "a/b"],
    ['"../admin"', "../admin"],
    ["with a space", "a b"],
    ["with SQL in it", "x' OR '1'='1"],
    ["with non-ASCII letters", "jürgen"],
    ["as a number", 42],
    ["as null", null],
    ...RESERVED_OWNER_IDS.map((w): [string, unknown] => [`that is the route word ${w}`, w]),
  ];
  const unholdable = catalog.names.filter((name) => {
    const def = catalog.get(name);
    if (!def) return false;
    const debit = def.kind === "fixed" ? def.amount < 0 : def.direction === "debit";
    return !debit || def.limit !== undefined;
  });
  const expiries: [string, string][] = [
    ["0", "0"],
    ["-1", "-1"],
    ["-0", "-0"],
    [`${HOLD_EXPIRES_IN_S_MAX + 1} (a week and a second)`, String(HOLD_EXPIRES_IN_S_MAX + 1)],
    ["2^31", String(2 ** 31)],
    ["2^53 + 1 (raw text)", "9007199254740993"],
    ["1.5", "1.5"],
    ["900.0 (raw text)", "900.0"],
    ["9e2 (raw text)", "9e2"],
    ['as the string "900"', '"900"'],
    ["null", "null"],
    ["true", "true"],
    ["as an array", "[900]"],
    ["as an object", '{"s":900}'],
  ];
  return [
    ...envelopeRows(),
    ...badAmountRows(),
    bad(`amount 2 for ${HOLD_OPERATION} (whose amount is 1)`, withValue("amount", 2), "AMOUNT_MISMATCH"),
    bad(`amount 0 for ${HOLD_OPERATION}`, withValue("amount", 0), "AMOUNT_MISMATCH"),
    bad("owner_id missing", without("owner_id")),
    ...ownerIds.map(([label, id]) => bad(`owner_id ${label}`, withValue("owner_id", id))),
    bad(
      "duplicate keys: owner_id (first another owner)",
      duplicated({ owner_id: "someone_else" }),
      "MALFORMED_JSON",
    ),
    bad(
      "duplicate keys: operation (first CREDIT_ADD)",
      duplicated({ operation: "CREDIT_ADD" }),
      "MALFORMED_JSON",
    ),
    bad(
      "duplicate keys: expires_in_s",
      (v) => duplicated({ expires_in_s: 1 })({ ...v, expires_in_s: 60 }),
      "MALFORMED_JSON",
    ),
    bad("operation missing", without("operation")),
    bad("operation empty", withValue("operation", "")),
    bad("operation of 10,000 characters", withValue("operation", "A".repeat(10_000))),
    bad("operation as a number", withValue("operation", 7)),
    ...[
      "FREE_MONEY",
      "credit_spend",
      "CREDIT_SPEND ",
      "HOLD",
      "HOLD_RELEASE",
      "EXPIRY",
      "__proto__",
      "constructor",
      ...otherAppOperations,
    ].map((name) =>
      bad(`operation ${JSON.stringify(name)}`, withValue("operation", name), "UNKNOWN_OPERATION"),
    ),
    ...unholdable.map((name) => bad(`operation ${name}, which cannot be held`, withValue("operation", name))),
    ...expiries.map(([label, raw]) => bad(`expires_in_s ${label}`, withRaw("expires_in_s", raw))),
    ...[
      "id",
      "hold_id",
      "status",
      "expires_at",
      "captured_amount",
      "balance",
      "created_at",
      "EXPIRES_IN_S",
    ].map((key) =>
      bad(
        `an unknown key ${JSON.stringify(key)}`,
        withValue(key, key === "expires_at" ? "2030-01-01T00:00:00Z" : 1),
      ),
    ),
  ];
}

function captureRows(): BodyRow[] {
  return [
    ...envelopeRows(),
    ...badAmountRows(),
    bad(`amount 0 for a hold of ${HOLD_OPERATION}`, withValue("amount", 0), "AMOUNT_MISMATCH"),
    {
      name: "amount 2, more than the hold holds",
      body: withValue("amount", 2),
      status: 422,
      code: "CAPTURE_EXCEEDS_HOLD",
    },
    {
      name: `amount ${AMOUNT_MAX}, more than the hold holds`,
      body: withValue("amount", AMOUNT_MAX),
      status: 422,
      code: "CAPTURE_EXCEEDS_HOLD",
    },
    ...["owner_id", "operation", "hold_id", "expires_in_s", "status", "captured_amount"].map((key) =>
      bad(`an unknown key ${JSON.stringify(key)}`, withValue(key, key === "owner_id" ? "someone_else" : 1)),
    ),
    bad(
      "duplicate keys: amount (first 1000000)",
      (v) => duplicated({ amount: 1_000_000 })({ ...v, amount: 1 }),
      "MALFORMED_JSON",
    ),
  ];
}

function releaseRows(): BodyRow[] {
  return [
    ...envelopeRows(),
    ...["amount", "owner_id", "operation", "hold_id", "status", "reason"].map((key) =>
      bad(`an unknown key ${JSON.stringify(key)}`, withValue(key, key === "amount" ? 1 : "x")),
    ),
  ];
}

/** Hold ids in the path that the ledger never issues (400), one it could have but did not (404), and paths that leave the route. */
function holdIdSegments(): [string, string, number, HttpErrorCode][] {
  const upper = UNKNOWN_HOLD_ID.toUpperCase();
  return [
    ["a word", "not-a-hold", 400, "VALIDATION_FAILED"],
    ["a UUID in upper case", upper, 400, "VALIDATION_FAILED"],
    ["a version 1 UUID", "3d6f0c2a-8b1e-1c7d-9f2a-5e4b3c2d1a0f", 400, "VALIDATION_FAILED"],
    ["a UUID without dashes", UNKNOWN_HOLD_ID.replaceAll("-", ""), 400, "VALIDATION_FAILED"],
    ["a UUID in braces", `%7B${UNKNOWN_HOLD_ID}%7D`, 400, "VALIDATION_FAILED"],
    ["a UUID and one character more", `${UNKNOWN_HOLD_ID}0`, 400, "VALIDATION_FAILED"],
    ["a UUID with a trailing %20", `${UNKNOWN_HOLD_ID}%20`, 400, "VALIDATION_FAILED"],
    ["a UUID with %00", `${UNKNOWN_HOLD_ID}%00`, 400, "VALIDATION_FAILED"],
    ["1,000 characters", "a".repeat(1000), 400, "VALIDATION_FAILED"],
    ["%0D%0A (header injection)", "a%0D%0Aset-cookie:x", 400, "VALIDATION_FAILED"],
    ["SQL", "x'%20OR%20'1'%3D'1", 400, "VALIDATION_FAILED"],
    ["%2F (an encoded slash)", "a%2Fb", 400, "VALIDATION_FAILED"],
    ["non-ASCII letters", "j%C3%BCrgen", 400, "VALIDATION_FAILED"],
    ["an invalid escape", "a%zzb", 400, "VALIDATION_FAILED"],
    ["the route word holds", "holds", 400, "VALIDATION_FAILED"],
    ["a hold id never issued", UNKNOWN_HOLD_ID, 404, "HOLD_NOT_FOUND"],
    ["a slash (a/b)", "a/b", 404, "NOT_FOUND"],
    ["..", "..", 404, "NOT_FOUND"],
    ["%2e%2e", "%2e%2e", 404, "NOT_FOUND"],
  ];
}

function listQueryRows(): [string, string, HttpErrorCode][] {
  return [
    ["status bogus", "status=bogus", "VALIDATION_FAILED"],
    ["status ACTIVE", "status=ACTIVE", "VALIDATION_FAILED"],
    ["an empty status", "status=", "VALIDATION_FAILED"],
    ["status twice", "status=active&status=expired", "VALIDATION_FAILED"],
    ["status with %00", "status=active%00", "VALIDATION_FAILED"],
    ["limit 0", "limit=0", "VALIDATION_FAILED"],
    [`limit ${PAGE_SIZE_MAX + 1}`, `limit=${PAGE_SIZE_MAX + 1}`, "VALIDATION_FAILED"],
    ["limit 1.5", "limit=1.5", "VALIDATION_FAILED"],
    ["limit abc", "limit=abc", "VALIDATION_FAILED"],
    ["limit twice", "limit=1&limit=2", "VALIDATION_FAILED"],
    ["a cursor of 65 characters", `cursor=${"A".repeat(65)}`, "VALIDATION_FAILED"],
    ["an empty cursor", "cursor=", "INVALID_CURSOR"],
    ["a cursor that decodes to nothing", "cursor=zzz", "INVALID_CURSOR"],
    ["a forged cursor at 0", `cursor=${forgeCursor("s:0")}`, "INVALID_CURSOR"],
    ["a forged cursor with SQL", `cursor=${forgeCursor("s:1 or 1=1")}`, "INVALID_CURSOR"],
    ["a forged cursor past 2^53", `cursor=${forgeCursor("s:99999999999999999")}`, "INVALID_CURSOR"],
  ];
}

const needHold = (holdId: string | undefined): string => {
  if (holdId === undefined) throw new Error("this row is sent for a live hold (needsHold)");
  return holdId;
};

/** Every hostile request over the hold routes. */
export function holdHostileCases(catalogs: HostileCatalogs): HostileCase[] {
  const rows: HostileCase[] = [];
  const placeValid = (owner: string) => ({ owner_id: owner, operation: HOLD_OPERATION, nonce: freshNonce() });
  for (const path of ["/ledger/holds", "/ledger/holds/"]) {
    for (const row of placeRows(catalogs)) {
      rows.push({
        name: `POST ${path}: ${row.name}`,
        request: (owner) => rawPost(path, row.body(placeValid(owner)), row.sending),
        status: row.status,
        code: row.code,
      });
    }
  }
  for (const [route, bodies] of [
    ["capture", captureRows()],
    ["release", releaseRows()],
  ] as const) {
    for (const row of bodies) {
      rows.push({
        name: `POST /ledger/holds/{hold_id}/${route}: ${row.name}`,
        needsHold: true,
        request: (_, holdId) =>
          rawPost(
            `/ledger/holds/${needHold(holdId)}/${route}`,
            row.body({ nonce: freshNonce() }),
            row.sending,
          ),
        status: row.status,
        code: row.code,
      });
    }
    for (const [label, segment, status, code] of holdIdSegments()) {
      rows.push({
        name: `POST /ledger/holds/{hold_id}/${route}: ${label}`,
        request: () => rawPost(`/ledger/holds/${segment}/${route}`, JSON.stringify({ nonce: freshNonce() })),
        status,
        code,
      });
    }
  }
  for (const [label, segment, status, code] of holdIdSegments()) {
    rows.push({
      name: `GET /ledger/holds/{hold_id}: ${label}`,
      request: () => ({ path: `/ledger/holds/${segment}`, init: { method: "GET" } }),
      status,
      code,
    });
  }
  const owners: [string, string, number, HttpErrorCode][] = [
    ...RESERVED_OWNER_IDS.filter((w) => w !== "holds").map((w): [string, string, number, HttpErrorCode] => [
      `the route word ${w}`,
      w,
      400,
      "VALIDATION_FAILED",
    ]),
    [
      `an owner id of ${OWNER_ID_LENGTH_MAX + 1} characters`,
      "a".repeat(OWNER_ID_LENGTH_MAX + 1),
      400,
      "VALIDATION_FAILED",
    ],
    ["%00", "a%00b", 400, "VALIDATION_FAILED"],
    ["%2F (an encoded slash)", "a%2Fb", 400, "VALIDATION_FAILED"],
    ["SQL", "x'%20OR%20'1'%3D'1", 400, "VALIDATION_FAILED"],
    ["a leading -", "-a", 400, "VALIDATION_FAILED"],
    ["a slash (a/b)", "a/b", 404, "NOT_FOUND"],
  ];
  for (const [label, segment, status, code] of owners) {
    rows.push({
      name: `GET /ledger/{owner_id}/holds: ${label}`,
      request: () => ({ path: `/ledger/${segment}/holds`, init: { method: "GET" } }),
      status,
      code,
    });
  }
  for (const [label, query, code] of listQueryRows()) {
    rows.push({
      name: `GET /ledger/{owner_id}/holds: ${label}`,
      request: (owner) => ({ path: `/ledger/${owner}/holds?${query}`, init: { method: "GET" } }),
      status: 400,
      code,
    });
  }
  const elsewhere: [string, (owner: string, holdId: string) => string, boolean?][] = [
    ["PUT", () => "/ledger/holds"],
    ["DELETE", () => "/ledger/holds"],
    ["PATCH", () => "/ledger/holds"],
    ["DELETE", (_, h) => `/ledger/holds/${h}`, true],
    ["PUT", (_, h) => `/ledger/holds/${h}`, true],
    ["PATCH", (_, h) => `/ledger/holds/${h}`, true],
    ["POST", (_, h) => `/ledger/holds/${h}`, true],
    ["GET", (_, h) => `/ledger/holds/${h}/capture`, true],
    ["GET", (_, h) => `/ledger/holds/${h}/release`, true],
    ["PUT", (_, h) => `/ledger/holds/${h}/capture`, true],
    ["DELETE", (_, h) => `/ledger/holds/${h}/release`, true],
    ["POST", (_, h) => `/ledger/holds/${h}/cancel`, true],
    ["POST", (_, h) => `/ledger/holds/${h}/capture/now`, true],
    ["POST", (_, h) => `/ledger/holds/${h}/CAPTURE`, true],
    ["POST", (o) => `/ledger/${o}/holds`],
    ["DELETE", (o) => `/ledger/${o}/holds`],
  ];
  for (const [method, path, withHold] of elsewhere) {
    rows.push({
      name: `${method} ${path("{owner_id}", "{hold_id}")}: no such route`,
      ...(withHold ? { needsHold: true } : {}),
      request: (owner, holdId) => ({
        path: path(owner, withHold ? needHold(holdId) : ""),
        init:
          method === "GET"
            ? { method }
            : {
                method,
                headers: { ...JSON_HEADERS },
                body: JSON.stringify({ owner_id: owner, operation: HOLD_OPERATION, nonce: freshNonce() }),
              },
      }),
      status: 404,
      code: "NOT_FOUND",
    });
  }
  return rows;
}
