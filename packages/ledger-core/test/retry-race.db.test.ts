// A retry racing its original, from another process: both copies look their nonce up before either is
// written, so the second is decided after the first committed, and would be refused by the rule the
// first used up (a once limit, a reversal, a suspension). Under its locks the first copy's entry is
// visible: the second copy must be answered as the replay it is, never as a refusal. Two services on
// one database stand for two processes (their group committers are separate).
import { describe, expect, it } from "vitest";
import { LedgerService } from "../src/index.js";
import { reverseEntry } from "../src/features/reversals/command.js";
import { changeStatus } from "../src/features/suspension/command.js";
import { freshNonce, freshOwner, testDriver, useTestDatabase } from "../src/testing/index.js";
import { testCatalog } from "./fixtures.js";

const tdb = useTestDatabase();

const outcome = (p: Promise<{ replayed: boolean }>) =>
  p.then(
    (v) => (v.replayed ? "replayed" : "applied"),
    (e: unknown) => (e instanceof Error && "code" in e ? String(e.code) : `not a ledger error: ${String(e)}`),
  );

describe(`a retry racing its original from another process [${testDriver()}]`, () => {
  const services = () =>
    [
      new LedgerService({ db: tdb().db, app: "app-a", catalog: testCatalog }),
      new LedgerService({ db: tdb().db, app: "app-a", catalog: testCatalog }),
    ] as const;

  it("a once-limited post sent twice at once is applied once and replayed once", async () => {
    const [a, b] = services();
    const owner = freshOwner();
    const req = { owner_id: owner, operation: "TEST_WELCOME", nonce: freshNonce() };
    const answers = await Promise.all([outcome(a.post(req)), outcome(b.post(req))]);
    expect(answers.sort()).toEqual(["applied", "replayed"]);
    expect(await a.balance(owner)).toMatchObject({ balance: 7 });
  });

  it("a reversal sent twice at once is applied once and replayed once", async () => {
    const [a, b] = services();
    const owner = freshOwner();
    await a.post({ owner_id: owner, operation: "CREDIT_ADD", nonce: freshNonce() });
    const spend = await a.post({ owner_id: owner, operation: "TEST_DEBIT", amount: 5, nonce: freshNonce() });
    const req = { nonce: freshNonce() };
    const answers = await Promise.all([
      outcome(reverseEntry(a, spend.entry.id, req)),
      outcome(reverseEntry(b, spend.entry.id, req)),
    ]);
    expect(answers.sort()).toEqual(["applied", "replayed"]);
    expect(await a.balance(owner)).toMatchObject({ balance: 10 });
  });

  it("a suspension sent twice at once is applied once and replayed once", async () => {
    const [a, b] = services();
    const owner = freshOwner();
    const req = { owner_id: owner, nonce: freshNonce(), reason: "fraud" };
    const answers = await Promise.all([
      outcome(a.submit(changeStatus("app-a", "suspended", req))),
      outcome(b.submit(changeStatus("app-a", "suspended", req))),
    ]);
    expect(answers.sort()).toEqual(["applied", "replayed"]);
  });

  it("a different request under the racing nonce is still a conflict", async () => {
    const [a, b] = services();
    const owner = freshOwner();
    const nonce = freshNonce();
    const answers = await Promise.all([
      outcome(a.post({ owner_id: owner, operation: "TEST_WELCOME", nonce })),
      outcome(b.post({ owner_id: freshOwner(), operation: "TEST_WELCOME", nonce })),
    ]);
    expect(answers.sort()).toEqual(["NONCE_CONFLICT", "applied"]);
  });
});
