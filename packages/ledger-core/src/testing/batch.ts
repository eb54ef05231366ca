// POST /ledger/batch through HTTP, for every app: each item answered exactly as POST /ledger answers it
// alone (compared byte for byte with POST /ledger's own answer), items decided in order, all or nothing
// with `atomic`, and the body limits. describeAppSurface runs it; its hostile input is in
// hostile-batch.ts.
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { BATCH_BODY_SIZE_MAX_BYTES, BATCH_OPERATIONS_MAX, BODY_SIZE_MAX_BYTES } from "../domain/limits.js";
import { findStrictJsonProblem } from "../http/strict-json.js";
import { problemSchema, type HttpErrorCode } from "../http/problem.js";
import { freshNonce, freshOwner } from "./index.js";
import { hostilePostBodies, HOSTILE_BASE_OPERATION } from "./hostile.js";
import { expectProblem } from "./problems.js";
import {
  apply,
  expectApplied,
  getEntries,
  JSON_HEADERS,
  op,
  postJson,
  postRaw,
  postResultSchema,
  readOwner,
  type RequestApp,
} from "./requests.js";
import { ownerState, tableCounts } from "./snapshots.js";
import { suspend } from "./suspension.js";
import { named } from "./tables.js";
import type { AppSurface } from "./app-surface.js";

export const batchResultSchema = z
  .object({
    results: z.array(
      z
        .object({ status: z.number().int(), body: z.union([postResultSchema, problemSchema.strict()]) })
        .strict(),
    ),
  })
  .strict();
export type BatchResultBody = z.infer<typeof batchResultSchema>;

/** POST /ledger/batch with items as given (objects are sent as JSON, strings as raw JSON text). */
export function postBatch(app: RequestApp, items: readonly unknown[], atomic?: boolean): Promise<Response> {
  const text = items.map((i) => (typeof i === "string" ? i : JSON.stringify(i))).join(",");
  const rest = atomic === undefined ? "" : `,"atomic":${atomic}`;
  return postRaw(app, `{"operations":[${text}]${rest}}`, JSON_HEADERS, "/ledger/batch");
}

/** Expects a batch answered (200, or 201 when atomic) and returns its checked body. */
export async function expectBatch(res: Response, status: 200 | 201 = 200): Promise<BatchResultBody> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/^application\/json\b/);
  return batchResultSchema.parse(JSON.parse(text));
}

/** Expects an atomic batch refused: the problem, with the refused item's index at the top level. */
export async function expectBatchRefused(
  res: Response,
  status: number,
  code: HttpErrorCode,
  index: number,
): Promise<void> {
  const text = await res.clone().text();
  await expectProblem(res, status, code);
  expect((JSON.parse(text) as { index?: unknown }).index, text).toBe(index);
}

/** What POST /ledger answers for this body, as status and JSON text without the request id. */
async function postAlone(app: RequestApp, item: unknown): Promise<{ status: number; text: string }> {
  const res = await postRaw(app, typeof item === "string" ? item : JSON.stringify(item));
  const body = JSON.parse(await res.text()) as Record<string, unknown>;
  delete body.request_id;
  return { status: res.status, text: JSON.stringify(body) };
}

/** A case of "an item is answered as POST /ledger answers it alone". */
interface SameAsAlone {
  name: string;
  /** Sets up what the item needs; returns the item (a body of POST /ledger, or raw JSON text). */
  item: (s: AppSurface) => Promise<unknown>;
  status: number;
}

const withCredits = async (s: AppSurface) => {
  const owner = freshOwner();
  await apply(s.app(), op(owner, "CREDIT_ADD"));
  return owner;
};

