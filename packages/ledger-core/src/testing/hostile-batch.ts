// Hostile input for POST /ledger/batch: rows of the one hostile vocabulary (hostile.ts gathers them).
// - The body itself: syntax, media type, its own (larger) size limit, its shape, the number of items.
// - Every hostile body of POST /ledger as the second item of an atomic batch whose first item is a
//   valid debit: refused with the code POST /ledger answers it with, and the first item not written
//   either (the owner's entries and every table are compared).
import type { HttpErrorCode } from "../http/problem.js";
import { BATCH_BODY_SIZE_MAX_BYTES, BATCH_OPERATIONS_MAX } from "../domain/limits.js";
import { freshNonce } from "./index.js";
import {
  HOSTILE_BASE_OPERATION,
  hostilePostBodies,
  type HostileBody,
  type HostileCase,
  type HostileCatalogs,
  type HostileRequest,
} from "./hostile.js";
import { rawRequest } from "./hostile-suspension.js";
import { op, type PostInput } from "./requests.js";

const PATH = "/ledger/batch";
const encoder = new TextEncoder();

/** The batch body text around raw item text: `{"operations":[<items>],...}`. */
const batchOf = (items: string[], rest = "") => `{"operations":[${items.join(",")}]${rest}}`;
const spend = (owner: string) => JSON.stringify(op(owner, HOSTILE_BASE_OPERATION));

interface BodyRow {
  name: string;
  body: (owner: string) => string | Uint8Array;
  sending?: Pick<HostileBody, "contentType" | "padToBytes" | "chunked" | "contentLength">;
  status: number;
  code: HttpErrorCode;
}

const bad = (name: string, body: BodyRow["body"], code: HttpErrorCode = "VALIDATION_FAILED"): BodyRow => ({
  name,
  body,
  status: 400,
  code,
});

/** Bodies that are not a batch: refused as a whole, nothing written. */
function bodyRows(): BodyRow[] {
  const valid = (o: string) => batchOf([spend(o)]);
  const many = (n: number) => (o: string) => batchOf(Array.from({ length: n }, () => spend(o)));
  const tooLarge = (name: string, sending: BodyRow["sending"]): BodyRow => ({
    name,
    body: valid,
    sending,
    status: 413,
    code: "PAYLOAD_TOO_LARGE",
  });
  const unsupported = (name: string, contentType: string | null): BodyRow => ({
    name,
    body: valid,
    sending: { contentType },
    status: 415,
    code: "UNSUPPORTED_MEDIA_TYPE",
  });
  const overLimit = BATCH_BODY_SIZE_MAX_BYTES + 1;
  return [
    bad("truncated JSON", (o) => valid(o).slice(0, -2), "MALFORMED_JSON"),
    bad("trailing garbage", (o) => `${valid(o)}]`, "MALFORMED_JSON"),
    bad("an empty body", () => "", "MALFORMED_JSON"),
    bad("a trailing comma after the last item", (o) => batchOf([spend(o), ""]), "MALFORMED_JSON"),
    bad(
      "bytes that are not UTF-8",
      (o) => new Uint8Array([...encoder.encode(valid(o)), 0xff]),
      "MALFORMED_JSON",
    ),
    bad(
      "10,000 unclosed [ levels in operations",
      () => `{"operations":${"[".repeat(10_000)}`,
      "MALFORMED_JSON",
    ),
    bad(
      "duplicate keys: operations (first a valid batch)",
      (o) => `{"operations":[${spend(o)}],${valid(o).slice(1)}`,
      "MALFORMED_JSON",
    ),
    bad(
      "duplicate keys: atomic (first true)",
      (o) => batchOf([spend(o)], ',"atomic":true,"atomic":false'),
      "MALFORMED_JSON",
    ),
    bad(
      "duplicate keys inside an item",
      (o) => batchOf([`{"nonce":"first",${spend(o).slice(1)}`]),
      "MALFORMED_JSON",
    ),
    bad("a number that is not an integer in an item", (o) =>
      batchOf([`${spend(o).slice(0, -1)},"amount":1.0}`]),
    ),
    bad("JSON null", () => "null"),
    bad("a JSON array of posts", (o) => `[${spend(o)}]`),
    bad("one post, not in a batch", (o) => spend(o)),
    bad("an empty JSON object", () => "{}"),
    bad("operations null", () => '{"operations":null}'),
    bad("operations as an object", (o) => `{"operations":${spend(o)}}`),
    bad("operations as a string", () => '{"operations":"[]"}'),
    bad("no operations", () => '{"operations":[]}'),
    bad(`${BATCH_OPERATIONS_MAX + 1} operations (BATCH_OPERATIONS_MAX + 1)`, many(BATCH_OPERATIONS_MAX + 1)),
    bad('atomic as the string "true"', (o) => batchOf([spend(o)], ',"atomic":"true"')),
    bad("atomic as 1", (o) => batchOf([spend(o)], ',"atomic":1')),
    bad("atomic null", (o) => batchOf([spend(o)], ',"atomic":null')),
    bad("an unknown key", (o) => batchOf([spend(o)], ',"parallel":true')),
    bad("an app key naming another app", (o) => batchOf([spend(o)], ',"app":"another-app"')),
    bad("a __proto__ key", (o) => batchOf([spend(o)], ',"__proto__":{"atomic":true}')),
    unsupported("a batch sent as text/plain", "text/plain"),
    unsupported("a batch with no content type", null),
    unsupported("a batch declared as charset=latin1", "application/json; charset=latin1"),
    tooLarge(`a body of ${overLimit} bytes (BATCH_BODY_SIZE_MAX_BYTES + 1)`, { padToBytes: overLimit }),
    tooLarge(`a chunked body of ${overLimit} bytes, no content-length`, {
      padToBytes: overLimit,
      chunked: true,
    }),
    tooLarge("a chunked body of 10 MiB, no content-length", { padToBytes: 10 * 1024 * 1024, chunked: true }),
    tooLarge("a small body whose content-length claims 1 GiB", { contentLength: String(1024 ** 3) }),
    tooLarge("a body over the limit whose content-length claims 100 bytes", {
      padToBytes: overLimit,
      contentLength: "100",
    }),
  ];
}

