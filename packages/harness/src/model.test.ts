// The checker is what turns a chaos run into a verdict, so it is tested on its own: a consistent history
// passes, and each way a ledger can go wrong (a lost acknowledgement, a duplicate, a refused write that
// landed, an entry nobody sent, a wrong balance, a broken running balance, a 409 on a retry, an outcome
// never resolved; with credits that expire: an expiry missed, an EXPIRY entry for no grant, twice, or
// for the wrong amount, a balance still counting what expired) is reported under its own name.
import { describe, expect, it } from "vitest";
import type { Entry } from "./client.js";
import {
  checkLedger,
  parseExpiryNonce,
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

// Credits that expire. alice's story, T = 12:00:00 (app1 and app2 share her):
//   #1 app1 CREDIT_ADD +10, expires T+5s        (grant #1)
//   #2 app2 CREDIT_ADD +10, expires T+3s        (grant #2)
//   #3 app1 CREDIT_ADD +10, no expiry
//   #4 app2 TOKEN_USAGE -12 at T+2s: burn order takes grant #2 (sooner) to 0, then 2 of grant #1
//   #5 EXPIRY of grant #1 at T+6s: the 8 left of it, under app1, written by the next write...
//   #6 app1 CREDIT_SPEND -1 at T+6s, in the same transaction
//   #7 app2 PROMO_CREDIT +20 at T+7s, expiring 30 days later (grant #7, still counting)
// read at T+8s..T+9s: balance 29, expiring [20 at T+7s+30d].
const T = Date.parse("2026-03-01T12:00:00.000Z");
const at = (s: number) => new Date(T + s * 1000).toISOString();
const PROMO_EXPIRES = new Date(T + 7_000 + 30 * 86_400_000).toISOString();

interface Line {
  app: "app1" | "app2";
  operation: string;
  nonce: string;
  amount: number;
  createdS: number;
  expiresAt?: string;
  /** What the client sent as expires_at (CREDIT_ADD); PROMO_CREDIT's comes from its catalog. */
  sent?: boolean;
}

function history(lines: readonly Line[]): Entry[] {
  let balance = 0;
  return lines.map((l, i) => {
    balance += l.amount;
    return {
      id: 1_000 + i,
      app: l.app,
      operation: l.operation,
      owner_id: OWNER,
      amount: l.amount,
      balance_after: balance,
      sequence: i + 1,
      nonce: l.nonce,
      created_at: at(l.createdS),
      ...(l.expiresAt === undefined ? {} : { expires_at: l.expiresAt }),
    };
  });
}

const STORY: readonly Line[] = [
  {
    app: "app1",
    operation: "CREDIT_ADD",
    nonce: "g1",
    amount: 10,
    createdS: 0,
    expiresAt: at(5),
    sent: true,
  },
  {
    app: "app2",
    operation: "CREDIT_ADD",
    nonce: "g2",
    amount: 10,
    createdS: 0.5,
    expiresAt: at(3),
    sent: true,
  },
  { app: "app1", operation: "CREDIT_ADD", nonce: "c3", amount: 10, createdS: 1 },
  { app: "app2", operation: "TOKEN_USAGE", nonce: "d4", amount: -12, createdS: 2 },
  { app: "app1", operation: "EXPIRY", nonce: "expiry 1 alice", amount: -8, createdS: 6, expiresAt: at(5) },
  { app: "app1", operation: "CREDIT_SPEND", nonce: "d6", amount: -1, createdS: 6 },
  { app: "app2", operation: "PROMO_CREDIT", nonce: "p7", amount: 20, createdS: 7, expiresAt: PROMO_EXPIRES },
];

/** The client's records of a history: every entry but EXPIRY acknowledged, as it answered. */
function recordsOf(lines: readonly Line[], entries: readonly Entry[]): OpRecord[] {
  return lines.flatMap((l, i) => {
    const e = entries[i];
    if (l.operation === "EXPIRY" || !e) return [];
    const op = acked(e);
    op.app = l.app;
    if (l.sent) op.body.expires_at = l.expiresAt;
    return [op];
  });
}

function grantWorld(lines: readonly Line[] = STORY, balance?: number) {
  const entries = history(lines);
  const ops = recordsOf(lines, entries);
  const listed = entries.reduce((sum, e) => sum + e.amount, 0);
  const snapshot: LedgerSnapshot = {
    owners: [OWNER],
    entries: [...entries].reverse(),
    balances: new Map([[OWNER, balance ?? listed]]),
    expiring: new Map([[OWNER, [{ amount: 20, expires_at: PROMO_EXPIRES }]]]),
    readWindow: { fromMs: T + 8_000, toMs: T + 9_000 },
    totalEntries: entries.length,
    totalExpiryEntries: entries.filter((e) => e.operation === "EXPIRY").length,
  };
  return { ops, snapshot };
}

/** STORY with line `index` replaced (or removed, with `null`), and lines appended. */
function variant(index: number, line: Partial<Line> | null, ...extra: Line[]): Line[] {
  const lines = STORY.flatMap((l, i) => (i !== index ? [l] : line === null ? [] : [{ ...l, ...line }]));
  return [...lines, ...extra];
}

describe("checkLedger with credits that expire", () => {
  it("passes a history whose grants are spent in burn order and expired for what was left", () => {
    const { ops, snapshot } = grantWorld();
    expect(snapshot.balances.get(OWNER)).toBe(29);
    expect(checkLedger(ops, snapshot, { allowedRefusals })).toEqual([]);
  });

  it("passes a balance read after an expiry the ledger has not written yet, without the remainder", () => {
    // No write came after T+5s: grant #1's 8 stop counting at once, EXPIRY entry or not.
    const lines = STORY.slice(0, 4);
    const { ops, snapshot } = grantWorld(lines, 18 - 8);
    expect(kinds(ops, { ...snapshot, expiring: new Map([[OWNER, []]]) })).toEqual([]);
    // The same read still counting them is wrong, by both sums.
    const counted = grantWorld(lines, 18);
    expect(kinds(counted.ops, { ...counted.snapshot, expiring: new Map([[OWNER, []]]) })).toEqual([
      "balance-mismatch",
      "balance-mismatch",
    ]);
  });

  it("reports an EXPIRY entry for a grant that does not exist (a credit without expiry, or none)", () => {
    for (const nonce of ["expiry 3 alice", "expiry 99 alice", "expiry 1 bob", "expiry one alice"]) {
      const lines = variant(-1, {}, { ...(STORY[4] as Line), nonce, amount: -1, createdS: 8 });
      const { ops, snapshot } = grantWorld(lines);
      expect(kinds(ops, { ...snapshot, readWindow: { fromMs: T + 9_000, toMs: T + 9_500 } }), nonce).toEqual([
        "bad-expiry",
      ]);
    }
  });

  it("reports a grant expired twice, even under another app (where no unique key stops it)", () => {
    const again = { ...(STORY[4] as Line), app: "app2" as const, amount: 0, createdS: 8 };
    const { ops, snapshot } = grantWorld(variant(-1, {}, again));
    const found = checkLedger(
      ops,
      { ...snapshot, readWindow: { fromMs: T + 9_000, toMs: T + 9_500 } },
      { allowedRefusals },
    );
    expect(found.map((x) => x.kind)).toEqual(["bad-expiry"]);
    expect(found[0]?.detail).toMatch(/already expired by #5/);
  });

  it("on a tie in expiry, spends the older grant first", () => {
    // Grants #1 and #2 both expire at T+5s; the -12 takes all of #1 and 2 of #2, so 8 of #2 expire.
    const lines: Line[] = [
      { ...(STORY[0] as Line) },
      { ...(STORY[1] as Line), expiresAt: at(5) },
      ...STORY.slice(2, 4),
      { ...(STORY[4] as Line), nonce: "expiry 2 alice", app: "app2" },
      ...STORY.slice(5),
    ];
    const { ops, snapshot } = grantWorld(lines);
    expect(kinds(ops, snapshot)).toEqual([]);
    // A ledger that spent the newer one first would expire 8 of #1: wrong, and #2's 8 never expire.
    lines[4] = { ...(STORY[4] as Line), nonce: "expiry 1 alice" };
    const newerFirst = grantWorld(lines);
    expect(kinds(newerFirst.ops, newerFirst.snapshot)).toEqual(
      expect.arrayContaining(["bad-expiry", "expiry-missed"]),
    );
  });

  it("reports a write for an owner while a due grant of its still counts (no EXPIRY before it)", () => {
    // The EXPIRY entry is gone: the debit at T+6s came after grant #1's expiry with 8 of it left.
    // The balance read excludes the 8 (due), so the sums agree: only the missed expiry is wrong.
    const { ops, snapshot } = grantWorld(variant(4, null), 37 - 8);
    expect(kinds(ops, snapshot)).toEqual(["expiry-missed"]);
  });

  it.each([
    ["the amount burn order does not leave (grant #1 spent first)", { amount: -10 }],
    ["nothing, for what was left", { amount: 0 }],
    ["another app than the one that granted it", { app: "app2" as const }],
    ["an expires_at that is not the grant's", { expiresAt: at(4) }],
    ["a created_at before the grant's expiry", { createdS: 4.5 }],
  ])("reports an EXPIRY entry with %s", (_, change) => {
    const { ops, snapshot } = grantWorld(variant(4, change));
    expect(kinds(ops, snapshot)).toEqual(["bad-expiry"]);
  });

  it("reports an EXPIRY entry of a grant spent to nothing", () => {
    const spentAll = { ...(STORY[3] as Line), amount: -20 };
    const lines = variant(4, null, { ...(STORY[4] as Line), amount: 0, createdS: 8 });
    lines[3] = spentAll;
    const { ops, snapshot } = grantWorld(lines);
    expect(kinds(ops, { ...snapshot, readWindow: { fromMs: T + 9_000, toMs: T + 9_500 } })).toEqual([
      "bad-expiry",
    ]);
  });

  it("reports a credit whose expires_at is not the one its request or its catalog gives", () => {
    const sent = grantWorld();
    const g1 = sent.ops.find((o) => o.body.nonce === "g1");
    if (!g1) throw new Error("g1 is in the story");
    g1.body.expires_at = at(4);
    expect(kinds(sent.ops, sent.snapshot)).toEqual(["answer-mismatch"]);
    const promo = grantWorld(variant(6, { expiresAt: at(7 + 86_400) }));
    expect(
      kinds(promo.ops, {
        ...promo.snapshot,
        expiring: new Map([[OWNER, [{ amount: 20, expires_at: at(7 + 86_400) }]]]),
      }),
    ).toEqual(["answer-mismatch"]);
  });

  it("reports an `expiring` that is not the open grants' remainders", () => {
    const { ops, snapshot } = grantWorld();
    for (const expiring of [[], [{ amount: 19, expires_at: PROMO_EXPIRES }]]) {
      expect(kinds(ops, { ...snapshot, expiring: new Map([[OWNER, expiring]]) })).toEqual([
        "expiring-mismatch",
      ]);
    }
  });

  it("counts EXPIRY entries among the database's entries, and against its own count of them", () => {
    const { ops, snapshot } = grantWorld();
    expect(kinds(ops, { ...snapshot, totalEntries: 6 })).toEqual(["entry-count"]);
    expect(kinds(ops, { ...snapshot, totalExpiryEntries: 0 })).toEqual(["entry-count"]);
    // An EXPIRY entry the listing lost breaks the chain and the count.
    const entries = snapshot.entries.filter((e) => e.operation !== "EXPIRY");
    expect(kinds(ops, { ...snapshot, entries })).toEqual(
      expect.arrayContaining(["broken-chain", "entry-count"]),
    );
  });

  it("will not judge a balance read while one of the grants it counts expired", () => {
    const { ops, snapshot } = grantWorld(STORY.slice(0, 4), 10);
    expect(kinds(ops, { ...snapshot, readWindow: { fromMs: T + 4_000, toMs: T + 6_000 } })).toContain(
      "harness",
    );
    expect(kinds(ops, { ...snapshot, readWindow: undefined })).toContain("harness");
  });

  it("accepts VALIDATION_FAILED on expires_at only for a request whose expires_at had passed", () => {
    const { ops, snapshot } = grantWorld();
    const late = (expiresS: number, answeredS: number, paths = ["expires_at"]): OpRecord => ({
      app: "app1",
      body: {
        owner_id: OWNER,
        operation: "CREDIT_ADD",
        nonce: `late-${expiresS}-${paths.join()}`,
        expires_at: at(expiresS),
      },
      amount: 10,
      attempts: 3,
      unknowns: ["connection-refused", "connection-refused"],
      outcome: { kind: "refused", status: 400, code: "VALIDATION_FAILED", paths },
      answeredAtMs: T + answeredS * 1000,
    });
    expect(kinds([...ops, late(3, 4)], snapshot)).toEqual([]);
    expect(kinds([...ops, late(5, 4)], snapshot)).toEqual(["unexpected-refusal"]);
    expect(kinds([...ops, late(3, 4, ["amount"])], snapshot)).toEqual(["unexpected-refusal"]);
    // Refused, yet written: still a violation.
    const written = late(3, 4);
    const line: Line = {
      app: "app1",
      operation: "CREDIT_ADD",
      nonce: written.body.nonce,
      amount: 10,
      createdS: 8,
      expiresAt: at(8.5),
    };
    const withIt = grantWorld([...STORY, line]);
    expect(
      kinds([...withIt.ops.filter((o) => o.body.nonce !== written.body.nonce), written], withIt.snapshot),
    ).toEqual(expect.arrayContaining(["refused-but-present"]));
  });
});

describe("parseExpiryNonce", () => {
  it("reads the grant's sequence and owner from `expiry <grant_sequence> <owner_id>`", () => {
    expect(parseExpiryNonce("expiry 12 alice")).toEqual({ grantSequence: 12, ownerId: "alice" });
    for (const nonce of ["expiry 0 alice", "expiry 1", "expiry-1-alice", "expiry 1 a b", "EXPIRY 1 alice"]) {
      expect(parseExpiryNonce(nonce), nonce).toBeUndefined();
    }
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