const sameAsAlone: SameAsAlone[] = [
  {
    name: "a replay of a post first made alone",
    item: async (s) => {
      const input = op(freshOwner(), "CREDIT_ADD");
      await apply(s.app(), input);
      return input;
    },
    status: 200,
  },
  {
    name: "a conflict: the nonce of a post made alone, another operation",
    item: async (s) => {
      const input = op(freshOwner(), "CREDIT_ADD");
      await apply(s.app(), input);
      return { ...input, operation: "SIGNUP_CREDIT" };
    },
    status: 409,
  },
  {
    name: "INSUFFICIENT_BALANCE",
    item: () => Promise.resolve(op(freshOwner(), "CREDIT_SPEND")),
    status: 422,
  },
  {
    name: "LIMIT_REACHED",
    item: async (s) => {
      const owner = freshOwner();
      await apply(s.app(), op(owner, "SIGNUP_CREDIT"));
      return op(owner, "SIGNUP_CREDIT");
    },
    status: 422,
  },
  {
    name: "OWNER_SUSPENDED",
    item: async (s) => {
      const owner = await withCredits(s);
      await suspend(s.app(), owner);
      return op(owner, "CREDIT_SPEND");
    },
    status: 422,
  },
  {
    name: "an expires_at in the past (refused when decided)",
    item: () => Promise.resolve(op(freshOwner(), "CREDIT_ADD", { expires_at: "2001-01-01T00:00:00Z" })),
    status: 400,
  },
  { name: "an unknown operation", item: () => Promise.resolve(op(freshOwner(), "FREE_MONEY")), status: 400 },
  {
    name: "a wrong amount",
    item: () => Promise.resolve(op(freshOwner(), "CREDIT_ADD", { amount: 11 })),
    status: 400,
  },
  {
    name: "an expires_at on an operation that takes none",
    item: () => Promise.resolve(op(freshOwner(), "CREDIT_SPEND", { expires_at: "2099-01-01T00:00:00Z" })),
    status: 400,
  },
  {
    name: "a body that fails the schema in several ways",
    item: () => Promise.resolve({ owner_id: "batch", operation: "", amount: "1", extra: true }),
    status: 400,
  },
  { name: "null", item: () => Promise.resolve(null), status: 400 },
];

