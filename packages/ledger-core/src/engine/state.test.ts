// The ledger's own rules for holds, give-backs, carried expiries and suspension, in the draft, without a
// database: what a command's effects are, whatever the feature that asks for them.
import { describe, expect, it } from "vitest";
import type { OpenGrant } from "../domain/grants.js";
import type { Command } from "./command.js";
import { decideBatch, GroupRefused } from "./group-commit.js";
import { BatchState, type Draft, type LockedOwner, type StoredGrant } from "./state.js";

const NOW = new Date("2026-03-01T12:00:00Z");
const at = (iso: string) => new Date(iso);
const later = (s: number) => new Date(NOW.getTime() + s * 1000);

const grant = (sequence: number, remaining: number, expiresAt: string, amount = remaining): OpenGrant => ({
  sequence,
  part: 0,
  app: "app",
  amount,
  remaining,
  expiresAt: at(expiresAt),
});

function owner(balance: number, grants: OpenGrant[] = [], extra: Partial<LockedOwner> = {}): LockedOwner {
  return {
    ownerId: "a",
    balance,
    held: 0,
    lastSequence: 10,
    status: "active",
    created: false,
    grants,
    holds: [],
    ...extra,
  };
}

/** Runs steps, each in its own draft folded into one state, and returns the state's effects. */
function decide(owners: LockedOwner[], ...steps: ((d: Draft) => void)[]) {
  const state = new BatchState(owners, []);
  for (const step of steps) {
    const d = state.draft();
    step(d);
    state.commit(d);
  }
  return { state, effects: state.effects() };
}

const entryRows = (e: ReturnType<BatchState["effects"]>) =>
  e.entries.map((x) => [x.operation, x.amount, x.balanceAfter, x.heldAfter, x.sequence]);

const hold = (d: Draft, id: string, amount: number, expiresAt = later(900), now = NOW) =>
  d.placeHold({ id, app: "app", ownerId: "a", operation: "SPEND", amount, expiresAt, nonce: `n-${id}` }, now);

