// Batches racing across processes, on real Postgres (two pools stand in for two app processes): the
// same batch sent twice at once is written once, and an atomic batch racing another request for one of
// its nonces is written in full or not at all.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase, type LedgerDatabase } from "../src/store/index.js";
import { LedgerService } from "../src/index.js";
import { runBatch, type BatchAnswer } from "../src/features/batch/batch.js";
import {
  expectLedgerInvariants,
  freshNonce,
  freshOwner,
  openTestDatabase,
  type TestDatabase,
} from "../src/testing/index.js";
import { testCatalog } from "./fixtures.js";

let tdb: TestDatabase;
let second: LedgerDatabase;
let a: LedgerService;
let b: LedgerService;

beforeAll(async () => {
  tdb = await openTestDatabase("postgres", { poolSizeMax: 10 });
  if (!tdb.url) throw new Error("the postgres test database has a URL");
  second = await openDatabase({ url: tdb.url, poolSizeMax: 10 });
  a = new LedgerService({ db: tdb.db, app: "app-a", catalog: testCatalog });
  b = new LedgerService({ db: second.db, app: "app-a", catalog: testCatalog });
});

afterAll(async () => {
  await expectLedgerInvariants(tdb);
  await second.close();
  await tdb.close();
});

const statuses = (answer: BatchAnswer) =>
  answer.kind === "results" ? answer.results.map((r) => r.status) : [`refused ${answer.index}`];

const post = (owner: string, operation: string, nonce = freshNonce()) => ({
  owner_id: owner,
  operation,
  nonce,
});

describe("batches racing on real Postgres, two pools", () => {
  it.each([true, false])(
    "writes the same batch sent by two processes at once only once (atomic: %s)",
    async (atomic) => {
      for (let round = 0; round < 10; round += 1) {
        const owners = [freshOwner(), freshOwner(), freshOwner()];
        const items = owners.flatMap((o) => [post(o, "CREDIT_ADD"), post(o, "CREDIT_SPEND")]);
        const answers = await Promise.all([runBatch(a, items, atomic), runBatch(b, items, atomic)]);
        const seen = answers
          .map(statuses)
          .map((s) => s.join(" "))
          .sort();
        // One wrote every item; the other found them written and answered each as a replay.
        expect(seen).toEqual(["200 200 200 200 200 200", "201 201 201 201 201 201"]);
        for (const owner of owners) expect((await a.balance(owner)).balance).toBe(9);
      }
    },
  );

  it("writes an atomic batch racing a post for one of its nonces in full, or not at all", async () => {
    for (let round = 0; round < 20; round += 1) {
      const owner = freshOwner();
      const contested = freshNonce();
      const items = [
        post(owner, "CREDIT_ADD"),
        post(owner, "CREDIT_SPEND"),
        post(owner, "CREDIT_ADD", contested),
      ];
      const [batch, alone] = await Promise.all([
        runBatch(round % 2 === 0 ? a : b, items, true),
        (round % 2 === 0 ? b : a)
          .post({ ...post(owner, "TEST_CREDIT", contested), amount: 5 })
          .then(() => "posted")
          .catch((error: { code?: string }) => error.code ?? "?"),
      ]);
      const balance = (await a.balance(owner)).balance;
      const entries = (await a.entries({ owner_id: owner })).entries.length;
      if (batch.kind === "results") {
        // The batch won: all three written, the post's nonce was taken by another request.
        expect({ alone, statuses: statuses(batch), balance, entries }).toEqual({
          alone: "NONCE_CONFLICT",
          statuses: [201, 201, 201],
          balance: 19,
          entries: 3,
        });
      } else {
        // The post won: the batch was refused at that item and wrote nothing; only the post is there.
        expect({ alone, index: batch.index, code: batch.problem.code, balance, entries }).toEqual({
          alone: "posted",
          index: 2,
          code: "NONCE_CONFLICT",
          balance: 5,
          entries: 1,
        });
      }
    }
  });
});