/**
 * POST /ledger's hostile bodies that are about the body's content (not how it is sent), as the second
 * item of an atomic batch after a valid debit of the same owner: POST /ledger's status and code.
 */
function atomicItemRows(catalogs: HostileCatalogs): HostileCase[] {
  return hostilePostBodies(catalogs)
    .filter(
      (spec) =>
        spec.contentType === undefined &&
        spec.padToBytes === undefined &&
        spec.chunked === undefined &&
        spec.contentLength === undefined,
    )
    .map((spec) => ({
      name: `POST ${PATH}: atomic, second item ${spec.name}`,
      request: (owner: string): HostileRequest => {
        const item = spec.body(op(owner, HOSTILE_BASE_OPERATION) satisfies PostInput);
        const head = encoder.encode(`{"operations":[${spend(owner)},`);
        const tail = encoder.encode('],"atomic":true}');
        const itemBytes = typeof item === "string" ? encoder.encode(item) : item;
        return rawRequest(PATH, new Uint8Array([...head, ...itemBytes, ...tail]));
      },
      status: spec.status,
      code: spec.code,
    }));
}

/** Every hostile request over POST /ledger/batch. */
export function batchHostileCases(catalogs: HostileCatalogs): HostileCase[] {
  const rows: HostileCase[] = bodyRows().map((row) => ({
    name: `POST ${PATH}: ${row.name}`,
    request: (owner) => rawRequest(PATH, row.body(owner), row.sending),
    status: row.status,
    code: row.code,
  }));
  // Methods the route does not take.
  for (const method of ["GET", "PUT", "DELETE"] as const) {
    rows.push({
      name: `${method} ${PATH}: no such route`,
      request: (owner) => ({
        path: PATH,
        init:
          method === "GET"
            ? { method }
            : { method, headers: { "content-type": "application/json" }, body: batchOf([spend(owner)]) },
      }),
      status: method === "GET" ? 400 : 404,
      code: method === "GET" ? "VALIDATION_FAILED" : "NOT_FOUND",
    });
  }
  return [...rows, ...atomicItemRows(catalogs), ...nonceRow()];
}

/** A fresh nonce per request keeps rows independent; this one reuses one nonce in a single request. */
function nonceRow(): HostileCase[] {
  return [
    {
      name: `POST ${PATH}: atomic, one nonce for two different requests`,
      request: (owner) => {
        const nonce = freshNonce();
        return rawRequest(
          PATH,
          batchOf(
            [
              JSON.stringify(op(owner, HOSTILE_BASE_OPERATION, { nonce })),
              JSON.stringify(op(owner, "CREDIT_ADD", { nonce })),
            ],
            ',"atomic":true',
          ),
        );
      },
      status: 409,
      code: "NONCE_CONFLICT",
    },
  ];
}