describe("holds in the draft", () => {
  it("a hold takes available credits from unheld grants in burn order, then credits without expiry", () => {
    // balance 12: grant #1 of 5 (soonest), grant #2 of 4, 3 without expiry.
    const grants = [grant(2, 4, "2026-03-09T00:00:00Z"), grant(1, 5, "2026-03-05T00:00:00Z")];
    const { state, effects } = decide(
      [owner(12, grants)],
      (d) => hold(d, "h1", 7),
      (d) => hold(d, "h2", 4),
    );
    expect(entryRows(effects)).toEqual([
      ["HOLD", 0, 12, 7, 11],
      ["HOLD", 0, 12, 11, 12],
    ]);
    expect(effects.holds.map((h) => [h.id, h.draws])).toEqual([
      [
        "h1",
        [
          { grantSequence: 1, grantPart: 0, amount: 5 },
          { grantSequence: 2, grantPart: 0, amount: 2 },
        ],
      ],
      ["h2", [{ grantSequence: 2, grantPart: 0, amount: 2 }]],
    ]);
    const view = state.draft().owner("a", NOW);
    expect([view.balance, view.held, view.available]).toEqual([12, 11, 1]);
    expect(() => hold(state.draft(), "h3", 2)).toThrow(
      expect.objectContaining({ code: "INSUFFICIENT_BALANCE" }),
    );
  });

  it("a debit takes only available credits, whatever the balance", () => {
    const { state } = decide([owner(10)], (d) => hold(d, "h1", 8));
    const d = state.draft();
    expect(() =>
      d.append({ app: "app", operation: "SPEND", ownerId: "a", amount: -3, nonce: "n" }, NOW),
    ).toThrow(
      expect.objectContaining({
        code: "INSUFFICIENT_BALANCE",
        details: expect.objectContaining({ balance: 2 }),
      }),
    );
  });

  it("credits under a live hold do not expire; released past their expiry, they expire at once", () => {
    const { state } = decide([owner(10, [grant(1, 10, "2026-03-01T13:00:00Z")])], (d) =>
      hold(d, "h1", 6, later(7200)),
    );
    const afterExpiry = later(3600 + 60);
    // Past the grant's expiry: the unheld 4 stop counting, the held 6 still count.
    const view = state.draft().owner("a", afterExpiry);
    expect([view.balance, view.held, view.available]).toEqual([6, 6, 0]);
    const d = state.draft();
    d.releaseHold("a", "h1", { nonce: "rel", now: afterExpiry });
    state.commit(d);
    const effects = state.effects();
    expect(entryRows(effects)).toEqual([
      ["HOLD", 0, 10, 6, 11],
      ["EXPIRY", -4, 6, 6, 12],
      ["HOLD_RELEASE", 0, 6, 0, 13],
      ["EXPIRY", -6, 0, 0, 14],
    ]);
    expect(effects.entries.map((e) => e.nonce)).toEqual(["n-h1", "ledger 12 a", "rel", "ledger 14 a"]);
    expect(effects.grants).toMatchObject([{ sequence: 1, remaining: 0, expiredSequence: 14 }]);
  });

  it("a capture spends its hold's own credits, even past their expiry, and releases the rest", () => {
    const { state } = decide([owner(10, [grant(1, 10, "2026-03-01T13:00:00Z")])], (d) =>
      hold(d, "h1", 6, later(7200)),
    );
    const d = state.draft();
    d.captureHold("a", "h1", { amount: 4, nonce: "cap", now: later(3700) });
    state.commit(d);
    const effects = state.effects();
    expect(entryRows(effects)).toEqual([
      ["HOLD", 0, 10, 6, 11],
      ["EXPIRY", -4, 6, 6, 12],
      ["SPEND", -4, 2, 0, 13],
      ["EXPIRY", -2, 0, 0, 14],
    ]);
    expect(effects.entries[2]).toMatchObject({ holdId: "h1" });
    expect(effects.holds).toMatchObject([
      { id: "h1", status: "captured", capturedAmount: 4, endSequence: 13 },
    ]);
    expect(effects.allocations.map((x) => [x.sequence, x.amount])).toEqual([
      [12, 4],
      [13, 4],
      [14, 2],
    ]);
  });

  it("a hold past its expiry stops counting at once, and the owner's next write records it first", () => {
    const { state } = decide([owner(10)], (d) => hold(d, "h1", 8, later(60)));
    expect(state.draft().owner("a", later(60)).available).toBe(10);
    expect(state.draft().hold("a", "h1", later(60))?.status).toBe("expired");
    const d = state.draft();
    d.append({ app: "app", operation: "SPEND", ownerId: "a", amount: -9, nonce: "n" }, later(61));
    state.commit(d);
    expect(entryRows(state.effects())).toEqual([
      ["HOLD", 0, 10, 8, 11],
      ["HOLD_EXPIRY", 0, 10, 0, 12],
      ["SPEND", -9, 1, 0, 13],
    ]);
    expect(state.effects().holds).toMatchObject([{ id: "h1", status: "expired", endSequence: 12 }]);
  });
});

