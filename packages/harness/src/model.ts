// What the client knows, and the check of the ledger against it. The client keeps one record per
// logical operation (one nonce): the request and its definite answer. The model of each owner is
// built from the acknowledged answers alone: whether a debit is refused depends on the order in which
// concurrent requests took the owner's lock, which the client cannot know, but once the ledger has
// answered, its answers must add up: every acknowledged operation is in the history exactly once,
// every refused one is absent, and the balance is the sum of what was acknowledged less what expired.
//
// Credits that expire add entries the client never sent: EXPIRY entries, which the ledger writes when
// a grant (a credit with an expires_at) reaches its expiry with something left. They are not taken on
// trust: the owner's whole history is replayed in sequence order against a model of its grants (what
// each credit granted, what each debit took in burn order, what is left), and every EXPIRY entry must
// expire exactly what the model says was left of a grant that was due, once.
import { app1Catalog } from "@ledger/app1/operations";
import { app2Catalog } from "@ledger/app2/operations";
import type { OperationCatalogView } from "@ledger/core";
import type { Entry, Expiring, PostBody, PostResult, UnknownReason } from "./client.js";
import type { AppName } from "./paths.js";

const CATALOGS: Readonly<Record<AppName, OperationCatalogView>> = { app1: app1Catalog, app2: app2Catalog };

/** The signed amount an operation moves, from the app's own catalog (so the model cannot drift from it). */
export function signedAmount(app: AppName, operation: string, amount?: number): number {
  const def = CATALOGS[app].get(operation);
  if (!def) throw new Error(`${app} has no operation ${operation}`);
  if (def.kind === "fixed") return def.amount;
  if (amount === undefined) throw new Error(`${app} ${operation} needs an amount`);
  return def.direction === "debit" ? -amount : amount;
}

export type OpOutcome =
  | { kind: "acked"; status: number; result: PostResult }
  | {
      kind: "refused";
      status: number;
      code: string;
      /** The request fields a 400 named. */
      paths?: string[];
    }
  | { kind: "unresolved"; detail: string };

/** One logical operation: one nonce, however many times it was sent. */
export interface OpRecord {
  app: AppName;
  body: PostBody;
  /** What it moves if applied. */
  amount: number;
  attempts: number;
  /** The reason of each attempt whose outcome was unknown, before the definite one. */
  unknowns: UnknownReason[];
  outcome: OpOutcome;
  /** The client's clock (epoch ms) when the definite answer arrived. */
  answeredAtMs?: number;
}

export type ViolationKind =
  | "unresolved"
  | "unexpected-refusal"
  | "lost"
  | "duplicate"
  | "answer-mismatch"
  | "phantom-replay"
  | "refused-but-present"
  | "unexpected-entry"
  | "balance-mismatch"
  | "expiring-mismatch"
  | "negative-balance"
  | "broken-chain"
  | "expiry-missed"
  | "bad-expiry"
  | "entry-count"
  | "verify"
  | "server-error"
  | "no-recovery"
  | "app-crash"
  | "sweep-missed"
  | "harness";

export interface Violation {
  kind: ViolationKind;
  detail: string;
}

export interface LedgerSnapshot {
  /** Every owner the client wrote to. */
  owners: readonly string[];
  /** Every entry of those owners, as GET /ledger/{owner}/entries lists them. */
  entries: readonly Entry[];
  /** Each owner's balance, as GET /ledger/{owner} answers it. */
  balances: ReadonlyMap<string, number>;
  /** Each owner's `expiring`, as GET /ledger/{owner} answers it; unchecked when absent. */
  expiring?: ReadonlyMap<string, Expiring>;
  /**
   * When the balances were read (client clock, epoch ms): the ledger counts a grant's remainder
   * until its expires_at, so for every grant still open the model must know whether the read came
   * before or after its expiry. Required when a grant is open at the end; a grant that expires
   * inside the window is reported (harness): the run must read when none is about to expire.
   */
  readWindow?: { fromMs: number; toMs: number };
  /** Entries in the whole database, when known: the acknowledged operations plus the EXPIRY entries. */
  totalEntries?: number;
  /** EXPIRY entries in the whole database, when known: must be the ones listed. */
  totalExpiryEntries?: number;
}

