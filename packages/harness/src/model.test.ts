// The checker is what turns a chaos run into a verdict, so it is tested on its own: a consistent history
// passes, and each way a ledger can go wrong (a lost acknowledgement, a duplicate, a refused write that
// landed, an entry nobody sent, a wrong balance, a broken running balance, a 409 on a retry, an outcome
// never resolved; with credits that expire: an expiry missed, an EXPIRY entry for no grant, twice, or
// for the wrong amount, a balance still counting what expired; with holds: held credits expired while
// held, freed ones not expired at once, a debit taking held credits, a capture of an ended hold, a hold
// status or held figure that is not the entries'; reversals beyond their original or of another app's
// entry, a credit's reversal taking more than there was; a transfer without its TRANSFER_IN, or one
// that launders expiry; a write between a suspension and its reinstatement; a batch item refused yet
// written) is reported under its own name.
import { describe, expect, it } from "vitest";
import type { Entry } from "./client.js";
import {
  checkLedger,
  parseLedgerNonce,
  signedAmount,
  type LedgerSnapshot,
  type OpRecord,
  type PostRecord,
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

function acked(e: Entry, opts: { unknowns?: number; replayed?: boolean } = {}): PostRecord {
  return {
    app: e.app === "app2" ? "app2" : "app1",
    body: { owner_id: e.owner_id, operation: e.operation, nonce: e.nonce },
    amount: e.amount,
    attempts: 1 + (opts.unknowns ?? 0),
    unknowns: Array<"timeout">(opts.unknowns ?? 0).fill("timeout"),
    outcome: {
      kind: "acked",
      status: opts.replayed ? 200 : 201,
      result: {
        owner_id: e.owner_id,
        balance: e.balance_after,
        available: e.balance_after,
        replayed: opts.replayed ?? false,
        entry: e,
      },
    },
  };
}

function refused(nonce: string, code = "INSUFFICIENT_BALANCE", status = 422): PostRecord {
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
  { app: "app1", operation: "EXPIRY", nonce: "ledger 5 alice", amount: -8, createdS: 6, expiresAt: at(5) },
  { app: "app1", operation: "CREDIT_SPEND", nonce: "d6", amount: -1, createdS: 6 },
  { app: "app2", operation: "PROMO_CREDIT", nonce: "p7", amount: 20, createdS: 7, expiresAt: PROMO_EXPIRES },
];

/** The client's records of a history: every entry but EXPIRY acknowledged, as it answered. */
function recordsOf(lines: readonly Line[], entries: readonly Entry[]): PostRecord[] {
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

  it("reports an EXPIRY entry when no grant is due with something left, and one not under the ledger's nonce", () => {
    // At T+8 nothing is left to expire: grant #1 was expired at T+6, #2 spent, #7 not due.
    const late = { ...(STORY[4] as Line), nonce: "ledger 8 alice", amount: -1, createdS: 8 };
    const window = { readWindow: { fromMs: T + 9_000, toMs: T + 9_500 } };
    const { ops, snapshot } = grantWorld(variant(-1, {}, late));
    expect(kinds(ops, { ...snapshot, ...window })).toEqual(["bad-expiry"]);
    // The ledger's nonce is `ledger <the entry's own sequence> <owner>`: any other is a client's, never sent.
    for (const nonce of ["ledger 3 alice", "ledger 8 bob", "expiry 1 alice", "ledger eight alice"]) {
      const other = grantWorld(variant(-1, {}, { ...late, nonce }));
      expect(kinds(other.ops, { ...other.snapshot, ...window }), nonce).toContain("unexpected-entry");
    }
  });

  it("reports a grant expired twice, even under another app (where no unique key stops it)", () => {
    const again = {
      ...(STORY[4] as Line),
      nonce: "ledger 8 alice",
      app: "app2" as const,
      amount: 0,
      createdS: 8,
    };
    const { ops, snapshot } = grantWorld(variant(-1, {}, again));
    const found = checkLedger(
      ops,
      { ...snapshot, readWindow: { fromMs: T + 9_000, toMs: T + 9_500 } },
      { allowedRefusals },
    );
    expect(found.map((x) => x.kind)).toEqual(["bad-expiry"]);
    expect(found[0]?.detail).toMatch(/no grant of alice was due/);
  });

  it("on a tie in expiry, spends the older grant first", () => {
    // Grants #1 and #2 both expire at T+5s; the -12 takes all of #1 and 2 of #2, so 8 of #2 expire.
    const lines: Line[] = [
      { ...(STORY[0] as Line) },
      { ...(STORY[1] as Line), expiresAt: at(5) },
      ...STORY.slice(2, 4),
      { ...(STORY[4] as Line), app: "app2" },
      ...STORY.slice(5),
    ];
    const { ops, snapshot } = grantWorld(lines);
    expect(kinds(ops, snapshot)).toEqual([]);
    // A ledger that spent the newer one first would expire 8 of #1, under app1: not what is left.
    lines[4] = { ...(STORY[4] as Line) };
    const newerFirst = grantWorld(lines);
    expect(kinds(newerFirst.ops, newerFirst.snapshot)).toEqual(["bad-expiry"]);
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
    const lines = variant(4, null, {
      ...(STORY[4] as Line),
      nonce: "ledger 7 alice",
      amount: 0,
      createdS: 8,
    });
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
    const late = (expiresS: number, answeredS: number, paths = ["expires_at"]): PostRecord => ({
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

describe("parseLedgerNonce", () => {
  it("reads the entry's sequence and owner from `ledger <sequence> <owner_id>`", () => {
    expect(parseLedgerNonce("ledger 12 alice")).toEqual({ sequence: 12, ownerId: "alice" });
    for (const nonce of ["ledger 0 alice", "ledger 1", "ledger-1-alice", "ledger 1 a b", "LEDGER 1 alice"]) {
      expect(parseLedgerNonce(nonce), nonce).toBeUndefined();
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

// Holds, reversals, transfers, suspension and batches: histories over several owners, written in one
// order (ids), each entry with what it links to. The records are what the client was answered.
interface W {
  owner: string;
  app?: "app1" | "app2";
  operation: string;
  nonce: string;
  amount: number;
  createdS: number;
  expiresAt?: string;
  holdId?: string;
  reverses?: number;
  counterparty?: string;
}

/** The entries of these writes, ids 1, 2, 3... in order, each owner's sequence and balance chained. */
function ledger(writes: readonly W[]): Entry[] {
  const chain = new Map<string, { sequence: number; balance: number }>();
  return writes.map((w, i) => {
    const c = chain.get(w.owner) ?? { sequence: 0, balance: 0 };
    c.sequence += 1;
    c.balance += w.amount;
    chain.set(w.owner, c);
    return {
      id: i + 1,
      app: w.app ?? "app1",
      operation: w.operation,
      owner_id: w.owner,
      amount: w.amount,
      balance_after: c.balance,
      sequence: c.sequence,
      nonce: w.nonce,
      created_at: at(w.createdS),
      ...(w.expiresAt === undefined ? {} : { expires_at: w.expiresAt }),
      ...(w.holdId === undefined ? {} : { hold_id: w.holdId }),
      ...(w.reverses === undefined ? {} : { reverses: w.reverses }),
      ...(w.counterparty === undefined ? {} : { counterparty_owner_id: w.counterparty }),
    };
  });
}

const base = (app: "app1" | "app2") => ({ app, attempts: 1, unknowns: [] as never[] });
const figuresOf = (e: Entry) => ({ balance: e.balance_after, available: e.balance_after, replayed: false });

/** A post acknowledged with this entry (its body from the entry). */
function postOf(e: Entry): PostRecord {
  const app = e.app === "app2" ? "app2" : "app1";
  return {
    ...base(app),
    body: {
      owner_id: e.owner_id,
      operation: e.operation,
      nonce: e.nonce,
      ...(isVariable(app, e.operation) ? { amount: Math.abs(e.amount) } : {}),
      ...(e.expires_at !== undefined && e.operation === "CREDIT_ADD" ? { expires_at: e.expires_at } : {}),
    },
    amount: e.amount,
    outcome: { kind: "acked", status: 201, result: { owner_id: e.owner_id, ...figuresOf(e), entry: e } },
  };
}
function isVariable(app: "app1" | "app2", operation: string): boolean {
  try {
    signedAmount(app, operation);
    return false;
  } catch {
    return true;
  }
}

interface HoldFacts {
  id: string;
  operation: string;
  amount: number;
  expiresS: number;
}
const holdBody = (
  e: Entry,
  h: HoldFacts,
  status: "active" | "captured" | "released" | "expired" = "active",
) => ({
  id: h.id,
  owner_id: e.owner_id,
  app: e.app,
  operation: h.operation,
  amount: h.amount,
  status,
  expires_at: at(h.expiresS),
  created_at: e.created_at,
});
function holdOf(e: Entry, h: HoldFacts): OpRecord {
  return {
    ...base(e.app === "app2" ? "app2" : "app1"),
    kind: "hold",
    body: { owner_id: e.owner_id, operation: h.operation, nonce: e.nonce, amount: h.amount, expires_in_s: 1 },
    outcome: { kind: "acked", status: 201, result: { hold: holdBody(e, h), ...figuresOf(e) } },
  };
}
function captureOf(e: Entry, holdEntry: Entry, h: HoldFacts): OpRecord {
  return {
    ...base(e.app === "app2" ? "app2" : "app1"),
    kind: "capture",
    holdId: h.id,
    body: { nonce: e.nonce, amount: -e.amount },
    outcome: {
      kind: "acked",
      status: 201,
      result: {
        hold: { ...holdBody(holdEntry, h, "captured"), captured_amount: -e.amount },
        entry: e,
        ...figuresOf(e),
      },
    },
  };
}
function reversalOf(e: Entry, original: Entry, reversedAmount: number): OpRecord {
  return {
    ...base(e.app === "app2" ? "app2" : "app1"),
    kind: "reversal",
    entryId: original.id,
    body: { nonce: e.nonce, amount: Math.abs(e.amount) },
    outcome: {
      kind: "acked",
      status: 201,
      result: {
        entry: e,
        ...figuresOf(e),
        original: { id: original.id, amount: original.amount, reversed_amount: reversedAmount },
      },
    },
  };
}
function transferOf(out: Entry, into: Entry): OpRecord {
  const side = (e: Entry) => ({
    owner_id: e.owner_id,
    balance: e.balance_after,
    available: e.balance_after,
    entry: e,
  });
  return {
    ...base(out.app === "app2" ? "app2" : "app1"),
    kind: "transfer",
    body: { from_owner_id: out.owner_id, to_owner_id: into.owner_id, amount: -out.amount, nonce: out.nonce },
    outcome: { kind: "acked", status: 201, result: { from: side(out), to: side(into), replayed: false } },
  };
}
function statusOf(e: Entry): OpRecord {
  const suspended = e.operation === "SUSPENSION";
  return {
    ...base(e.app === "app2" ? "app2" : "app1"),
    kind: suspended ? "suspension" : "reinstatement",
    ownerId: e.owner_id,
    body: { nonce: e.nonce, ...(suspended ? { reason: "review" } : {}) },
    outcome: {
      kind: "acked",
      status: 200,
      result: { owner_id: e.owner_id, status: suspended ? "suspended" : "active", ...figuresOf(e), entry: e },
    },
  };
}

/** The snapshot of a ledger read at T+readS..T+readS+0.5: balances from the entries unless given. */
function snapshotOf(
  entries: Entry[],
  owners: string[],
  readS: number,
  opts: {
    balances?: Record<string, number>;
    figures?: LedgerSnapshot["figures"];
    holds?: LedgerSnapshot["holds"];
  } = {},
): LedgerSnapshot {
  const last = new Map<string, number>();
  for (const e of entries) last.set(e.owner_id, e.balance_after);
  return {
    owners,
    entries: [...entries].reverse(),
    balances: new Map(owners.map((o) => [o, opts.balances?.[o] ?? last.get(o) ?? 0])),
    ...(opts.figures ? { figures: opts.figures } : {}),
    ...(opts.holds ? { holds: opts.holds } : {}),
    readWindow: { fromMs: T + readS * 1000, toMs: T + readS * 1000 + 500 },
    totalEntries: entries.length,
    totalExpiryEntries: entries.filter((e) => e.operation === "EXPIRY").length,
  };
}

const check = (ops: OpRecord[], snapshot: LedgerSnapshot) => kinds(ops, snapshot);
const verdict = (world: { ops: OpRecord[]; snapshot: LedgerSnapshot }) => check(world.ops, world.snapshot);

// alice: 10 expiring at T+5 and 10 without expiry; a hold of 12 (TOKEN_USAGE) at T+1, until T+30, takes
// the 10 of the grant and 2 without expiry; at T+6 the grant is due but wholly held, so nothing expires
// and a spend of 1 takes credits without expiry; the capture of 7 at T+7 spends 7 of the held grant and
// releases the rest: the 3 left of the grant expire at once.
const H1: HoldFacts = { id: "h-1", operation: "TOKEN_USAGE", amount: 12, expiresS: 30 };
const HOLD_STORY: W[] = [
  {
    owner: "alice",
    app: "app2",
    operation: "CREDIT_ADD",
    nonce: "g1",
    amount: 10,
    createdS: 0,
    expiresAt: at(5),
  },
  { owner: "alice", app: "app2", operation: "CREDIT_ADD", nonce: "c2", amount: 10, createdS: 0 },
  {
    owner: "alice",
    app: "app2",
    operation: "HOLD",
    nonce: "h1",
    amount: 0,
    createdS: 1,
    holdId: "h-1",
    expiresAt: at(30),
  },
  { owner: "alice", app: "app1", operation: "CREDIT_SPEND", nonce: "d4", amount: -1, createdS: 6 },
  {
    owner: "alice",
    app: "app2",
    operation: "TOKEN_USAGE",
    nonce: "cap5",
    amount: -7,
    createdS: 7,
    holdId: "h-1",
  },
  {
    owner: "alice",
    app: "app2",
    operation: "EXPIRY",
    nonce: "ledger 6 alice",
    amount: -3,
    createdS: 7,
    expiresAt: at(5),
  },
];

function holdWorld(writes: W[] = HOLD_STORY, opts: Parameters<typeof snapshotOf>[3] = {}) {
  const entries = ledger(writes);
  const byNonce = (n: string) => entries.find((e) => e.nonce === n);
  const ops = entries.flatMap((e): OpRecord[] => {
    if (e.operation === "EXPIRY" || e.operation === "HOLD_EXPIRY") return [];
    if (e.operation === "HOLD") return [holdOf(e, H1)];
    const holdEntry = byNonce("h1");
    if (e.hold_id !== undefined && holdEntry) return [captureOf(e, holdEntry, H1)];
    return [postOf(e)];
  });
  return { ops, snapshot: snapshotOf(entries, ["alice"], 8, opts) };
}

describe("checkLedger with holds", () => {
  it("passes a hold that keeps its credits from expiring, a capture in part, and the rest expiring at once", () => {
    const { ops, snapshot } = holdWorld(HOLD_STORY, {
      figures: new Map([["alice", { available: 9, held: 0, status: "active" }]]),
      holds: new Map([
        ["h-1", { ...holdBody(ledger(HOLD_STORY)[2] as Entry, H1, "captured"), captured_amount: 7 }],
      ]),
    });
    expect(snapshot.balances.get("alice")).toBe(9);
    expect(check(ops, snapshot)).toEqual([]);
  });

  it("passes a hold that expired: HOLD_EXPIRY, then what it held of the due grant expires", () => {
    const writes: W[] = [
      ...HOLD_STORY.slice(0, 4),
      {
        owner: "alice",
        app: "app2",
        operation: "HOLD_EXPIRY",
        nonce: "ledger 5 alice",
        amount: 0,
        createdS: 31,
        holdId: "h-1",
      },
      {
        owner: "alice",
        app: "app2",
        operation: "EXPIRY",
        nonce: "ledger 6 alice",
        amount: -10,
        createdS: 31,
        expiresAt: at(5),
      },
    ];
    const { ops, snapshot } = holdWorld(writes);
    expect(check(ops, { ...snapshot, readWindow: { fromMs: T + 32_000, toMs: T + 33_000 } })).toEqual([]);
  });

  it("reports held credits expired while their hold was live", () => {
    const writes: W[] = [
      ...HOLD_STORY.slice(0, 3),
      {
        owner: "alice",
        app: "app2",
        operation: "EXPIRY",
        nonce: "ledger 4 alice",
        amount: -10,
        createdS: 6,
        expiresAt: at(5),
      },
      ...HOLD_STORY.slice(3, 5),
    ];
    expect(verdict(holdWorld(writes))).toContain("bad-expiry");
  });

  it("reports a write while a capture or release left freed credits of a due grant unexpired", () => {
    const writes: W[] = [
      ...HOLD_STORY.slice(0, 5),
      { owner: "alice", app: "app1", operation: "CREDIT_ADD", nonce: "c6", amount: 10, createdS: 7.5 },
    ];
    const { ops, snapshot } = holdWorld(writes);
    expect(check(ops, snapshot)).toContain("expiry-missed");
  });

  it("reports a debit that took held credits", () => {
    // At T+6 alice has 20, 12 of them held: 8 available.
    const writes = HOLD_STORY.map((w) =>
      w.nonce === "d4" ? { ...w, app: "app2" as const, operation: "TOKEN_USAGE", amount: -9 } : w,
    );
    expect(verdict(holdWorld(writes))).toContain("overdraw");
  });

  it("reports a capture of a hold past its expiry, and a hold past its expiry not recorded before a write", () => {
    const writes = HOLD_STORY.map((w) =>
      w.nonce === "cap5" || w.nonce === "ledger 6 alice" ? { ...w, createdS: 31 } : w,
    );
    const found = verdict(holdWorld(writes));
    expect(found).toEqual(expect.arrayContaining(["bad-hold", "expiry-missed"]));
  });

  it("reports a HOLD_EXPIRY of a hold that was not due", () => {
    const writes: W[] = [
      ...HOLD_STORY.slice(0, 4),
      {
        owner: "alice",
        app: "app2",
        operation: "HOLD_EXPIRY",
        nonce: "ledger 5 alice",
        amount: 0,
        createdS: 10,
        holdId: "h-1",
      },
    ];
    expect(verdict(holdWorld(writes))).toContain("bad-expiry");
  });

  it("reports a hold whose read status, or an owner whose held or available, are not its entries'", () => {
    const hold = holdBody(ledger(HOLD_STORY)[2] as Entry, H1, "expired");
    expect(verdict(holdWorld(HOLD_STORY, { holds: new Map([["h-1", hold]]) }))).toEqual(["hold-mismatch"]);
    const figures = new Map([["alice", { available: 9, held: 12, status: "active" as const }]]);
    expect(verdict(holdWorld(HOLD_STORY, { figures }))).toEqual(["figures-mismatch"]);
  });

  it("counts a live hold's credits as held at the read, and will not judge one that expired during it", () => {
    const writes = HOLD_STORY.slice(0, 4);
    const figures = new Map([["alice", { available: 7, held: 12, status: "active" as const }]]);
    // Read at T+8: the grant is due, but held: it still counts.
    expect(verdict(holdWorld(writes, { figures }))).toEqual([]);
    const { ops, snapshot } = holdWorld(writes, { figures });
    expect(check(ops, { ...snapshot, readWindow: { fromMs: T + 29_800, toMs: T + 30_200 } })).toContain(
      "harness",
    );
  });
});

// bob: a debit of 12 (app2) took the 10 of a grant expiring at T+5 and 2 without expiry; a reversal of 5
// at T+2 gives back the 2 without expiry first, then 3 to the grant; at T+6 the 3 expire first, then the
// reversal of the 7 left gives them back to the grant, past its expiry: they expire at once.
const REVERSAL_STORY: W[] = [
  { owner: "bob", operation: "CREDIT_ADD", nonce: "b1", amount: 10, createdS: 0, expiresAt: at(5) },
  { owner: "bob", operation: "CREDIT_ADD", nonce: "b2", amount: 10, createdS: 0 },
  { owner: "bob", app: "app2", operation: "TOKEN_USAGE", nonce: "b3", amount: -12, createdS: 1 },
  { owner: "bob", app: "app2", operation: "REVERSAL", nonce: "b4", amount: 5, createdS: 2, reverses: 3 },
  { owner: "bob", operation: "EXPIRY", nonce: "ledger 5 bob", amount: -3, createdS: 6, expiresAt: at(5) },
  { owner: "bob", app: "app2", operation: "REVERSAL", nonce: "b6", amount: 7, createdS: 6, reverses: 3 },
  { owner: "bob", operation: "EXPIRY", nonce: "ledger 7 bob", amount: -7, createdS: 6, expiresAt: at(5) },
];

function reversalWorld(writes: W[] = REVERSAL_STORY) {
  const entries = ledger(writes);
  let reversed = 0;
  const ops = entries.flatMap((e): OpRecord[] => {
    if (e.operation === "EXPIRY") return [];
    if (e.operation === "REVERSAL") {
      const original = entries.find((x) => x.id === e.reverses);
      if (!original) return [];
      reversed += Math.abs(e.amount);
      return [reversalOf(e, original, reversed)];
    }
    return [postOf(e)];
  });
  return { ops, snapshot: snapshotOf(entries, ["bob"], 8) };
}

describe("checkLedger with reversals", () => {
  it("passes partial reversals of a debit: credits without expiry back first, then the grant, expired at once past its expiry", () => {
    const { ops, snapshot } = reversalWorld();
    expect(snapshot.balances.get("bob")).toBe(10);
    expect(check(ops, snapshot)).toEqual([]);
  });

  it("reports reversals adding up to more than the original", () => {
    const writes = REVERSAL_STORY.map((w) =>
      w.nonce === "b6" ? { ...w, amount: 8 } : w.nonce === "ledger 7 bob" ? { ...w, amount: -8 } : w,
    );
    expect(verdict(reversalWorld(writes))).toContain("bad-reversal");
  });

  it("reports a reversal of another app's entry, and of an entry that cannot be reversed", () => {
    const other = REVERSAL_STORY.map((w) => (w.nonce === "b4" ? { ...w, app: "app1" as const } : w));
    expect(verdict(reversalWorld(other))).toContain("bad-reversal");
    const expiry = REVERSAL_STORY.map((w) => (w.nonce === "b6" ? { ...w, reverses: 5 } : w));
    expect(verdict(reversalWorld(expiry))).toContain("bad-reversal");
  });

  it("reports credits given back to a grant past its expiry that were not expired at once", () => {
    const writes: W[] = [
      ...REVERSAL_STORY.slice(0, 6),
      { owner: "bob", operation: "CREDIT_ADD", nonce: "b7", amount: 10, createdS: 7 },
    ];
    expect(verdict(reversalWorld(writes))).toContain("expiry-missed");
  });

  it("reports a credit's reversal taking more than the credits without expiry left", () => {
    // After the debit bob has 8 without expiry: taking back the 10 of b2 is more than that.
    const writes: W[] = [
      ...REVERSAL_STORY.slice(0, 3),
      { owner: "bob", operation: "REVERSAL", nonce: "b4", amount: -8, createdS: 2, reverses: 2 },
    ];
    expect(verdict(reversalWorld(writes))).toEqual([]);
    writes[3] = { ...(writes[3] as W), amount: -9 };
    expect(verdict(reversalWorld(writes))).toContain("overdraw");
  });
});

// carol sends dave 12 (app2): 10 of a grant expiring at T+5 and 2 without expiry; dave's 10 carry the
// expiry, under app2, and expire at T+5.
const TRANSFER_STORY: W[] = [
  { owner: "carol", operation: "CREDIT_ADD", nonce: "t1", amount: 10, createdS: 0, expiresAt: at(5) },
  { owner: "carol", operation: "CREDIT_ADD", nonce: "t2", amount: 10, createdS: 0 },
  {
    owner: "carol",
    app: "app2",
    operation: "TRANSFER_OUT",
    nonce: "tr1",
    amount: -12,
    createdS: 1,
    counterparty: "dave",
  },
  {
    owner: "dave",
    app: "app2",
    operation: "TRANSFER_IN",
    nonce: "transfer-in tr1",
    amount: 12,
    createdS: 1,
    counterparty: "carol",
  },
  {
    owner: "dave",
    app: "app2",
    operation: "EXPIRY",
    nonce: "ledger 2 dave",
    amount: -10,
    createdS: 6,
    expiresAt: at(5),
  },
];

function transferWorld(writes: W[] = TRANSFER_STORY, answered = writes) {
  const entries = ledger(writes);
  const answers = ledger(answered);
  const out = answers.find((e) => e.operation === "TRANSFER_OUT");
  const into = answers.find((e) => e.operation === "TRANSFER_IN");
  const ops: OpRecord[] = [
    ...entries.filter((e) => e.operation === "CREDIT_ADD").map(postOf),
    ...(out && into ? [transferOf(out, into)] : []),
  ];
  return { ops, snapshot: snapshotOf(entries, ["carol", "dave"], 8) };
}

describe("checkLedger with transfers", () => {
  it("passes a transfer whose expiring credits keep their expiry on the receiving side", () => {
    const { ops, snapshot } = transferWorld();
    expect([snapshot.balances.get("carol"), snapshot.balances.get("dave")]).toEqual([8, 2]);
    expect(check(ops, snapshot)).toEqual([]);
  });

  it("reports a transfer missing its TRANSFER_IN", () => {
    const writes = TRANSFER_STORY.filter((w) => w.operation !== "TRANSFER_IN" && w.owner !== "dave");
    expect(verdict(transferWorld(writes, TRANSFER_STORY))).toEqual(
      expect.arrayContaining(["lost", "entry-count"]),
    );
  });

  it("reports a TRANSFER_IN that does not match its TRANSFER_OUT", () => {
    const writes = TRANSFER_STORY.map((w) =>
      w.operation === "TRANSFER_IN" ? { ...w, amount: 11 } : w.owner === "dave" ? { ...w, amount: -10 } : w,
    );
    expect(verdict(transferWorld(writes))).toContain("bad-transfer");
  });

  it("reports carried credits that did not expire with the sender's expiry (laundered expiry)", () => {
    const writes = TRANSFER_STORY.filter((w) => w.operation !== "EXPIRY");
    // Read after T+5: the ledger still counts dave's 10, as if they had no expiry.
    const { ops, snapshot } = transferWorld(writes);
    expect(check(ops, snapshot)).toEqual(["balance-mismatch", "balance-mismatch"]);
    const later = [
      ...writes,
      { owner: "dave", app: "app2" as const, operation: "CREDIT_ADD", nonce: "d2", amount: 10, createdS: 7 },
    ];
    expect(verdict(transferWorld(later))).toContain("expiry-missed");
  });
});

describe("checkLedger with suspension", () => {
  const story: W[] = [
    { owner: "erin", operation: "CREDIT_ADD", nonce: "e1", amount: 10, createdS: 0 },
    { owner: "erin", operation: "SUSPENSION", nonce: "e2", amount: 0, createdS: 1 },
    { owner: "erin", app: "app2", operation: "REINSTATEMENT", nonce: "e3", amount: 0, createdS: 2 },
    { owner: "erin", operation: "CREDIT_SPEND", nonce: "e4", amount: -1, createdS: 3 },
  ];
  const world = (writes: W[], status: "active" | "suspended" = "active") => {
    const entries = ledger(writes);
    const ops = entries.map((e) =>
      e.operation === "SUSPENSION" || e.operation === "REINSTATEMENT" ? statusOf(e) : postOf(e),
    );
    const last = entries.at(-1)?.balance_after ?? 0;
    return {
      ops,
      snapshot: snapshotOf(entries, ["erin"], 8, {
        figures: new Map([["erin", { available: last, held: 0, status }]]),
      }),
    };
  };

  it("passes writes after a reinstatement, and reports one between a suspension and its reinstatement", () => {
    expect(verdict(world(story))).toEqual([]);
    const reordered = [story[0], story[1], story[3], story[2]] as W[];
    expect(verdict(world(reordered))).toEqual(["suspended-write"]);
  });

  it("reports a status read that is not the entries'", () => {
    expect(verdict(world(story, "suspended"))).toEqual(["figures-mismatch"]);
  });
});

describe("checkLedger with batches", () => {
  const entries = ledger([{ owner: "fay", operation: "CREDIT_ADD", nonce: "i0", amount: 10, createdS: 0 }]);
  const item0 = entries[0] as Entry;
  const items = [
    { owner_id: "fay", operation: "CREDIT_ADD", nonce: "i0" },
    { owner_id: "fay", operation: "CONTENT_CREATION", nonce: "i1" },
    { owner_id: "fay", operation: "CREDIT_SPEND", nonce: "i2" },
  ];
  const problem = (code: string, status = 422) => ({ type: "x", title: "x", status, code, detail: "x" });

  it("holds each item of a batch to its own answer", () => {
    const op: OpRecord = {
      ...base("app1"),
      kind: "batch",
      body: { operations: items },
      outcome: {
        kind: "acked",
        status: 200,
        result: {
          results: [
            { status: 201, body: { owner_id: "fay", ...figuresOf(item0), entry: item0 } },
            { status: 422, body: problem("INSUFFICIENT_BALANCE") },
            { status: 409, body: problem("NONCE_CONFLICT", 409) },
          ],
        },
      },
    };
    expect(check([op], snapshotOf(entries, ["fay"], 8))).toEqual(["unexpected-refusal"]);
    const written = ledger([
      { owner: "fay", operation: "CREDIT_ADD", nonce: "i0", amount: 10, createdS: 0 },
      { owner: "fay", operation: "CONTENT_CREATION", nonce: "i1", amount: -5, createdS: 0 },
    ]);
    expect(check([op], snapshotOf(written, ["fay"], 8))).toEqual(
      expect.arrayContaining(["refused-but-present", "unexpected-refusal"]),
    );
  });

  it("takes an atomic batch's refusal for every item: none may be written", () => {
    const op: OpRecord = {
      ...base("app1"),
      kind: "batch",
      body: { operations: items.slice(0, 2), atomic: true },
      outcome: { kind: "refused", status: 422, code: "INSUFFICIENT_BALANCE", index: 1 },
    };
    expect(check([op], snapshotOf([], ["fay"], 8))).toEqual([]);
    expect(check([op], snapshotOf(entries, ["fay"], 8))).toEqual(
      expect.arrayContaining(["refused-but-present"]),
    );
  });
});
