// The engine's decisions without a database: commands decided in arrival order against the locked
// state, replays and conflicts of nonces, limits, and the ledger's own rules (expiry, burn order).
import { describe, expect, it } from "vitest";
import { defineCatalog, fixed, sharedOperations, variable } from "../domain/operations.js";
import type { OpenGrant } from "../domain/grants.js";
import { postOperation, validatePost } from "../features/operations/command.js";
import { expireDue } from "../features/grants/sweeper.js";
import type { RecordedEntry } from "../store/reads.js";
import type { Command } from "./command.js";
import { decideBatch, type Plan } from "./group-commit.js";
import { BatchState, type LockedOwner } from "./state.js";

const NOW = new Date("2026-03-01T12:00:00Z");
const catalog = defineCatalog({
  ...sharedOperations,
  TEST_DEBIT: variable({ direction: "debit", min: 1, max: 100 }),
  DAILY_FEE: fixed(-2, { limit: "daily" }),
  ZERO: fixed(0),
  PROMO: fixed(20, { expiresAfterS: 30 * 86_400 }),
});

function post(
  owner: string,
  operation: string,
  nonce: string,
  extra: { amount?: number; expires_at?: string } = {},
) {
  return postOperation("app", validatePost(catalog, { owner_id: owner, operation, nonce, ...extra }));
}

const grant = (sequence: number, remaining: number, expiresAt: string, app = "app"): OpenGrant => ({
  sequence,
  part: 0,
  app,
  amount: remaining,
  remaining,
  expiresAt: new Date(expiresAt),
});

/** The row app's CREDIT_ADD for owner "a" would have written as its first entry. */
const creditAddRow = (id: number, nonce: string): RecordedEntry => ({
  id,
  app: "app",
  operation: "CREDIT_ADD",
  ownerId: "a",
  actor: null,
  amount: 10n,
  balanceAfter: 10n,
  sequence: 1,
  nonce,
  limitPeriod: null,
  createdAt: NOW,
  expiresAt: null,
  heldAfter: 0n,
  holdId: null,
  reverses: null,
  counterpartyOwnerId: null,
  reason: null,
  hold: null,
});

function locked(balances: Record<string, number>, grants: Record<string, OpenGrant[]> = {}): LockedOwner[] {
  return Object.entries(balances).map(([ownerId, balance]) => ({
    ownerId,
    balance,
    lastSequence: Math.max(0, ...(grants[ownerId] ?? []).map((g) => g.sequence)),
    status: "active",
    created: false,
    grants: grants[ownerId] ?? [],
    held: 0,
    holds: [],
  }));
}

function run(
  commands: Command<unknown>[],
  owners: LockedOwner[],
  opts: { existing?: Map<string, RecordedEntry>; used?: string[]; now?: Date } = {},
) {
  const state = new BatchState(owners, opts.used ?? []);
  const units = commands.map((c) => ({ commands: [c], atomic: false }));
  const plans = decideBatch(units, opts.existing ?? new Map(), state, opts.now ?? NOW);
  return { plans, effects: state.effects() };
}

function kinds(plans: Plan[], effects: ReturnType<BatchState["effects"]>) {
  return plans.map((p) => {
    if (p.kind === "refused") return p.error.code;
    if (p.kind !== "accepted") return p.kind;
    const last = effects.entries[p.entries.at(-1) ?? -1];
    return last ? `ok ${last.balanceAfter}#${last.sequence}` : "ok";
  });
}