export interface CheckOptions {
  /** Refusal codes the workload can legitimately meet (a 409 NONCE_CONFLICT never is one). */
  allowedRefusals: ReadonlySet<string>;
}

const key = (app: string, nonce: string): string => `${app}\u0000${nonce}`;

/** The operation of the entries the ledger writes when a grant expires. */
export const EXPIRY = "EXPIRY";

/**
 * The grant an EXPIRY entry's nonce names: `expiry <grant_sequence> <owner_id>`. Parsed here from the
 * documented format rather than with the ledger's own helper, so that the model cannot share a bug
 * with the code it checks (the burn order below is written out again for the same reason).
 */
export function parseExpiryNonce(nonce: string): { grantSequence: number; ownerId: string } | undefined {
  const m = /^expiry ([1-9][0-9]*) (\S+)$/.exec(nonce);
  if (!m?.[1] || !m[2]) return undefined;
  return { grantSequence: Number(m[1]), ownerId: m[2] };
}

/**
 * A retry of a credit with expires_at that was never applied, sent again after its expires_at had
 * passed: the ledger refuses it 400 VALIDATION_FAILED on expires_at (a replay of one that was applied
 * gets its original answer instead: the nonce is looked up first). That is the right answer for that
 * request, so it is accepted, only when the refusal names expires_at and the expires_at had passed
 * when the answer arrived (the ledger decided a little before, on the same machine's clock); the
 * entry must then be absent, like any refused one. The client does not retry forever within a
 * grant's lifetime, because an app may be down for longer than that.
 */
export function lateExpiry(op: OpRecord): boolean {
  const { outcome, body } = op;
  if (outcome.kind !== "refused" || outcome.code !== "VALIDATION_FAILED") return false;
  if (body.expires_at === undefined || op.answeredAtMs === undefined) return false;
  if (!(outcome.paths ?? []).includes("expires_at")) return false;
  return Date.parse(body.expires_at) <= op.answeredAtMs;
}

/** When an acknowledged operation's credits expire, by its request and its app's catalog; null: never. */
function expectedExpiresAtMs(op: OpRecord, entry: Entry): number | null {
  if (op.body.expires_at !== undefined) return Date.parse(op.body.expires_at);
  const after = CATALOGS[op.app].get(op.body.operation)?.expiresAfterS;
  if (after !== undefined && op.amount > 0) return Date.parse(entry.created_at) + after * 1000;
  return null;
}

const msOf = (instant: string | undefined): number | null =>
  instant === undefined ? null : Date.parse(instant);

/** A grant in the model: what is left of one credit entry with an expires_at. */
interface ModelGrant {
  sequence: number;
  app: string;
  amount: number;
  remaining: number;
  expiresAtMs: number;
  expiredBy: number | null;
  /** An expiry-missed was reported for it already. */
  missed: boolean;
}

/** Burn order, as documented: soonest expires_at first, then the older grant (lower sequence). */
const burnOrder = (a: ModelGrant, b: ModelGrant): number =>
  a.expiresAtMs - b.expiresAtMs || a.sequence - b.sequence;