describe("give-backs, carried expiries and suspension", () => {
  it("a credit given back to a grant past its expiry expires again at once", () => {
    const closed: StoredGrant = {
      ...grant(1, 0, "2026-03-01T11:00:00Z", 10),
      createdAt: at("2026-02-01T00:00:00Z"),
      expiredSequence: 5,
    };
    const { effects } = decide([owner(0)], (d) =>
      d.append(
        {
          app: "app",
          operation: "REVERSAL",
          ownerId: "a",
          amount: 7,
          nonce: "rev",
          reverses: 3,
          credit: { kind: "restore", to: [{ grant: closed, amount: 3 }] },
        },
        NOW,
      ),
    );
    expect(entryRows(effects)).toEqual([
      ["REVERSAL", 7, 7, 0, 11],
      ["EXPIRY", -3, 4, 0, 12],
    ]);
    expect(effects.allocations.map((x) => [x.sequence, x.grantSequence, x.amount])).toEqual([
      [11, 1, -3],
      [12, 1, 3],
    ]);
    expect(effects.grants).toMatchObject([{ sequence: 1, remaining: 0, expiredSequence: 12, isNew: false }]);
  });

  it("a credit may open one grant per part, each with its own expiry", () => {
    const { effects } = decide([owner(0)], (d) =>
      d.append(
        {
          app: "app",
          operation: "TRANSFER_IN",
          ownerId: "a",
          amount: 9,
          nonce: "in",
          credit: {
            kind: "grants",
            parts: [
              { expiresAt: at("2026-03-05T00:00:00Z"), amount: 2 },
              { expiresAt: at("2026-03-07T00:00:00Z"), amount: 3 },
            ],
          },
        },
        NOW,
      ),
    );
    expect(effects.grants.map((g) => [g.sequence, g.part, g.amount, g.expiresAt.toISOString()])).toEqual([
      [11, 0, 2, "2026-03-05T00:00:00.000Z"],
      [11, 1, 3, "2026-03-07T00:00:00.000Z"],
    ]);
  });

  it("a suspended owner takes what ends or undoes, and nothing else", () => {
    const { state } = decide([owner(10, [], { status: "suspended" })]);
    const credit = (operation: string) => () =>
      state.draft().append({ app: "app", operation, ownerId: "a", amount: 1, nonce: operation }, NOW);
    expect(credit("CREDIT_ADD")).toThrow(expect.objectContaining({ code: "OWNER_SUSPENDED" }));
    expect(credit("TRANSFER_IN")).toThrow(expect.objectContaining({ code: "OWNER_SUSPENDED" }));
    expect(() => hold(state.draft(), "h", 1)).toThrow(expect.objectContaining({ code: "OWNER_SUSPENDED" }));
    expect(credit("REVERSAL")).not.toThrow();
  });
});

describe("atomic groups", () => {
  const credit = (nonce: string, amount: number): Command<number> => ({
    kind: "test.credit",
    nonce,
    needs: () => ({ owners: ["a"] }),
    decide: (d, now) => {
      d.append({ app: "app", operation: "T", ownerId: "a", amount, nonce }, now);
      return { ok: true, answer: () => amount };
    },
    replay: () => amount,
  });

  it("an atomic group with a refused command writes none of its commands; its neighbours are untouched", () => {
    const state = new BatchState([owner(5)], []);
    const plans = decideBatch(
      [
        { commands: [credit("x", 1)], atomic: false },
        { commands: [credit("g1", 2), credit("g2", -100), credit("g3", 1)], atomic: true },
        { commands: [credit("y", 1)], atomic: false },
      ],
      new Map(),
      state,
      NOW,
    );
    expect(plans.map((p) => p.kind)).toEqual([
      "accepted",
      "group-refused",
      "group-refused",
      "group-refused",
      "accepted",
    ]);
    const refusal = plans[1]?.kind === "group-refused" ? plans[1].refusal : undefined;
    expect(refusal).toBeInstanceOf(GroupRefused);
    expect([refusal?.index, refusal?.error.code]).toEqual([1, "INSUFFICIENT_BALANCE"]);
    expect(entryRows(state.effects())).toEqual([
      ["T", 1, 6, 0, 11],
      ["T", 1, 7, 0, 12],
    ]);
  });

  it("an atomic group whose commands are all accepted is written in full", () => {
    const state = new BatchState([owner(0)], []);
    const plans = decideBatch(
      [{ commands: [credit("g1", 2), credit("g2", -2)], atomic: true }],
      new Map(),
      state,
      NOW,
    );
    expect(plans.map((p) => p.kind)).toEqual(["accepted", "accepted"]);
    expect(state.effects().entries).toHaveLength(2);
  });
});
