// Hostile input for POST /ledger/{owner_id}/suspension and /reinstatement: rows of the one hostile
// vocabulary (hostile.ts gathers them). Each is sent for an owner holding credits and must be refused
// with its exact problem and nothing written: a wrongly accepted suspension writes an entry.
import type { HttpErrorCode } from "../http/problem.js";
import {
  BODY_SIZE_MAX_BYTES,
  NONCE_LENGTH_MAX,
  OWNER_ID_LENGTH_MAX,
  REASON_LENGTH_MAX,
} from "../domain/limits.js";
import { RESERVED_OWNER_IDS } from "../domain/input.js";
import { freshNonce } from "./index.js";
import {
  hostilePost,
  type HostileBody,
  type HostileCase,
  type HostileRequest,
  type RawBody,
} from "./hostile.js";
import { op } from "./requests.js";

type StatusRoute = "suspension" | "reinstatement";

/** How a raw body is sent: what HostileBody says besides the body itself. */
type Sending = Pick<HostileBody, "contentType" | "padToBytes" | "chunked" | "contentLength">;

/** A POST of exactly these bytes (hostilePost's sending rules: padding, chunks, content-length lies). */
export function rawRequest(path: string, body: RawBody, sending: Sending = {}): HostileRequest {
  const spec: HostileBody = { name: "", body: () => body, status: 0, code: "BAD_REQUEST", ...sending };
  // The valid post hostilePost builds around is not used: the body ignores it.
  return hostilePost(path, spec, op("unused", "CREDIT_SPEND"));
}

interface BodyRow {
  name: string;
  /** The body for a fresh nonce; a string is sent as it is. */
  body: (nonce: string) => RawBody;
  sending?: Sending;
  status: number;
  code: HttpErrorCode;
  /** Only for this route (a missing reason is fine for a reinstatement). */
  only?: StatusRoute;
}

const json = (value: Record<string, unknown>) => (nonce: string) =>
  JSON.stringify({ reason: "hostile", nonce, ...value });
const without = (key: string) => (nonce: string) =>
  JSON.stringify(Object.fromEntries(Object.entries({ reason: "hostile", nonce }).filter(([k]) => k !== key)));
const valid = (nonce: string) => JSON.stringify({ reason: "hostile", nonce });

const bad = (name: string, body: BodyRow["body"], code: HttpErrorCode = "VALIDATION_FAILED"): BodyRow => ({
  name,
  body,
  status: 400,
  code,
});

function bodyRows(): BodyRow[] {
  const reasons: [string, unknown][] = [
    ["empty", ""],
    ["of spaces only", "   "],
    [`of ${REASON_LENGTH_MAX + 1} characters`, "r".repeat(REASON_LENGTH_MAX + 1)],
    ["of 10,000 characters", "r".repeat(10_000)],
    ["with a NUL", "a\u0000b"],
    ["with a newline (a forged log line)", "ok\nOWNER REINSTATED"],
    ["with a carriage return", "a\rb"],
    ["with a tab", "a\tb"],
    ["with an escape character", "a\u001b[31mb"],
    ["with a DEL", "a\u007fb"],
    ["with a C1 control (U+0085)", "a\u0085b"],
    ["with a right-to-left override", "a\u202eb"],
    ["with a left-to-right isolate", "a\u2066b"],
    ["with a lone surrogate", "a\ud800b"],
    ["as a number", 42],
    ["as null", null],
    ["as true", true],
    ["as an array", ["fraud"]],
    ["as an object", { text: "fraud" }],
  ];
  const nonces: [string, unknown][] = [
    ["empty", ""],
    [`of ${NONCE_LENGTH_MAX + 1} characters`, "n".repeat(NONCE_LENGTH_MAX + 1)],
    ["with a space", "n 1"],
    ["with non-ASCII letters", "nönce"],
    ["as a number", 42],
    ["as null", null],
  ];
  const unsupported = (name: string, contentType: string | null): BodyRow => ({
    name,
    body: valid,
    sending: { contentType },
    status: 415,
    code: "UNSUPPORTED_MEDIA_TYPE",
  });
  const tooLarge = (name: string, sending: Sending): BodyRow => ({
    name,
    body: valid,
    sending,
    status: 413,
    code: "PAYLOAD_TOO_LARGE",
  });
  return [
    bad("truncated JSON", (n) => valid(n).slice(0, -1), "MALFORMED_JSON"),
    bad("trailing garbage", (n) => `${valid(n)}xyz`, "MALFORMED_JSON"),
    bad("an empty body", () => "", "MALFORMED_JSON"),
    bad("single quotes", (n) => valid(n).replaceAll('"', "'"), "MALFORMED_JSON"),
    bad("bytes that are not UTF-8", () => new Uint8Array([0xff, 0xfe, 0x7b, 0x7d]), "MALFORMED_JSON"),
    bad("10,000 unclosed [ levels", () => "[".repeat(10_000), "MALFORMED_JSON"),
    bad("JSON null", () => "null"),
    bad("a JSON array", (n) => `[${valid(n)}]`),
    bad("a JSON string", (n) => JSON.stringify(valid(n))),
    bad("an empty JSON object", () => "{}"),
    unsupported("a JSON body sent as text/plain", "text/plain"),
    unsupported("a JSON body with no content type", null),
    unsupported("a JSON body sent as application/x-www-form-urlencoded", "application/x-www-form-urlencoded"),
    tooLarge(`a body of ${BODY_SIZE_MAX_BYTES + 1} bytes`, { padToBytes: BODY_SIZE_MAX_BYTES + 1 }),
    tooLarge("a chunked body of 10 MiB, no content-length", { padToBytes: 10 * 1024 * 1024, chunked: true }),
    tooLarge("a small body whose content-length claims 1 GiB", { contentLength: String(1024 ** 3) }),
    bad("duplicate keys: nonce", (n) => `{"nonce":"other-${n}",${valid(n).slice(1)}`, "MALFORMED_JSON"),
    bad("duplicate keys: reason", (n) => `{"reason":"first",${valid(n).slice(1)}`, "MALFORMED_JSON"),
    bad("a number that is not an integer (nonce 1.5)", () => '{"reason":"hostile","nonce":1.5}'),
    bad("an owner_id key (the owner is the path's)", json({ owner_id: "someone_else" })),
    bad('a status key ("active")', json({ status: "active" })),
    bad("an amount key", json({ amount: 0 })),
    bad("an app key naming another app", json({ app: "another-app" })),
    bad("an operation key", json({ operation: "REINSTATEMENT" })),
    bad("a __proto__ key", (n) => `${valid(n).slice(0, -1)},"__proto__":{"polluted":true}}`),
    { ...bad("reason missing", without("reason")), only: "suspension" },
    ...reasons.map(([label, reason]) => bad(`reason ${label}`, json({ reason }))),
    bad("nonce missing", without("nonce")),
    ...nonces.map(([label, nonce]) =>
      bad(`nonce ${label}`, () => JSON.stringify({ reason: "hostile", nonce })),
    ),
  ];
}

