// The checker is what turns a chaos run into a verdict, so it is tested on its own: a consistent history
// passes, and each way a ledger can go wrong (a lost acknowledgement, a duplicate, a refused write that
// landed, an entry nobody sent, a wrong balance, a broken running balance, a 409 on a retry, an outcome
// never resolved) is reported under its own name.
import { describe, expect, it } from "vitest";
import type { Entry } from "./client.js";
import {
  checkLedger,
  signedAmount,
  type LedgerSnapshot,
  type OpRecord,
  type ViolationKind,
} from "./model.js";

const allowedRefusals = new Set(["INSUFFICIENT_BALANCE", "LIMIT_REACHED"]);
const OWNER = "alice";

let nextId = 1;
function entry(nonce: string, amount: number, sequence: number, balanceAfter: number, app = "app1"): Entry {
  return {
    id: nextId++,
    app,
    operation: amount > 0 ? "CREDIT_ADD" : "CREDIT_SPEND",
    owner_id: OWNER,
    amount,
    balance_after: balanceAfter,
    sequence,
    nonce,
    created_at: "2026-01-01T00:00:00.000Z",
  };
}

function acked(e: Entry, opts: { unknowns?: number; replayed?: boolean } = {}): OpRecord {
  return {
    app: e.app === "app2" ? "app2" : "app1",
    body: { owner_id: e.owner_id, operation: e.operation, nonce: e.nonce },
    amount: e.amount,
    attempts: 1 + (opts.unknowns ?? 0),
    unknowns: Array<"timeout">(opts.unknowns ?? 0).fill("timeout"),
    outcome: {
      kind: "acked",
      status: opts.replayed ? 200 : 201,
      result: { owner_id: e.owner_id, balance: e.balance_after, replayed: opts.replayed ?? false, entry: e },
    },
  };
}

function refused(nonce: string, code = "INSUFFICIENT_BALANCE", status = 422): OpRecord {
  return {
    app: "app1",
    body: { owner_id: OWNER, operation: "CREDIT_SPEND", nonce },
    amount: -1,
    attempts: 1,
    unknowns: [],
    outcome: { kind: "refused", status, code },
  };
}

/** A consistent story: +10; -1, acknowledged as a replay after two unknown attempts; a refused -1; +10. */
function world(): { ops: OpRecord[]; snapshot: LedgerSnapshot } {
  const e1 = entry("n1", 10, 1, 10);
  const e2 = entry("n2", -1, 2, 9, "app2");
  const e3 = entry("n4", 10, 3, 19);
  return {
    ops: [acked(e1), acked(e2, { unknowns: 2, replayed: true }), refused("n3"), acked(e3, { unknowns: 1 })],
    snapshot: { owners: [OWNER], entries: [e3, e2, e1], balances: new Map([[OWNER, 19]]), totalEntries: 3 },
  };
}

const kinds = (ops: OpRecord[], snapshot: LedgerSnapshot): ViolationKind[] =>
  checkLedger(ops, snapshot, { allowedRefusals }).map((v) => v.kind);

