// The pure part of a debit's reversal: where the credits go back to, in full and in parts.
import { describe, expect, it } from "vitest";
import type { StoredGrant } from "../../engine/state.js";
import type { EntryRow } from "../../store/reads.js";
import { planRestore, type OriginalEntry, type ReversedSoFar } from "./command.js";

const grant = (sequence: number, expiresAt: string, part = 0): StoredGrant => ({
  sequence,
  part,
  app: "app1",
  amount: 10,
  remaining: 0,
  expiresAt: new Date(expiresAt),
  createdAt: new Date("2026-01-01T00:00:00Z"),
  expiredSequence: null,
});

const soon = grant(1, "2026-02-01T00:00:00Z");
const later = grant(2, "2026-03-01T00:00:00Z");
const carried = grant(3, "2026-02-15T00:00:00Z", 1);

/** A debit of `amount` that took these draws (in any order: the plan sorts them by burn order). */
function debit(amount: number, draws: [StoredGrant, number][]): OriginalEntry {
  return {
    row: { id: 9, amount: BigInt(-amount) } as EntryRow,
    draws: draws.map(([g, n]) => ({ grantSequence: g.sequence, grantPart: g.part, amount: n })),
  };
}

const none = (grants: StoredGrant[]): ReversedSoFar => ({ reversed: 0, restored: new Map(), grants });
const plan = (to: { grant: StoredGrant; amount: number }[]) => to.map((t) => [t.grant.sequence, t.amount]);

describe("planRestore", () => {
  const original = debit(10, [
    [later, 3],
    [soon, 2],
    [carried, 1],
  ]);
  const grants = [soon, later, carried];

  it("gives everything back to where it came from in a full reversal", () => {
    expect(plan(planRestore(original, none(grants), 10))).toEqual([
      [2, 3],
      [3, 1],
      [1, 2],
    ]);
  });

  it("gives the credits without expiry back first, then the grants from the latest expiry", () => {
    expect(plan(planRestore(original, none(grants), 4))).toEqual([]);
    expect(plan(planRestore(original, none(grants), 5))).toEqual([[2, 1]]);
    expect(plan(planRestore(original, none(grants), 8))).toEqual([
      [2, 3],
      [3, 1],
    ]);
  });

  it("continues where the earlier reversals stopped, so the parts add up to the full reversal", () => {
    const soFar: ReversedSoFar = { reversed: 6, restored: new Map([["2.0", 2]]), grants };
    expect(plan(planRestore(original, soFar, 4))).toEqual([
      [2, 1],
      [3, 1],
      [1, 2],
    ]);
  });

  it("refuses to plan more than the debit took (the command checks what is left first)", () => {
    expect(() => planRestore(original, none(grants), 11)).toThrow(/nowhere to go/);
  });
});