export function describeBatch(s: AppSurface): void {
  const snapshot = async (...owners: string[]) => ({
    owners: await Promise.all(owners.map((o) => ownerState(s.app(), o))),
    tables: await tableCounts(s.db()),
  });

  describe("POST /ledger/batch", () => {
    it("answers each item in order, 200 for the request: a credit, a debit it pays for, a refusal, a replay", async () => {
      const a = freshOwner();
      const b = freshOwner();
      const credit = op(a, "CREDIT_ADD");
      const body = await expectBatch(
        await postBatch(s.app(), [
          credit,
          op(a, "CREDIT_SPEND"),
          op(b, "CREDIT_SPEND"),
          credit,
          op(b, "SIGNUP_CREDIT"),
        ]),
      );
      expect(body.results.map((r) => r.status)).toEqual([201, 201, 422, 200, 201]);
      const [first, second, , replay] = body.results.map((r) => r.body);
      expect(first).toMatchObject({ owner_id: a, balance: 10, replayed: false, entry: { sequence: 1 } });
      expect(second).toMatchObject({
        owner_id: a,
        balance: 9,
        available: 9,
        entry: { sequence: 2, amount: -1 },
      });
      // A nonce accepted earlier in the batch: that item's answer again.
      expect(replay).toEqual({ ...(first as object), replayed: true });
      expect(body.results[2]?.body).toMatchObject({ code: "INSUFFICIENT_BALANCE", status: 422 });
      expect(await readOwner(s.app(), a)).toMatchObject({ balance: 9 });
      expect(await readOwner(s.app(), b)).toMatchObject({ balance: 3 });
    });

    it("writes the whole request in one transaction: every entry carries the same instant", async () => {
      const owners = Array.from({ length: 5 }, () => freshOwner());
      const body = await expectBatch(
        await postBatch(
          s.app(),
          owners.map((o) => op(o, "CREDIT_ADD")),
        ),
      );
      const instants = new Set(body.results.map((r) => postResultSchema.parse(r.body).entry.created_at));
      expect(instants.size).toBe(1);
    });

    it("answers an item accepted in the batch as POST /ledger answered it: the same body as its replay alone, replayed false", async () => {
      const input = op(freshOwner(), "CREDIT_ADD");
      const body = await expectBatch(await postBatch(s.app(), [input]));
      const alone = await postAlone(s.app(), input);
      expect(alone.status).toBe(200);
      expect(body.results[0]?.status).toBe(201);
      const replayedAlone = JSON.parse(alone.text) as Record<string, unknown>;
      expect(JSON.stringify(body.results[0]?.body)).toBe(
        JSON.stringify({ ...replayedAlone, replayed: false }),
      );
    });

    describe.each(named(sameAsAlone))("answers %s exactly as POST /ledger does alone", (_, row) => {
      it(`(${row.status}), byte for byte but the request id, and the other items are not stopped`, async () => {
        const item = await row.item(s);
        const other = op(freshOwner(), "CREDIT_ADD");
        const body = await expectBatch(await postBatch(s.app(), [item, other]));
        const alone = await postAlone(s.app(), item);
        expect(alone.status).toBe(row.status);
        expect(body.results[0]?.status).toBe(row.status);
        expect(JSON.stringify(body.results[0]?.body)).toBe(alone.text);
        expect(body.results[1]?.status).toBe(201);
      });
    });

    it("answers every hostile body of POST /ledger that is JSON, in one batch, as POST /ledger answers it", async () => {
      const owner = await withCredits(s);
      const valid = op(owner, HOSTILE_BASE_OPERATION);
      // Bodies the batch's own guard would refuse as a whole (not JSON, duplicate keys, non-integers) are
      // the hostile table's (hostile-batch.ts); the rest go in as items.
      const items = hostilePostBodies({ catalog: s.catalog, otherAppOperations: s.foreignOperations })
        .filter((spec) => spec.contentType === undefined && spec.padToBytes === undefined)
        .map((spec) => spec.body({ ...valid, nonce: freshNonce() }))
        .filter((text): text is string => typeof text === "string")
        .filter((text) => {
          try {
            JSON.parse(text);
          } catch {
            return false;
          }
          return findStrictJsonProblem(text) === undefined;
        });
      expect(items.length).toBeGreaterThan(100);
      const before = await snapshot(owner);
      const body = await expectBatch(await postBatch(s.app(), items));
      expect(body.results).toHaveLength(items.length);
      for (const [i, item] of items.entries()) {
        const alone = await postAlone(s.app(), item);
        expect(alone.status, item.slice(0, 200)).toBeGreaterThanOrEqual(400);
        expect(
          { status: body.results[i]?.status, body: JSON.stringify(body.results[i]?.body) },
          item.slice(0, 200),
        ).toEqual({
          status: alone.status,
          body: alone.text,
        });
      }
      expect(await snapshot(owner)).toEqual(before);
    });

    it("decides items in order: a debit before the credit that would pay for it is refused", async () => {
      const owner = freshOwner();
      const body = await expectBatch(
        await postBatch(s.app(), [
          op(owner, "CREDIT_SPEND"),
          op(owner, "CREDIT_ADD"),
          op(owner, "CREDIT_SPEND"),
        ]),
      );
      expect(body.results.map((r) => r.status)).toEqual([422, 201, 201]);
      expect(await readOwner(s.app(), owner)).toMatchObject({ balance: 9 });
    });

    it("answers a nonce used twice in one batch for different requests as POST /ledger would: 409 for the second", async () => {
      const owner = freshOwner();
      const nonce = freshNonce();
      const body = await expectBatch(
        await postBatch(s.app(), [op(owner, "CREDIT_ADD", { nonce }), op(owner, "SIGNUP_CREDIT", { nonce })]),
      );
      expect(body.results.map((r) => r.status)).toEqual([201, 409]);
      expect(body.results[1]?.body).toMatchObject({ code: "NONCE_CONFLICT" });
      expect(await ownerState(s.app(), owner)).toEqual({ balance: 10, entryCount: 1 });
    });

    it("answers a batch whose every item fails its checks with 200 and each item's 400, writing nothing", async () => {
      const owner = freshOwner();
      const before = await snapshot(owner);
      const body = await expectBatch(
        await postBatch(s.app(), [
          op(owner, "FREE_MONEY"),
          { owner_id: owner },
          op(owner, "CREDIT_ADD", { amount: 1 }),
        ]),
      );
      expect(body.results.map((r) => [r.status, (r.body as { code?: string }).code])).toEqual([
        [400, "UNKNOWN_OPERATION"],
        [400, "VALIDATION_FAILED"],
        [400, "AMOUNT_MISMATCH"],
      ]);
      expect(await snapshot(owner)).toEqual(before);
    });

    it(`takes ${BATCH_OPERATIONS_MAX} items, and a body over POST /ledger's ${BODY_SIZE_MAX_BYTES} bytes`, async () => {
      const prefix = freshOwner("many");
      const items = Array.from({ length: BATCH_OPERATIONS_MAX }, (_, i) =>
        op(`${prefix}_${i % 50}`, "CREDIT_ADD", { nonce: `${freshNonce()}-${i}`.padEnd(100, "n") }),
      );
      const text = JSON.stringify({ operations: items });
      expect(text.length).toBeGreaterThan(BODY_SIZE_MAX_BYTES);
      expect(text.length).toBeLessThan(BATCH_BODY_SIZE_MAX_BYTES);
      const body = await expectBatch(await postBatch(s.app(), items));
      expect(body.results).toHaveLength(BATCH_OPERATIONS_MAX);
      expect(body.results.every((r) => r.status === 201)).toBe(true);
      expect(await readOwner(s.app(), `${prefix}_0`)).toMatchObject({ balance: 200 });
    });
  });

  describe("POST /ledger/batch, atomic", () => {
    it("writes every item and answers 201 with each result (a replay among them is 200)", async () => {
      const owner = freshOwner();
      const earlier = op(owner, "CREDIT_ADD");
      const first = await apply(s.app(), earlier);
      const body = await expectBatch(
        await postBatch(s.app(), [earlier, op(owner, "CREDIT_SPEND"), op(owner, "SIGNUP_CREDIT")], true),
        201,
      );
      expect(body.results.map((r) => r.status)).toEqual([200, 201, 201]);
      expect(body.results[0]?.body).toEqual({ ...first, replayed: true });
      expect(await readOwner(s.app(), owner)).toMatchObject({ balance: 12 });
    });

    it("answers a batch of replays 201, writing nothing", async () => {
      const owner = freshOwner();
      const items = [op(owner, "CREDIT_ADD"), op(owner, "CREDIT_SPEND")];
      await expectBatch(await postBatch(s.app(), items, true), 201);
      const before = await snapshot(owner);
      const body = await expectBatch(await postBatch(s.app(), items, true), 201);
      expect(body.results.map((r) => r.status)).toEqual([200, 200]);
      expect(await snapshot(owner)).toEqual(before);
    });

    interface AtomicRefusal {
      name: string;
      /** The items, for an owner holding 10 credits (and another with none). */
      items: (owner: string, other: string) => unknown[] | Promise<unknown[]>;
      status: number;
      code: HttpErrorCode;
      index: number;
      /** The first item was applied before the batch (its nonce is recorded, not left free). */
      firstRecorded?: true;
    }
    const refusals: AtomicRefusal[] = [
      {
        name: "an item the ledger refuses (INSUFFICIENT_BALANCE)",
        items: (owner, other) => [
          op(owner, "CREDIT_SPEND"),
          op(other, "CREDIT_ADD"),
          op(owner, "CREDIT_SPEND"),
          op(freshOwner(), "CREDIT_SPEND"),
        ],
        status: 422,
        code: "INSUFFICIENT_BALANCE",
        index: 3,
      },
      {
        name: "a once operation used twice (LIMIT_REACHED)",
        items: (owner) => [op(owner, "SIGNUP_CREDIT"), op(owner, "CREDIT_SPEND"), op(owner, "SIGNUP_CREDIT")],
        status: 422,
        code: "LIMIT_REACHED",
        index: 2,
      },
      {
        name: "a suspended owner (OWNER_SUSPENDED)",
        items: async (owner, other) => {
          await suspend(s.app(), other);
          return [op(owner, "CREDIT_SPEND"), op(other, "CREDIT_ADD")];
        },
        status: 422,
        code: "OWNER_SUSPENDED",
        index: 1,
      },
      {
        name: "a nonce already used for a different request (NONCE_CONFLICT)",
        items: async (owner) => {
          const used = op(owner, "CREDIT_SPEND");
          await apply(s.app(), used);
          return [op(owner, "CREDIT_ADD"), { ...used, operation: "CREDIT_ADD" }];
        },
        status: 409,
        code: "NONCE_CONFLICT",
        index: 1,
      },
      {
        name: "a nonce used twice in the batch for different requests (NONCE_CONFLICT)",
        items: (owner) => {
          const nonce = freshNonce();
          return [
            op(owner, "CREDIT_SPEND", { nonce }),
            op(owner, "CREDIT_SPEND"),
            op(owner, "CREDIT_ADD", { nonce }),
          ];
        },
        status: 409,
        code: "NONCE_CONFLICT",
        index: 2,
      },
      {
        name: "replays only, one of them a conflict (NONCE_CONFLICT, nothing to write at all)",
        items: async (owner) => {
          const a = op(owner, "CREDIT_ADD");
          const b = op(owner, "CREDIT_SPEND");
          await apply(s.app(), a);
          await apply(s.app(), b);
          return [a, { ...b, operation: "CREDIT_ADD" }];
        },
        status: 409,
        code: "NONCE_CONFLICT",
        index: 1,
        firstRecorded: true,
      },
      {
        name: "an expires_at in the past, refused when decided (VALIDATION_FAILED)",
        items: (owner) => [
          op(owner, "CREDIT_SPEND"),
          op(owner, "CREDIT_ADD", { expires_at: "2001-01-01T00:00:00Z" }),
        ],
        status: 400,
        code: "VALIDATION_FAILED",
        index: 1,
      },
      {
        name: "an item that fails its checks, after one the ledger would refuse: checks come first",
        items: (owner, other) => [
          op(other, "CREDIT_SPEND"),
          op(owner, "CREDIT_SPEND"),
          op(owner, "FREE_MONEY"),
        ],
        status: 400,
        code: "UNKNOWN_OPERATION",
        index: 2,
      },
      {
        name: "an item that fails the schema (VALIDATION_FAILED)",
        items: (owner) => [op(owner, "CREDIT_SPEND"), { owner_id: owner, operation: "CREDIT_ADD" }],
        status: 400,
        code: "VALIDATION_FAILED",
        index: 1,
      },
    ];

    describe.each(named(refusals))("refuses %s", (_, row) => {
      it(`with ${row.status} ${row.code} naming item ${row.index}, writing nothing and leaving the nonces unused`, async () => {
        const owner = await withCredits(s);
        const other = freshOwner();
        const items = await row.items(owner, other);
        const before = await snapshot(owner, other);
        await expectBatchRefused(await postBatch(s.app(), items, true), row.status, row.code, row.index);
        expect(await snapshot(owner, other)).toEqual(before);
        // The items before the refused one were not written: their nonces are still free.
        const res = await postJson(s.app(), items[0]);
        // A replay (200) only if it was applied before the batch.
        if (row.firstRecorded) expect(res.status).toBe(200);
        else expect([201, 422]).toContain(res.status);
      });
    });

    it("refuses with the first refusal's problem as POST /ledger would answer that item, plus its index", async () => {
      const owner = await withCredits(s);
      const refused = op(freshOwner(), "CREDIT_SPEND");
      const res = await postBatch(s.app(), [op(owner, "CREDIT_SPEND"), refused], true);
      const text = await res.text();
      const alone = await postAlone(s.app(), refused);
      const body = JSON.parse(text) as Record<string, unknown>;
      expect(body.index).toBe(1);
      delete body.request_id;
      delete body.index;
      expect(JSON.stringify(body)).toBe(alone.text);
      const entries = await getEntries(s.app(), owner);
      expect(entries.entries).toHaveLength(1);
    });
  });

  describe("POST /ledger/batch, the body", () => {
    it(`refuses ${BATCH_OPERATIONS_MAX + 1} items and an empty list (400), and a body over ${BATCH_BODY_SIZE_MAX_BYTES} bytes (413)`, async () => {
      const owner = freshOwner();
      const before = await snapshot(owner);
      await expectProblem(
        await postBatch(
          s.app(),
          Array.from({ length: BATCH_OPERATIONS_MAX + 1 }, () => op(owner, "CREDIT_ADD")),
        ),
        400,
        "VALIDATION_FAILED",
      );
      await expectProblem(await postBatch(s.app(), []), 400, "VALIDATION_FAILED");
      // One valid item, then spaces past the byte limit.
      const text = JSON.stringify({ operations: [op(owner, "CREDIT_ADD")] }).padEnd(
        BATCH_BODY_SIZE_MAX_BYTES + 1,
        " ",
      );
      await expectProblem(
        await postRaw(s.app(), text, JSON_HEADERS, "/ledger/batch"),
        413,
        "PAYLOAD_TOO_LARGE",
      );
      expect(await snapshot(owner)).toEqual(before);
    });

    it("keeps POST /ledger's own limit: a body over it there is still 413", async () => {
      const input = op(freshOwner(), "CREDIT_ADD");
      const text = JSON.stringify(input).padEnd(BODY_SIZE_MAX_BYTES + 1, " ");
      await expectProblem(await postRaw(s.app(), text), 413, "PAYLOAD_TOO_LARGE");
      // The same body inside a batch is fine.
      const body = await expectBatch(
        await postRaw(s.app(), `{"operations":[${text}]}`, JSON_HEADERS, "/ledger/batch"),
      );
      expect(body.results[0]?.status).toBe(201);
      await expectApplied(await postJson(s.app(), op(freshOwner(), "CREDIT_ADD")));
    });
  });
}