/** Owner ids in the path, and paths and methods next to the routes that do not exist. */
function pathRows(route: StatusRoute): HostileCase[] {
  const segments: [string, string, number, HttpErrorCode][] = [
    ...RESERVED_OWNER_IDS.map((w): [string, string, number, HttpErrorCode] => [
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
    ["%0D%0A (header injection)", "a%0D%0Aset-cookie:x", 400, "VALIDATION_FAILED"],
    ["non-ASCII letters", "j%C3%BCrgen", 400, "VALIDATION_FAILED"],
    ["a leading -", "-a", 400, "VALIDATION_FAILED"],
    ["..", "..", 404, "NOT_FOUND"],
    ["a slash (a/b)", "a/b", 404, "NOT_FOUND"],
  ];
  const rows: HostileCase[] = segments.map(([label, segment, status, code]) => ({
    name: `POST /ledger/{owner_id}/${route}: ${label}`,
    request: (): HostileRequest => rawRequest(`/ledger/${segment}/${route}`, valid(freshNonce())),
    status,
    code,
  }));
  const elsewhere: [string, (owner: string) => string][] = [
    ["GET", (o) => `/ledger/${o}/${route}`],
    ["PUT", (o) => `/ledger/${o}/${route}`],
    ["DELETE", (o) => `/ledger/${o}/${route}`],
    ["POST", (o) => `/ledger/${o}/${route}s`],
    ["POST", (o) => `/ledger/${o}/${route}/now`],
    ["POST", (o) => `/ledger/${o}/${route.toUpperCase()}`],
  ];
  for (const [method, path] of elsewhere) {
    rows.push({
      name: `${method} ${path("{owner_id}")}: no such route`,
      request: (owner) => ({
        path: path(owner),
        init:
          method === "GET"
            ? { method }
            : { method, headers: { "content-type": "application/json" }, body: valid(freshNonce()) },
      }),
      status: 404,
      code: "NOT_FOUND",
    });
  }
  return rows;
}

/** Every hostile request over the suspension and reinstatement routes. */
export function suspensionHostileCases(): HostileCase[] {
  const rows: HostileCase[] = [];
  for (const route of ["suspension", "reinstatement"] as const) {
    for (const row of bodyRows()) {
      if (row.only !== undefined && row.only !== route) continue;
      rows.push({
        name: `POST /ledger/{owner_id}/${route}: ${row.name}`,
        request: (owner) => rawRequest(`/ledger/${owner}/${route}`, row.body(freshNonce()), row.sending),
        status: row.status,
        code: row.code,
      });
    }
    rows.push(...pathRows(route));
  }
  return rows;
}
