// What the client knows, and the check of the ledger against it. The client keeps one record per
// logical operation (one nonce): the request and its definite answer. The model of each owner is
// built from the acknowledged answers alone: whether a debit is refused depends on the order in which
// concurrent requests took the owner's lock, which the client cannot know, but once the ledger has
// answered, its answers must add up: every acknowledged operation is in the history exactly once,
// every refused one is absent, nothing else is there, and the balance is the sum of what was
// acknowledged.
import { app1Catalog } from "@ledger/app1/operations";
import { app2Catalog } from "@ledger/app2/operations";
import type { OperationCatalogView } from "@ledger/core";
import type { Entry, PostBody, PostResult, UnknownReason } from "./client.js";
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
  | { kind: "refused"; status: number; code: string }
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
  | "negative-balance"
  | "broken-chain"
  | "entry-count"
  | "verify"
  | "server-error"
  | "no-recovery"
  | "app-crash"
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
  /** Entries in the whole database, when known: must be exactly the acknowledged operations. */
  totalEntries?: number;
}

export interface CheckOptions {
  /** Refusal codes the workload can legitimately meet (a 409 NONCE_CONFLICT never is one). */
  allowedRefusals: ReadonlySet<string>;
}

const key = (app: string, nonce: string): string => `${app}\u0000${nonce}`;

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
    if (!opsByKey.has(k))
      v("unexpected-entry", `entry ${first.id} (${first.app} nonce ${first.nonce}) was never sent`);
  }

  const historySums = new Map<string, number>();
  for (const entry of snapshot.entries) {
    historySums.set(entry.owner_id, (historySums.get(entry.owner_id) ?? 0) + entry.amount);
  }

  const acked = new Map<string, OpRecord[]>();
  for (const op of ops) {
    const found = entriesByKey.get(key(op.app, op.body.nonce)) ?? [];
    const outcome = op.outcome;
    if (outcome.kind === "unresolved") {
      v("unresolved", `${describe(op)}: still unknown after ${op.attempts} attempts (${outcome.detail})`);
      continue;
    }
    if (outcome.kind === "refused") {
      if (!opts.allowedRefusals.has(outcome.code)) {
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
      entry.balance_after !== answer.balance_after
    ) {
      v(
        "answer-mismatch",
        `${describe(op)}: answered ${JSON.stringify(answer)}, history has ${JSON.stringify(entry)}`,
      );
    }
    if (outcome.result.replayed && op.unknowns.length === 0) {
      v("phantom-replay", `${describe(op)}: a replay on the first attempt of a fresh nonce`);
    }
    const list = acked.get(op.body.owner_id) ?? [];
    list.push(op);
    acked.set(op.body.owner_id, list);
  }

  for (const owner of snapshot.owners) {
    const history = (acked.get(owner) ?? []).flatMap((op) =>
      op.outcome.kind === "acked" ? [{ op, entry: op.outcome.result.entry }] : [],
    );
    const model = history.reduce((sum, h) => sum + h.op.amount, 0);
    const balance = snapshot.balances.get(owner);
    if (balance !== model)
      v("balance-mismatch", `${owner}: balance ${balance}, acknowledged operations sum to ${model}`);
    const listed = historySums.get(owner) ?? 0;
    if (balance !== listed)
      v("balance-mismatch", `${owner}: balance ${balance}, its listed entries sum to ${listed}`);
    if (balance !== undefined && balance < 0) v("negative-balance", `${owner}: balance ${balance}`);
    // The acknowledged answers, in sequence order, must form the owner's running balance: 1, 2, 3, ...
    // with each balance_after = the previous one + the amount, never below zero.
    history.sort((a, b) => a.entry.sequence - b.entry.sequence);
    let previous = 0;
    for (const [i, { op, entry }] of history.entries()) {
      if (
        entry.sequence !== i + 1 ||
        entry.balance_after !== previous + op.amount ||
        entry.balance_after < 0
      ) {
        v(
          "broken-chain",
          `${owner}: acknowledged entry #${entry.sequence} (${describe(op)}) has balance_after ` +
            `${entry.balance_after}; expected #${i + 1} with ${previous} + ${op.amount}`,
        );
        break;
      }
      previous = entry.balance_after;
    }
  }

  if (snapshot.totalEntries !== undefined) {
    const ackedCount = ops.filter((op) => op.outcome.kind === "acked").length;
    if (snapshot.totalEntries !== ackedCount) {
      v(
        "entry-count",
        `${snapshot.totalEntries} entries in the database, ${ackedCount} operations acknowledged`,
      );
    }
  }
  return violations;
}

/** Violations counted by kind, for a summary. */
export function countByKind(violations: readonly Violation[]): Partial<Record<ViolationKind, number>> {
  const counts: Partial<Record<ViolationKind, number>> = {};
  for (const { kind } of violations) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}