describe("decideBatch", () => {
  it("decides in arrival order against running balances: later debits see earlier credits", () => {
    const batch = [
      post("a", "CREDIT_SPEND", "n1"),
      post("a", "CREDIT_ADD", "n2"),
      post("a", "TEST_DEBIT", "n3", { amount: 10 }),
      post("a", "CREDIT_SPEND", "n4"),
      post("b", "CREDIT_ADD", "n5"),
    ];
    const { plans, effects } = run(batch, locked({ a: 0, b: 5 }));
    expect(kinds(plans, effects)).toEqual([
      "INSUFFICIENT_BALANCE",
      "ok 10#1",
      "ok 0#2",
      "INSUFFICIENT_BALANCE",
      "ok 15#1",
    ]);
    expect(effects.owners).toEqual([
      { ownerId: "a", balance: 0, held: 0, lastSequence: 2, status: "active" },
      { ownerId: "b", balance: 15, held: 0, lastSequence: 1, status: "active" },
    ]);
  });

  it("replays a nonce accepted earlier in the batch, and refuses it for another request", () => {
    const batch = [
      post("a", "CREDIT_ADD", "n1"),
      post("a", "CREDIT_ADD", "n1"),
      post("b", "CREDIT_ADD", "n1"),
      post("a", "SIGNUP_CREDIT", "n1"),
    ];
    const { plans, effects } = run(batch, locked({ a: 0, b: 0 }));
    // Refused when decided (not only answered so after the write), so an atomic group is never written
    // around a conflict.
    expect(kinds(plans, effects)).toEqual(["ok 10#1", "replay-in-batch", "NONCE_CONFLICT", "NONCE_CONFLICT"]);
    expect(plans[1]).toEqual({ kind: "replay-in-batch", of: 0 });
    // Whether a replay in the batch is the same request is decided against the first one's entry.
    const row = creditAddRow(1, "n1");
    expect(batch.map((c) => c.replay(row, new Map()) !== null)).toEqual([true, true, false, false]);
  });

  it("lets a nonce whose first use was refused be used again later in the batch", () => {
    const batch = [
      post("a", "CREDIT_SPEND", "n1"),
      post("a", "CREDIT_ADD", "n2"),
      post("a", "CREDIT_SPEND", "n1"),
    ];
    const { plans, effects } = run(batch, locked({ a: 0 }));
    expect(kinds(plans, effects)).toEqual(["INSUFFICIENT_BALANCE", "ok 10#1", "ok 9#2"]);
  });

  it("replays or refuses nonces already in the database, without deciding them", () => {
    const row = creditAddRow(7, "old");
    const batch = [post("a", "CREDIT_ADD", "old"), post("a", "CREDIT_SPEND", "old")];
    const { plans, effects } = run(batch, locked({ a: 10 }), { existing: new Map([["old", row]]) });
    expect(kinds(plans, effects)).toEqual(["replay", "NONCE_CONFLICT"]);
    expect(batch.map((c) => c.replay(row, new Map()) !== null)).toEqual([true, false]);
    expect(effects.entries).toEqual([]);
  });

  it("writes an atomic group in full or not at all: a refusal or a conflicting nonce undoes the group", () => {
    const state = new BatchState(locked({ a: 0, b: 0 }), []);
    const existing = new Map([["old", creditAddRow(7, "old")]]);
    const units = [
      { commands: [post("a", "CREDIT_ADD", "g1"), post("a", "CREDIT_SPEND", "old")], atomic: true },
      {
        commands: [
          post("b", "CREDIT_ADD", "g2"),
          post("b", "CREDIT_ADD", "g2"),
          post("b", "SIGNUP_CREDIT", "g2"),
        ],
        atomic: true,
      },
      { commands: [post("b", "CREDIT_ADD", "g3"), post("b", "CREDIT_SPEND", "g4")], atomic: true },
      { commands: [post("a", "CREDIT_SPEND", "g5")], atomic: true },
    ];
    const plans = decideBatch(units, existing, state, NOW);
    const refusals = plans.map((p) =>
      p.kind === "group-refused" ? `${p.refusal.index} ${p.refusal.error.code}` : p.kind,
    );
    expect(refusals).toEqual([
      "1 NONCE_CONFLICT",
      "1 NONCE_CONFLICT",
      "2 NONCE_CONFLICT",
      "2 NONCE_CONFLICT",
      "2 NONCE_CONFLICT",
      "accepted",
      "accepted",
      "0 INSUFFICIENT_BALANCE",
    ]);
    // Only the third group is written: b's credit and its spend.
    expect(state.effects().entries.map((e) => `${e.ownerId} ${e.nonce} ${e.balanceAfter}`)).toEqual([
      "b g3 10",
      "b g4 9",
    ]);
  });

  it("enforces limits against the database and within the batch", () => {
    const used = [JSON.stringify(["b", "SIGNUP_CREDIT", "once"])];
    const batch = [
      post("a", "SIGNUP_CREDIT", "n1"),
      post("a", "SIGNUP_CREDIT", "n2"),
      post("b", "SIGNUP_CREDIT", "n3"),
      post("a", "DAILY_REWARD", "n4"),
      post("a", "DAILY_REWARD", "n5"),
    ];
    const { plans, effects } = run(batch, locked({ a: 0, b: 0 }), { used });
    expect(kinds(plans, effects)).toEqual([
      "ok 3#1",
      "LIMIT_REACHED",
      "LIMIT_REACHED",
      "ok 4#2",
      "LIMIT_REACHED",
    ]);
    expect(effects.entries[1]).toMatchObject({ limitPeriod: "2026-03-01" });
  });

  it("applies the balance rule before the limit: a refused limited debit leaves its limit unused", () => {
    const batch = [post("a", "DAILY_FEE", "n1"), post("a", "CREDIT_ADD", "n2"), post("a", "DAILY_FEE", "n3")];
    const { plans, effects } = run(batch, locked({ a: 0 }));
    expect(kinds(plans, effects)).toEqual(["INSUFFICIENT_BALANCE", "ok 10#1", "ok 8#2"]);
  });

  it("does not change the locked state it was given", () => {
    const owners = locked({ a: 5 }, { a: [grant(1, 5, "2026-03-02T00:00:00Z")] });
    const copy = structuredClone(owners);
    run([post("a", "CREDIT_SPEND", "n1")], owners);
    expect(owners).toEqual(copy);
  });

  it("drops the rows a lock created for owners nothing was written for", () => {
    const owners = locked({ a: 0, b: 0 }).map((o) => ({ ...o, created: true }));
    const { effects } = run([post("a", "CREDIT_SPEND", "n1"), post("b", "CREDIT_ADD", "n2")], owners);
    expect(effects.unusedOwners).toEqual(["a"]);
  });
});