/** Every way the ledger's state disagrees with the client's records; empty when it holds. */
export function checkLedger(
  ops: readonly OpRecord[],
  snapshot: LedgerSnapshot,
  opts: CheckOptions,
): Violation[] {
  const violations: Violation[] = [];
  const v = (kind: ViolationKind, detail: string) => violations.push({ kind, detail });
  const describe = (op: OpRecord) =>
    `${op.app} ${op.body.operation} ${op.body.owner_id} nonce ${op.body.nonce}`;

  const opsByKey = new Map<string, OpRecord>();
  for (const op of ops) {
    const k = key(op.app, op.body.nonce);
    if (opsByKey.has(k)) v("harness", `the client used nonce ${op.body.nonce} twice for ${op.app}`);
    opsByKey.set(k, op);
  }
  // The ledger's own entries: EXPIRY, under a nonce no client can send (it has spaces). Any other
  // entry nobody sent is unexpected; these are checked against the grants below instead.
  const isExpiry = (entry: Entry) => entry.operation === EXPIRY && !opsByKey.has(key(entry.app, entry.nonce));
  const entriesByKey = new Map<string, Entry[]>();
  for (const entry of snapshot.entries) {
    const k = key(entry.app, entry.nonce);
    const list = entriesByKey.get(k) ?? [];
    list.push(entry);
    entriesByKey.set(k, list);
  }
  for (const [k, list] of entriesByKey) {
    const first = list[0];
    if (!first) continue;
    if (list.length > 1) v("duplicate", `${first.app} nonce ${first.nonce}: ${list.length} entries`);
    if (!opsByKey.has(k) && !isExpiry(first))
      v("unexpected-entry", `entry ${first.id} (${first.app} nonce ${first.nonce}) was never sent`);
  }

  const historyByOwner = new Map<string, Entry[]>();
  for (const entry of snapshot.entries) {
    const list = historyByOwner.get(entry.owner_id) ?? [];
    list.push(entry);
    historyByOwner.set(entry.owner_id, list);
  }

  const ackedSums = new Map<string, number>();
  for (const op of ops) {
    const found = entriesByKey.get(key(op.app, op.body.nonce)) ?? [];
    const outcome = op.outcome;
    if (outcome.kind === "unresolved") {
      v("unresolved", `${describe(op)}: still unknown after ${op.attempts} attempts (${outcome.detail})`);
      continue;
    }
    if (outcome.kind === "refused") {
      if (!opts.allowedRefusals.has(outcome.code) && !lateExpiry(op)) {
        v(
          "unexpected-refusal",
          `${describe(op)}: ${outcome.status} ${outcome.code} after ${op.unknowns.length} unknown`,
        );
      }
      if (found.length > 0)
        v(
          "refused-but-present",
          `${describe(op)}: refused ${outcome.code}, yet entry ${found[0]?.id} exists`,
        );
      continue;
    }
    const answer = outcome.result.entry;
    const entry = found[0];
    if (!entry) {
      v("lost", `${describe(op)}: acknowledged as entry ${answer.id}, not in the history`);
    } else if (
      entry.id !== answer.id ||
      entry.owner_id !== op.body.owner_id ||
      entry.operation !== op.body.operation ||
      entry.amount !== op.amount ||
      entry.sequence !== answer.sequence ||
      entry.balance_after !== answer.balance_after ||
      entry.created_at !== answer.created_at ||
      entry.expires_at !== answer.expires_at
    ) {
      v(
        "answer-mismatch",
        `${describe(op)}: answered ${JSON.stringify(answer)}, history has ${JSON.stringify(entry)}`,
      );
    }
    const expected = expectedExpiresAtMs(op, answer);
    if (msOf(answer.expires_at) !== expected) {
      v(
        "answer-mismatch",
        `${describe(op)}: answered expires_at ${answer.expires_at ?? "none"}, the request makes it ` +
          `${expected === null ? "none" : new Date(expected).toISOString()}`,
      );
    }
    if (outcome.result.replayed && op.unknowns.length === 0) {
      v("phantom-replay", `${describe(op)}: a replay on the first attempt of a fresh nonce`);
    }
    ackedSums.set(op.body.owner_id, (ackedSums.get(op.body.owner_id) ?? 0) + op.amount);
  }

  let expiryEntries = 0;
  for (const owner of snapshot.owners) {
    const history = [...(historyByOwner.get(owner) ?? [])].sort((a, b) => a.sequence - b.sequence);
    const walk = walkHistory(owner, history, isExpiry, v);
    expiryEntries += walk.expirySum.count;
    const listed = history.reduce((sum, e) => sum + e.amount, 0);
    const model = (ackedSums.get(owner) ?? 0) + walk.expirySum.amount;

    // What of the open grants no longer counted when the balance was read: every grant due by then.
    const window = snapshot.readWindow;
    let due = 0;
    const counting: ModelGrant[] = [];
    for (const g of walk.open) {
      const which = `${owner}: grant #${g.sequence} (expires ${new Date(g.expiresAtMs).toISOString()})`;
      if (window === undefined) v("harness", `${which} is open, and the snapshot has no read window`);
      else if (g.expiresAtMs <= window.fromMs) due += g.remaining;
      else if (g.expiresAtMs > window.toMs) counting.push(g);
      else v("harness", `${which} expired while the balances were read: whether it counted is unknown`);
    }
    const balance = snapshot.balances.get(owner);
    if (balance !== model - due)
      v(
        "balance-mismatch",
        `${owner}: balance ${balance}; acknowledged operations and EXPIRY entries sum to ${model}, ` +
          `less ${due} due but not yet expired`,
      );
    if (balance !== listed - due)
      v(
        "balance-mismatch",
        `${owner}: balance ${balance}; its listed entries sum to ${listed}, less ${due} due but not yet expired`,
      );
    if (balance !== undefined && balance < 0) v("negative-balance", `${owner}: balance ${balance}`);

    const answered = snapshot.expiring?.get(owner);
    if (answered !== undefined) {
      const expected = expiringOf(counting);
      const normal = answered.map((x) => ({ amount: x.amount, expiresAtMs: Date.parse(x.expires_at) }));
      if (JSON.stringify(normal) !== JSON.stringify(expected)) {
        v(
          "expiring-mismatch",
          `${owner}: expiring ${JSON.stringify(answered)}; the open grants make it ` +
            JSON.stringify(
              expected.map((x) => ({ amount: x.amount, expires_at: new Date(x.expiresAtMs).toISOString() })),
            ),
        );
      }
    }
  }

  if (snapshot.totalEntries !== undefined) {
    const ackedCount = ops.filter((op) => op.outcome.kind === "acked").length;
    if (snapshot.totalEntries !== ackedCount + expiryEntries) {
      v(
        "entry-count",
        `${snapshot.totalEntries} entries in the database; ${ackedCount} operations acknowledged and ` +
          `${expiryEntries} EXPIRY entries listed`,
      );
    }
  }
  if (snapshot.totalExpiryEntries !== undefined && snapshot.totalExpiryEntries !== expiryEntries) {
    v(
      "entry-count",
      `${snapshot.totalExpiryEntries} EXPIRY entries in the database, ${expiryEntries} listed`,
    );
  }
  return violations;
}