describe("checkLedger", () => {
  it("passes a history that matches the client's records", () => {
    const { ops, snapshot } = world();
    expect(checkLedger(ops, snapshot, { allowedRefusals })).toEqual([]);
  });

  it("reports an acknowledged operation missing from the history", () => {
    const { ops, snapshot } = world();
    const entries = snapshot.entries.filter((e) => e.nonce !== "n4");
    expect(kinds(ops, { ...snapshot, entries, totalEntries: 2 })).toEqual(
      expect.arrayContaining(["lost", "balance-mismatch", "entry-count"]),
    );
  });

  it("reports an operation applied twice", () => {
    const { ops, snapshot } = world();
    const first = snapshot.entries[0];
    if (!first) throw new Error("world has entries");
    const entries = [...snapshot.entries, { ...first, id: 99, sequence: 4, balance_after: 29 }];
    expect(kinds(ops, { ...snapshot, entries, totalEntries: 4 })).toEqual(
      expect.arrayContaining(["duplicate", "entry-count"]),
    );
  });

  it("reports a refused operation that was written anyway", () => {
    const { ops, snapshot } = world();
    const entries = [...snapshot.entries, entry("n3", -1, 4, 18)];
    expect(kinds(ops, { ...snapshot, entries })).toContain("refused-but-present");
  });

  it("reports an entry the client never sent", () => {
    const { ops, snapshot } = world();
    const entries = [...snapshot.entries, entry("never-sent", 10, 4, 29)];
    expect(kinds(ops, { ...snapshot, entries })).toContain("unexpected-entry");
  });

  it("reports a balance that is not the sum of the acknowledged amounts, nor of its entries, or is below zero", () => {
    const { ops, snapshot } = world();
    // Both sums say 19: the acknowledged answers and the entries listed.
    const twice = ["balance-mismatch", "balance-mismatch"];
    expect(kinds(ops, { ...snapshot, balances: new Map([[OWNER, 20]]) })).toEqual(twice);
    expect(kinds(ops, { ...snapshot, balances: new Map([[OWNER, -1]]) })).toEqual([
      ...twice,
      "negative-balance",
    ]);
  });

  it("reports acknowledged answers whose running balances do not chain", () => {
    const e1 = entry("c1", 10, 1, 10);
    const e2 = entry("c2", -1, 2, 8);
    const snapshot = { owners: [OWNER], entries: [e2, e1], balances: new Map([[OWNER, 9]]) };
    expect(kinds([acked(e1), acked(e2)], snapshot)).toEqual(["broken-chain"]);
  });

  it("reports an answer that disagrees with the entry in the history", () => {
    const { ops, snapshot } = world();
    const entries = snapshot.entries.map((e) => (e.nonce === "n1" ? { ...e, id: 1_000 } : e));
    expect(kinds(ops, { ...snapshot, entries })).toEqual(["answer-mismatch"]);
  });

  it("reports a NONCE_CONFLICT (a retry with the same nonce refused) and any unexpected refusal", () => {
    const { ops, snapshot } = world();
    expect(kinds([...ops, refused("n5", "NONCE_CONFLICT", 409)], snapshot)).toEqual(["unexpected-refusal"]);
    expect(kinds([...ops, refused("n6", "VALIDATION_FAILED", 400)], snapshot)).toEqual([
      "unexpected-refusal",
    ]);
  });

  it("reports an outcome that stayed unknown", () => {
    const { ops, snapshot } = world();
    const unresolved: OpRecord = { ...refused("n7"), outcome: { kind: "unresolved", detail: "timeout" } };
    expect(kinds([...ops, unresolved], snapshot)).toEqual(["unresolved"]);
  });

  it("reports a replay on the first attempt of a fresh nonce", () => {
    const e1 = entry("p1", 10, 1, 10);
    const snapshot = { owners: [OWNER], entries: [e1], balances: new Map([[OWNER, 10]]) };
    expect(kinds([acked(e1, { replayed: true })], snapshot)).toEqual(["phantom-replay"]);
  });
});

describe("signedAmount", () => {
  it("takes the sign and size from each app's catalog", () => {
    expect(signedAmount("app1", "CREDIT_ADD")).toBe(10);
    expect(signedAmount("app1", "CONTENT_CREATION")).toBe(-5);
    expect(signedAmount("app1", "CONTENT_ACCESS")).toBe(0);
    expect(signedAmount("app2", "TOKEN_USAGE", 7)).toBe(-7);
    expect(signedAmount("app2", "USAGE_REFUND", 7)).toBe(7);
  });

  it("refuses an operation the app does not have", () => {
    expect(() => signedAmount("app1", "TOKEN_USAGE", 1)).toThrow(/app1 has no operation TOKEN_USAGE/);
  });
});