describe("credits that expire", () => {
  it("a credit with expires_at opens a grant; an operation with its own expiry dates it from the write", () => {
    const batch = [
      post("a", "CREDIT_ADD", "n1", { expires_at: "2026-03-05T00:00:00+02:00" }),
      post("a", "PROMO", "n2"),
      post("a", "CREDIT_ADD", "n3"),
    ];
    const { effects } = run(batch, locked({ a: 0 }));
    expect(effects.entries.map((e) => e.expiresAt?.toISOString() ?? null)).toEqual([
      "2026-03-04T22:00:00.000Z",
      "2026-03-31T12:00:00.000Z",
      null,
    ]);
    expect(effects.grants.map((g) => [g.sequence, g.amount, g.remaining, g.isNew])).toEqual([
      [1, 10, 10, true],
      [2, 20, 20, true],
    ]);
    expect(effects.allocations).toEqual([]);
  });

  it("refuses an expires_at in the past or more than ten years ahead, at the instant of the write", () => {
    const batch = [
      post("a", "CREDIT_ADD", "n1", { expires_at: "2026-03-01T12:00:00Z" }),
      post("a", "CREDIT_ADD", "n2", { expires_at: "2036-03-02T12:00:00Z" }),
      post("a", "CREDIT_ADD", "n3", { expires_at: "2036-03-01T11:59:59Z" }),
    ];
    const { plans, effects } = run(batch, locked({ a: 0 }));
    expect(kinds(plans, effects)).toEqual(["VALIDATION_FAILED", "VALIDATION_FAILED", "ok 10#1"]);
  });

  it("refuses expires_at on an operation that does not take it, before any database work", () => {
    expect(() => post("a", "PROMO", "n", { expires_at: "2026-04-01T00:00:00Z" })).toThrow(
      expect.objectContaining({ code: "EXPIRY_NOT_ALLOWED" }),
    );
    expect(() => post("a", "CREDIT_SPEND", "n", { expires_at: "2026-04-01T00:00:00Z" })).toThrow(
      expect.objectContaining({ code: "EXPIRY_NOT_ALLOWED" }),
    );
  });

  it("spends the soonest expiry first, the older grant on a tie, credits without expiry last", () => {
    // balance 30: 10 without expiry, grants #1 (5, Mar 9), #2 (7, Mar 3), #3 (8, Mar 3).
    const owners = locked(
      { a: 30 },
      {
        a: [
          grant(1, 5, "2026-03-09T00:00:00Z"),
          grant(3, 8, "2026-03-03T00:00:00Z"),
          grant(2, 7, "2026-03-03T00:00:00Z"),
        ],
      },
    );
    const { effects } = run(
      [post("a", "TEST_DEBIT", "n1", { amount: 18 }), post("a", "TEST_DEBIT", "n2", { amount: 5 })],
      owners,
    );
    expect(effects.allocations).toEqual([
      { ownerId: "a", sequence: 4, grantSequence: 2, grantPart: 0, amount: 7 },
      { ownerId: "a", sequence: 4, grantSequence: 3, grantPart: 0, amount: 8 },
      { ownerId: "a", sequence: 4, grantSequence: 1, grantPart: 0, amount: 3 },
      { ownerId: "a", sequence: 5, grantSequence: 1, grantPart: 0, amount: 2 },
    ]);
    expect(effects.grants.map((g) => [g.sequence, g.remaining])).toEqual([
      [2, 0],
      [3, 0],
      [1, 0],
    ]);
    expect(effects.owners[0]?.balance).toBe(7);
  });

  it("a debit that spends no expiring credit writes no allocation", () => {
    const { effects } = run([post("a", "CREDIT_SPEND", "n1")], locked({ a: 3 }));
    expect(effects.allocations).toEqual([]);
    expect(effects.grants).toEqual([]);
  });

  it("a write for an owner first expires its due grants, each by an EXPIRY entry under its app", () => {
    // balance 15: 5 without expiry, grant #1 (4 left, due) of app "other", grant #2 (6 left, due at NOW).
    const owners = () =>
      locked(
        { a: 15 },
        { a: [grant(1, 4, "2026-03-01T11:00:00Z", "other"), grant(2, 6, "2026-03-01T12:00:00Z")] },
      );
    const { plans, effects } = run([post("a", "TEST_DEBIT", "n1", { amount: 5 })], owners());
    expect(plans[0]?.kind).toBe("accepted");
    expect(
      effects.entries.map((e) => [e.app, e.operation, e.amount, e.balanceAfter, e.sequence, e.nonce]),
    ).toEqual([
      ["other", "EXPIRY", -4, 11, 3, "ledger 3 a"],
      ["app", "EXPIRY", -6, 5, 4, "ledger 4 a"],
      ["app", "TEST_DEBIT", -5, 0, 5, "n1"],
    ]);
    expect(effects.allocations).toEqual([
      { ownerId: "a", sequence: 3, grantSequence: 1, grantPart: 0, amount: 4 },
      { ownerId: "a", sequence: 4, grantSequence: 2, grantPart: 0, amount: 6 },
    ]);
    expect(effects.grants.map((g) => [g.sequence, g.remaining, g.expiredSequence])).toEqual([
      [1, 0, 3],
      [2, 0, 4],
    ]);
    // Expired credits never count: 6 is more than the 5 left. The refusal writes nothing, expiry included.
    const refused = run([post("a", "TEST_DEBIT", "n2", { amount: 6 })], owners());
    expect(kinds(refused.plans, refused.effects)).toEqual(["INSUFFICIENT_BALANCE"]);
    expect(refused.effects.entries).toEqual([]);
  });

  it("the sweeper's command expires what is due and nothing else, once", () => {
    const owners = locked(
      { a: 9 },
      { a: [grant(1, 4, "2026-03-01T11:00:00Z"), grant(2, 5, "2026-03-02T00:00:00Z")] },
    );
    const { plans, effects } = run([expireDue("a"), expireDue("a")], owners);
    const answers = plans.map((p) => (p.kind === "accepted" ? p.answer([]) : p.kind));
    expect(answers).toEqual([1, 0]);
    expect(effects.entries.map((e) => [e.operation, e.amount, e.balanceAfter])).toEqual([["EXPIRY", -4, 5]]);
  });
});
