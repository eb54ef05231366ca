import { describe, expect, it } from "vitest";
import type { EntryRow } from "../store/reads.js";
import { fixed, sharedOperations, variable } from "../domain/operations.js";
import { decideBatch, type ValidatedPost } from "./group-commit.js";

const NOW = new Date("2026-03-01T12:00:00Z");
const debit = variable({ direction: "debit", min: 1, max: 100 });
const dailyFee = fixed(-2, { limit: "daily" });

function post(owner: string, operation: string, amount: number, nonce: string): ValidatedPost {
  const def =
    operation === "TEST_DEBIT"
      ? debit
      : operation === "ZERO"
        ? fixed(0)
        : operation === "DAILY_FEE"
          ? dailyFee
          : sharedOperations[operation as keyof typeof sharedOperations];
  return { req: { owner_id: owner, operation, nonce }, def, amount };
}

const owners = (entries: Record<string, number>) =>
  new Map(Object.entries(entries).map(([k, balance]) => [k, { balance, lastSequence: 0, created: false }]));

function kinds(outcomes: ReturnType<typeof decideBatch>) {
  return outcomes.map((o) =>
    o.kind === "refused"
      ? o.error.code
      : o.kind === "accepted"
        ? `ok ${o.entry.balanceAfter}#${o.entry.sequence}`
        : o.kind,
  );
}

describe("decideBatch", () => {
  it("decides in arrival order against running balances: later debits see earlier credits", () => {
    const batch = [
      post("a", "CREDIT_SPEND", -1, "n1"),
      post("a", "CREDIT_ADD", 10, "n2"),
      post("a", "TEST_DEBIT", -10, "n3"),
      post("a", "CREDIT_SPEND", -1, "n4"),
      post("b", "CREDIT_ADD", 10, "n5"),
    ];
    expect(kinds(decideBatch("app", batch, owners({ a: 0, b: 5 }), new Map(), new Set(), NOW))).toEqual([
      "INSUFFICIENT_BALANCE",
      "ok 10#1",
      "ok 0#2",
      "INSUFFICIENT_BALANCE",
      "ok 15#1",
    ]);
  });

  it("replays a nonce accepted earlier in the batch, and refuses it for another request", () => {
    const batch = [
      post("a", "CREDIT_ADD", 10, "n1"),
      post("a", "CREDIT_ADD", 10, "n1"),
      post("b", "CREDIT_ADD", 10, "n1"),
      post("a", "SIGNUP_CREDIT", 3, "n1"),
    ];
    const out = decideBatch("app", batch, owners({ a: 0, b: 0 }), new Map(), new Set(), NOW);
    expect(kinds(out)).toEqual(["ok 10#1", "replay-in-batch", "NONCE_CONFLICT", "NONCE_CONFLICT"]);
    expect(out[1]).toEqual({ kind: "replay-in-batch", of: 0 });
  });

  it("lets a nonce whose first use was refused be used again later in the batch", () => {
    const batch = [
      post("a", "CREDIT_SPEND", -1, "n1"),
      post("a", "CREDIT_ADD", 10, "n2"),
      post("a", "CREDIT_SPEND", -1, "n1"),
    ];
    expect(kinds(decideBatch("app", batch, owners({ a: 0 }), new Map(), new Set(), NOW))).toEqual([
      "INSUFFICIENT_BALANCE",
      "ok 10#1",
      "ok 9#2",
    ]);
  });

  it("replays or refuses nonces already in the database", () => {
    const row: EntryRow = {
      id: 7,
      app: "app",
      operation: "CREDIT_ADD",
      ownerId: "a",
      amount: 10n,
      balanceAfter: 10n,
      sequence: 1,
      nonce: "old",
      limitPeriod: null,
      createdAt: NOW,
    };
    const batch = [post("a", "CREDIT_ADD", 10, "old"), post("a", "CREDIT_SPEND", -1, "old")];
    expect(
      kinds(decideBatch("app", batch, owners({ a: 10 }), new Map([["old", row]]), new Set(), NOW)),
    ).toEqual(["replay", "NONCE_CONFLICT"]);
  });

  it("enforces limits against the database and within the batch", () => {
    const used = new Set([JSON.stringify(["b", "SIGNUP_CREDIT", "once"])]);
    const batch = [
      post("a", "SIGNUP_CREDIT", 3, "n1"),
      post("a", "SIGNUP_CREDIT", 3, "n2"),
      post("b", "SIGNUP_CREDIT", 3, "n3"),
      post("a", "DAILY_REWARD", 1, "n4"),
      post("a", "DAILY_REWARD", 1, "n5"),
    ];
    const out = decideBatch("app", batch, owners({ a: 0, b: 0 }), new Map(), used, NOW);
    expect(kinds(out)).toEqual(["ok 3#1", "LIMIT_REACHED", "LIMIT_REACHED", "ok 4#2", "LIMIT_REACHED"]);
    expect(out[3]).toMatchObject({ entry: { limitPeriod: "2026-03-01", limitKind: "daily" } });
  });

  it("applies the balance rule before the limit: a refused limited debit leaves its limit unused", () => {
    const batch = [
      post("a", "DAILY_FEE", -2, "n1"),
      post("a", "CREDIT_ADD", 10, "n2"),
      post("a", "DAILY_FEE", -2, "n3"),
    ];
    const out = decideBatch("app", batch, owners({ a: 0 }), new Map(), new Set(), NOW);
    expect(kinds(out)).toEqual(["INSUFFICIENT_BALANCE", "ok 10#1", "ok 8#2"]);
  });

  it("does not change the locked state it was given", () => {
    const locked = owners({ a: 5 });
    decideBatch("app", [post("a", "CREDIT_ADD", 10, "n1")], locked, new Map(), new Set(), NOW);
    expect(locked.get("a")).toEqual({ balance: 5, lastSequence: 0, created: false });
  });
});