/** What GET /ledger/{owner} must answer as `expiring` for these grants: remainders summed by instant. */
function expiringOf(grants: readonly ModelGrant[]): { amount: number; expiresAtMs: number }[] {
  const byInstant = new Map<number, number>();
  for (const g of grants) {
    if (g.remaining > 0) byInstant.set(g.expiresAtMs, (byInstant.get(g.expiresAtMs) ?? 0) + g.remaining);
  }
  return [...byInstant]
    .sort(([a], [b]) => a - b)
    .slice(0, EXPIRING_SUMMARY_MAX)
    .map(([expiresAtMs, amount]) => ({ amount, expiresAtMs }));
}

/** GET /ledger/{owner} lists at most this many instants in `expiring`. */
const EXPIRING_SUMMARY_MAX = 50;

/**
 * Replays one owner's listed history, in sequence order, against a model of its grants. Checks that
 * it chains (1, 2, 3, ... with each balance_after the previous one plus the amount, never below
 * zero), that no client entry was written while a grant with a remainder was due (the ledger expires
 * due grants before the entry of any write, in the same transaction), and that every EXPIRY entry
 * expires what is left of an open, due grant of this owner, under its app, once. Answers the grants
 * still open at the end and the EXPIRY entries seen.
 */
function walkHistory(
  owner: string,
  history: readonly Entry[],
  isExpiry: (entry: Entry) => boolean,
  v: (kind: ViolationKind, detail: string) => void,
): { open: ModelGrant[]; expirySum: { count: number; amount: number } } {
  const grants = new Map<number, ModelGrant>();
  const expirySum = { count: 0, amount: 0 };
  let previous = 0;
  let chained = true;
  for (const [i, entry] of history.entries()) {
    const at = `${owner} #${entry.sequence} (${entry.app} ${entry.operation} nonce ${entry.nonce})`;
    if (
      chained &&
      (entry.sequence !== i + 1 || entry.balance_after !== previous + entry.amount || entry.balance_after < 0)
    ) {
      v(
        "broken-chain",
        `${at} has balance_after ${entry.balance_after}; expected #${i + 1} with ${previous} + ${entry.amount}`,
      );
      // One report per owner: it fails the run, and what follows a break is noise.
      chained = false;
    }
    previous = entry.balance_after;
    const createdAtMs = Date.parse(entry.created_at);

    if (isExpiry(entry)) {
      expirySum.count += 1;
      expirySum.amount += entry.amount;
      const named = parseExpiryNonce(entry.nonce);
      const grant = named?.ownerId === owner ? grants.get(named.grantSequence) : undefined;
      if (!named || !grant) {
        v("bad-expiry", `${at}: names no grant of ${owner} granted before it`);
        continue;
      }
      if (grant.expiredBy !== null) {
        v("bad-expiry", `${at}: grant #${grant.sequence} was already expired by #${grant.expiredBy}`);
        continue;
      }
      const problems: string[] = [];
      if (grant.remaining === 0) problems.push("nothing was left of it (the ledger writes no EXPIRY then)");
      if (entry.amount !== -grant.remaining)
        problems.push(`amount ${entry.amount}, but ${grant.remaining} was left of it`);
      if (entry.app !== grant.app) problems.push(`app ${entry.app}, but it was granted by ${grant.app}`);
      if (msOf(entry.expires_at) !== grant.expiresAtMs)
        problems.push(
          `expires_at ${entry.expires_at ?? "none"}, the grant's is ${new Date(grant.expiresAtMs).toISOString()}`,
        );
      if (createdAtMs < grant.expiresAtMs) problems.push(`created_at ${entry.created_at}, before its expiry`);
      if (problems.length > 0)
        v("bad-expiry", `${at}: expires grant #${grant.sequence} with ${problems.join("; ")}`);
      grant.remaining = 0;
      grant.expiredBy = entry.sequence;
      continue;
    }

    // A client's entry. Nothing of a grant may still count after its expiry: a write first expires
    // the owner's due grants, so they have lower sequences than its own entry.
    for (const g of grants.values()) {
      if (g.expiredBy === null && g.remaining > 0 && g.expiresAtMs <= createdAtMs && !g.missed) {
        v(
          "expiry-missed",
          `${at} was written at ${entry.created_at} while grant #${g.sequence} (${g.remaining} left, ` +
            `expiring ${new Date(g.expiresAtMs).toISOString()}) had not been expired before it`,
        );
        g.missed = true;
      }
    }
    const expiresAtMs = msOf(entry.expires_at);
    if (entry.amount > 0 && expiresAtMs !== null) {
      grants.set(entry.sequence, {
        sequence: entry.sequence,
        app: entry.app,
        amount: entry.amount,
        remaining: entry.amount,
        expiresAtMs,
        expiredBy: null,
        missed: false,
      });
    } else if (entry.amount < 0) {
      // A debit spends the unexpired grants in burn order; what they do not cover comes from the
      // credits without expiry.
      let left = -entry.amount;
      const spendable = [...grants.values()]
        .filter((g) => g.expiredBy === null && g.remaining > 0 && g.expiresAtMs > createdAtMs)
        .sort(burnOrder);
      for (const g of spendable) {
        if (left === 0) break;
        const take = Math.min(g.remaining, left);
        g.remaining -= take;
        left -= take;
      }
    }
  }
  const open = [...grants.values()].filter((g) => g.expiredBy === null && g.remaining > 0);
  return { open, expirySum };
}

/** Violations counted by kind, for a summary. */
export function countByKind(violations: readonly Violation[]): Partial<Record<ViolationKind, number>> {
  const counts: Partial<Record<ViolationKind, number>> = {};
  for (const { kind } of violations) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}
