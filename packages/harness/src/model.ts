// What the client knows, and the check of the ledger against it. The client keeps one record per
// logical operation (one nonce; a batch, one per item): the request and its definite answer. Whether a
// debit, a hold or a capture is refused depends on the order in which concurrent requests took the
// owner's lock, which the client cannot know, but once the ledger has answered, its answers must add
// up: every acknowledged write is in the history exactly once, as it was answered, every refused one
// is absent, and each balance is the sum of the owner's entries.
//
// Entries the client never sent are not taken on trust either: EXPIRY and HOLD_EXPIRY (the ledger's
// own, under the nonce `ledger <sequence> <owner>`) and the TRANSFER_IN of a transfer (under
// `transfer-in <nonce>`). Every owner's history is replayed, all owners together in the order the
// ledger wrote them (entry ids), against a model of the documented rules: grants (a credit with an
// expiry) spent in burn order, holds taking their credits from grants when made and keeping them from
// expiring until they end, captures spending their hold's draws, reversals giving credits back to the
// grants a debit spent or taking them back from a credit's own grant, transfers carrying the sender's
// expiries over, suspended owners taking only what ends or undoes. Every EXPIRY must expire exactly
// what the model says is left, unheld, of the grant that is due first; every HOLD_EXPIRY a hold that
// was active and due; no write may take more than was available, reverse more than the original, or
// be written while something was due and not yet recorded. At the end, each balance, held and
// available figure, `expiring` and each hold's status are the model's.
import { app1Catalog } from "@ledger/app1/operations";
import { app2Catalog } from "@ledger/app2/operations";
import type { OperationCatalogView } from "@ledger/core";
import type {
  BatchRequest,
  BatchResult,
  CaptureResult,
  Entry,
  Expiring,
  Hold,
  HoldRequest,
  HoldResult,
  OwnerFigures,
  PostBody,
  PostResult,
  ReversalRequest,
  ReversalResult,
  SettleRequest,
  StatusRequest,
  StatusResult,
  TransferRequest,
  TransferResult,
  UnknownReason,
} from "./client.js";
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

export type OpOutcome<R = PostResult> =
  | { kind: "acked"; status: number; result: R }
  | {
      kind: "refused";
      status: number;
      code: string;
      /** The request fields a 400 named. */
      paths?: string[];
      /** An atomic batch's refusal: the item refused. */
      index?: number;
    }
  | { kind: "unresolved"; detail: string };

interface RecordBase {
  app: AppName;
  attempts: number;
  /** The reason of each attempt whose outcome was unknown, before the definite one. */
  unknowns: UnknownReason[];
  /** The client's clock (epoch ms) when the definite answer arrived. */
  answeredAtMs?: number;
}

/** A POST /ledger (the kind when none is said). */
export interface PostRecord extends RecordBase {
  kind?: "post";
  body: PostBody;
  /** What it moves if applied. */
  amount: number;
  outcome: OpOutcome;
}
export interface HoldRecord extends RecordBase {
  kind: "hold";
  body: HoldRequest;
  outcome: OpOutcome<HoldResult>;
}
export interface CaptureRecord extends RecordBase {
  kind: "capture";
  holdId: string;
  body: SettleRequest;
  outcome: OpOutcome<CaptureResult>;
}
export interface ReleaseRecord extends RecordBase {
  kind: "release";
  holdId: string;
  body: SettleRequest;
  outcome: OpOutcome<HoldResult>;
}
export interface ReversalRecord extends RecordBase {
  kind: "reversal";
  entryId: number;
  body: ReversalRequest;
  outcome: OpOutcome<ReversalResult>;
}
export interface TransferRecord extends RecordBase {
  kind: "transfer";
  body: TransferRequest;
  outcome: OpOutcome<TransferResult>;
}
export interface StatusRecord extends RecordBase {
  kind: "suspension" | "reinstatement";
  ownerId: string;
  body: StatusRequest;
  outcome: OpOutcome<StatusResult>;
}
export interface BatchRecord extends RecordBase {
  kind: "batch";
  body: BatchRequest;
  outcome: OpOutcome<BatchResult>;
}

/** One logical operation: one nonce (a batch: one per item), however many times it was sent. */
export type OpRecord =
  | PostRecord
  | HoldRecord
  | CaptureRecord
  | ReleaseRecord
  | ReversalRecord
  | TransferRecord
  | StatusRecord
  | BatchRecord;

export type OpKind = NonNullable<OpRecord["kind"]>;
export const kindOf = (op: OpRecord): OpKind => op.kind ?? "post";

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
  | "figures-mismatch"
  | "expiring-mismatch"
  | "hold-mismatch"
  | "negative-balance"
  | "broken-chain"
  | "expiry-missed"
  | "bad-expiry"
  | "bad-hold"
  | "bad-reversal"
  | "bad-transfer"
  | "bad-status"
  | "overdraw"
  | "suspended-write"
  | "entry-count"
  | "verify"
  /** The events: the relay, the log, the stream, per-owner order on it, the consumer (chaos-events.ts). */
  | "events-relay"
  | "events-log"
  | "events-stream"
  | "events-order"
  | "events-consumer"
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
  /** Each owner's available, held and status, as GET /ledger/{owner} answers them; unchecked when absent. */
  figures?: ReadonlyMap<string, OwnerFigures>;
  /** Acknowledged holds, by id, as GET /ledger/holds/{id} answers them; unchecked when absent. */
  holds?: ReadonlyMap<string, Hold>;
  /**
   * When the balances were read (client clock, epoch ms): the ledger counts a grant's remainder
   * until its expires_at, and a hold until its own, so for every grant still open and every hold still
   * active the model must know whether the read came before or after its expiry. Required when one is
   * open at the end; one that expires inside the window is reported (harness): the run must read when
   * none is about to expire.
   */
  readWindow?: { fromMs: number; toMs: number };
  /** Entries in the whole database, when known: the acknowledged writes' plus the ledger's own. */
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
export const HOLD_EXPIRY = "HOLD_EXPIRY";

/**
 * What the ledger's own entries (EXPIRY, HOLD_EXPIRY) carry as nonce: `ledger <sequence> <owner_id>`,
 * the entry's own sequence. Parsed here from the documented format rather than with the ledger's own
 * helper, so that the model cannot share a bug with the code it checks.
 */
export function parseLedgerNonce(nonce: string): { sequence: number; ownerId: string } | undefined {
  const m = /^ledger ([1-9][0-9]*) (\S+)$/.exec(nonce);
  if (!m?.[1] || !m[2]) return undefined;
  return { sequence: Number(m[1]), ownerId: m[2] };
}

/** The documented nonce of a transfer's TRANSFER_IN entry. */
export const transferInNonce = (nonce: string) => `transfer-in ${nonce}`;

/** The code an item of a refused atomic batch gets when another item was the one refused. */
export const REFUSED_WITH_ITS_BATCH = "REFUSED_WITH_ITS_BATCH";

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
  if (op.kind !== undefined && op.kind !== "post") return false;
  const { outcome, body } = op;
  if (outcome.kind !== "refused" || outcome.code !== "VALIDATION_FAILED") return false;
  if (body.expires_at === undefined || op.answeredAtMs === undefined) return false;
  if (!(outcome.paths ?? []).some((p) => p === "expires_at" || p.endsWith(".expires_at"))) return false;
  return Date.parse(body.expires_at) <= op.answeredAtMs;
}

/** When an acknowledged post's credits expire, by its request and its app's catalog; null: never. */
function expectedExpiresAtMs(app: AppName, body: PostBody, entry: Entry): number | null {
  if (body.expires_at !== undefined) return Date.parse(body.expires_at);
  const after = CATALOGS[app].get(body.operation)?.expiresAfterS;
  if (after !== undefined && entry.amount > 0) return Date.parse(entry.created_at) + after * 1000;
  return null;
}

const msOf = (instant: string | undefined): number | null =>
  instant === undefined ? null : Date.parse(instant);

/** The batch's items as post records of their own, each with its item's outcome. */
export function batchItems(op: BatchRecord): PostRecord[] {
  const { outcome } = op;
  return op.body.operations.map((body, i): PostRecord => {
    const base = {
      app: op.app,
      body,
      amount: safeSignedAmount(op.app, body),
      attempts: op.attempts,
      unknowns: op.unknowns,
      ...(op.answeredAtMs === undefined ? {} : { answeredAtMs: op.answeredAtMs }),
    };
    if (outcome.kind === "unresolved") return { ...base, outcome };
    if (outcome.kind === "refused") {
      // An atomic batch refused as a whole: its refused item carries the code, the others go with it.
      if (outcome.index === undefined || outcome.index === i) return { ...base, outcome };
      return { ...base, outcome: { kind: "refused", status: outcome.status, code: REFUSED_WITH_ITS_BATCH } };
    }
    const item = outcome.result.results[i];
    if (!item) return { ...base, outcome: { kind: "unresolved", detail: `batch answered no result ${i}` } };
    if (item.status === 200 || item.status === 201) {
      return { ...base, outcome: { kind: "acked", status: item.status, result: item.body as PostResult } };
    }
    const problem = item.body as { code?: unknown; errors?: { path?: unknown }[] };
    const paths = (problem.errors ?? []).map((e) => String(e.path));
    return {
      ...base,
      outcome: {
        kind: "refused",
        status: item.status,
        code: typeof problem.code === "string" ? problem.code : `HTTP_${item.status}`,
        ...(paths.length > 0 ? { paths } : {}),
      },
    };
  });
}

function safeSignedAmount(app: AppName, body: PostBody): number {
  try {
    return signedAmount(app, body.operation, body.amount);
  } catch {
    return 0;
  }
}

/** A write the client made, flattened: batches into their items. */
interface Write {
  op: OpRecord;
  app: AppName;
  /** The (app, nonce) keys of the entries it writes if applied. */
  keys: string[];
  /** The entries its answer names, in the order of `keys` (acknowledged writes). */
  answered: (Entry | ExpectedEntry)[];
  describe: string;
}

/** An entry an answer implies without showing it (a hold's HOLD, a release's HOLD_RELEASE). */
interface ExpectedEntry {
  implied: true;
  operation: string;
  owner_id: string;
  amount: number;
  hold_id: string;
  created_at?: string;
  expires_at?: string;
}

function writesOf(ops: readonly OpRecord[]): Write[] {
  const out: Write[] = [];
  for (const op of ops) {
    const k = kindOf(op);
    if (op.kind === "batch") {
      for (const item of batchItems(op)) out.push(...writesOf([item]));
      continue;
    }
    const nonce = op.body.nonce;
    const base = { op, app: op.app, describe: "" };
    const acked = op.outcome.kind === "acked";
    switch (op.kind) {
      case undefined:
      case "post":
        out.push({
          ...base,
          keys: [key(op.app, nonce)],
          answered: op.outcome.kind === "acked" ? [op.outcome.result.entry] : [],
          describe: `${op.app} ${op.body.operation} ${op.body.owner_id} nonce ${nonce}`,
        });
        break;
      case "hold": {
        const r = op.outcome.kind === "acked" ? op.outcome.result : undefined;
        out.push({
          ...base,
          keys: [key(op.app, nonce)],
          answered: r
            ? [
                {
                  implied: true,
                  operation: "HOLD",
                  owner_id: r.hold.owner_id,
                  amount: 0,
                  hold_id: r.hold.id,
                  created_at: r.hold.created_at,
                  expires_at: r.hold.expires_at,
                },
              ]
            : [],
          describe: `${op.app} hold ${op.body.operation} ${op.body.owner_id} nonce ${nonce}`,
        });
        break;
      }
      case "capture":
        out.push({
          ...base,
          keys: [key(op.app, nonce)],
          answered: op.outcome.kind === "acked" ? [op.outcome.result.entry] : [],
          describe: `${op.app} capture of ${op.holdId} nonce ${nonce}`,
        });
        break;
      case "release": {
        const r = op.outcome.kind === "acked" ? op.outcome.result : undefined;
        out.push({
          ...base,
          keys: [key(op.app, nonce)],
          answered: r
            ? [
                {
                  implied: true,
                  operation: "HOLD_RELEASE",
                  owner_id: r.hold.owner_id,
                  amount: 0,
                  hold_id: op.holdId,
                },
              ]
            : [],
          describe: `${op.app} release of ${op.holdId} nonce ${nonce}`,
        });
        break;
      }
      case "reversal":
        out.push({
          ...base,
          keys: [key(op.app, nonce)],
          answered: op.outcome.kind === "acked" ? [op.outcome.result.entry] : [],
          describe: `${op.app} reversal of entry ${op.entryId} nonce ${nonce}`,
        });
        break;
      case "transfer":
        out.push({
          ...base,
          keys: [key(op.app, nonce), key(op.app, transferInNonce(nonce))],
          answered:
            op.outcome.kind === "acked" ? [op.outcome.result.from.entry, op.outcome.result.to.entry] : [],
          describe: `${op.app} transfer ${op.body.from_owner_id} -> ${op.body.to_owner_id} nonce ${nonce}`,
        });
        break;
      case "suspension":
      case "reinstatement":
        out.push({
          ...base,
          keys: [key(op.app, nonce)],
          answered: op.outcome.kind === "acked" ? [op.outcome.result.entry] : [],
          describe: `${op.app} ${k} of ${op.ownerId} nonce ${nonce}`,
        });
        break;
    }
    if (acked && out.at(-1)?.answered.length === 0)
      throw new Error("an acknowledged write answers its entries");
  }
  return out;
}

/** Operations a suspended owner may still take. */
const WRITABLE_WHILE_SUSPENDED = new Set([
  "EXPIRY",
  "HOLD_RELEASE",
  "HOLD_EXPIRY",
  "REVERSAL",
  "REINSTATEMENT",
]);
/** Entries no reversal may undo. */
const NOT_REVERSIBLE = new Set([
  "EXPIRY",
  "HOLD",
  "HOLD_RELEASE",
  "HOLD_EXPIRY",
  "REVERSAL",
  "TRANSFER_OUT",
  "TRANSFER_IN",
  "SUSPENSION",
  "REINSTATEMENT",
]);

/** A grant in the model: what is left of one credit (or one part of a TRANSFER_IN) with an expiry. */
interface ModelGrant {
  sequence: number;
  part: number;
  app: string;
  amount: number;
  remaining: number;
  expiresAtMs: number;
  /** An expiry-missed was reported for it already. */
  missed: boolean;
}

interface Draw {
  grant: ModelGrant;
  amount: number;
}

interface ModelHold {
  id: string;
  app: string;
  operation: string;
  amount: number;
  expiresAtMs: number;
  status: Hold["status"];
  capturedAmount: number | null;
  draws: Draw[];
  missed: boolean;
}

interface ModelOwner {
  id: string;
  sequence: number;
  balance: number;
  status: "active" | "suspended";
  grants: ModelGrant[];
  holds: Map<string, ModelHold>;
  /** The listed history, in sequence order. */
  history: Entry[];
}

/** Burn order, as documented: soonest expires_at first, then the older grant, then the lower part. */
const burnOrder = (a: ModelGrant, b: ModelGrant): number =>
  a.expiresAtMs - b.expiresAtMs || a.sequence - b.sequence || a.part - b.part;

const liveHolds = (o: ModelOwner, atMs: number) =>
  [...o.holds.values()].filter((h) => h.status === "active" && h.expiresAtMs > atMs);

function heldOf(o: ModelOwner, atMs: number): Map<ModelGrant, number> {
  const held = new Map<ModelGrant, number>();
  for (const h of liveHolds(o, atMs))
    for (const d of h.draws) held.set(d.grant, (held.get(d.grant) ?? 0) + d.amount);
  return held;
}

/** What counts at `atMs`: the balance less every due grant's unheld remainder; held; available. */
function standingAt(o: ModelOwner, atMs: number): { balance: number; held: number; available: number } {
  const held = heldOf(o, atMs);
  const due = o.grants
    .filter((g) => g.remaining > 0 && g.expiresAtMs <= atMs)
    .reduce((sum, g) => sum + Math.max(0, g.remaining - (held.get(g) ?? 0)), 0);
  const holding = liveHolds(o, atMs).reduce((sum, h) => sum + h.amount, 0);
  const balance = o.balance - due;
  return { balance, held: holding, available: balance - holding };
}

/** Available credits at `atMs`, spent in burn order: the unheld, unexpired grants, then credits without expiry. */
function planDraws(o: ModelOwner, atMs: number, need: number): Draw[] {
  const held = heldOf(o, atMs);
  const draws: Draw[] = [];
  let left = need;
  for (const g of [...o.grants].sort(burnOrder)) {
    if (left === 0) break;
    if (g.expiresAtMs <= atMs) continue;
    const take = Math.min(left, g.remaining - (held.get(g) ?? 0));
    if (take > 0) {
      draws.push({ grant: g, amount: take });
      left -= take;
    }
  }
  return draws;
}

/** Every way the ledger's state disagrees with the client's records; empty when it holds. */
export function checkLedger(
  ops: readonly OpRecord[],
  snapshot: LedgerSnapshot,
  opts: CheckOptions,
): Violation[] {
  const violations: Violation[] = [];
  const v = (kind: ViolationKind, detail: string) => violations.push({ kind, detail });

  const writes = writesOf(ops);
  const writeByKey = new Map<string, Write>();
  for (const w of writes) {
    for (const k of w.keys.slice(0, 1)) {
      if (writeByKey.has(k)) v("harness", `the client used one nonce twice: ${w.describe}`);
      writeByKey.set(k, w);
    }
    for (const k of w.keys.slice(1)) writeByKey.set(k, w);
  }
  const isLedgerEntry = (e: Entry) => {
    if (e.operation !== EXPIRY && e.operation !== HOLD_EXPIRY) return false;
    const named = parseLedgerNonce(e.nonce);
    return named !== undefined && named.ownerId === e.owner_id && named.sequence === e.sequence;
  };

  const entriesByKey = new Map<string, Entry[]>();
  for (const entry of snapshot.entries) {
    const k = key(entry.app, entry.nonce);
    entriesByKey.set(k, [...(entriesByKey.get(k) ?? []), entry]);
  }
  for (const [k, list] of entriesByKey) {
    const first = list[0];
    if (!first) continue;
    if (list.length > 1) v("duplicate", `${first.app} nonce ${first.nonce}: ${list.length} entries`);
    const w = writeByKey.get(k);
    if (w === undefined && !isLedgerEntry(first)) {
      v(
        "unexpected-entry",
        `entry ${first.id} (${first.app} ${first.operation} nonce ${first.nonce}) was never sent`,
      );
    }
  }

  // Each write: acknowledged and present as answered, or refused and absent.
  const holdFacts = new Map<
    string,
    { amount: number; operation: string; app: string; expiresAtMs: number }
  >();
  let ackedEntries = 0;
  const ackedSums = new Map<string, number>();
  for (const w of writes) {
    const { op } = w;
    const outcome = op.outcome;
    const found = w.keys.map((k) => entriesByKey.get(k) ?? []);
    if (outcome.kind === "unresolved") {
      v("unresolved", `${w.describe}: still unknown after ${op.attempts} attempts (${outcome.detail})`);
      continue;
    }
    if (outcome.kind === "refused") {
      const allowed =
        opts.allowedRefusals.has(outcome.code) || outcome.code === REFUSED_WITH_ITS_BATCH || lateExpiry(op);
      if (!allowed) {
        v(
          "unexpected-refusal",
          `${w.describe}: ${outcome.status} ${outcome.code} after ${op.unknowns.length} unknown`,
        );
      }
      const present = found.flat()[0];
      if (present)
        v("refused-but-present", `${w.describe}: refused ${outcome.code}, yet entry ${present.id} exists`);
      continue;
    }
    if ((outcome.result as { replayed?: boolean }).replayed && op.unknowns.length === 0) {
      v("phantom-replay", `${w.describe}: a replay on the first attempt of a fresh nonce`);
    }
    if (op.kind === "hold" && op.outcome.kind === "acked") {
      const h = op.outcome.result.hold;
      holdFacts.set(h.id, {
        amount: h.amount,
        operation: h.operation,
        app: h.app,
        expiresAtMs: Date.parse(h.expires_at),
      });
    }
    w.answered.forEach((answer, i) => {
      const entry = found[i]?.[0];
      ackedEntries += 1;
      ackedSums.set(answer.owner_id, (ackedSums.get(answer.owner_id) ?? 0) + answer.amount);
      if (!entry) {
        v("lost", `${w.describe}: acknowledged, its ${answer.operation} entry is not in the history`);
        return;
      }
      const mismatch =
        "implied" in answer
          ? entry.operation !== answer.operation ||
            entry.owner_id !== answer.owner_id ||
            entry.amount !== 0 ||
            entry.hold_id !== answer.hold_id ||
            (answer.created_at !== undefined && entry.created_at !== answer.created_at) ||
            (answer.expires_at !== undefined && entry.expires_at !== answer.expires_at)
          : entry.id !== answer.id ||
            entry.owner_id !== answer.owner_id ||
            entry.operation !== answer.operation ||
            entry.amount !== answer.amount ||
            entry.sequence !== answer.sequence ||
            entry.balance_after !== answer.balance_after ||
            entry.created_at !== answer.created_at ||
            entry.expires_at !== answer.expires_at ||
            entry.hold_id !== answer.hold_id ||
            entry.reverses !== answer.reverses ||
            entry.counterparty_owner_id !== answer.counterparty_owner_id;
      if (mismatch) {
        v(
          "answer-mismatch",
          `${w.describe}: answered ${JSON.stringify(answer)}, history has ${JSON.stringify(entry)}`,
        );
      }
    });
    if (op.kind === undefined || op.kind === "post") {
      const answer = op.outcome.kind === "acked" ? op.outcome.result.entry : undefined;
      if (
        answer &&
        (answer.operation !== op.body.operation ||
          answer.owner_id !== op.body.owner_id ||
          answer.amount !== op.amount)
      ) {
        v(
          "answer-mismatch",
          `${w.describe}: answered ${JSON.stringify(answer)} for ${JSON.stringify(op.body)}`,
        );
      }
      const expected = answer ? expectedExpiresAtMs(op.app, op.body, answer) : null;
      if (answer && msOf(answer.expires_at) !== expected) {
        v(
          "answer-mismatch",
          `${w.describe}: answered expires_at ${answer.expires_at ?? "none"}, the request makes it ` +
            `${expected === null ? "none" : new Date(expected).toISOString()}`,
        );
      }
    }
  }

  // The whole ledger replayed in the order it was written.
  const owners = new Map<string, ModelOwner>();
  for (const id of snapshot.owners) {
    owners.set(id, {
      id,
      sequence: 0,
      balance: 0,
      status: "active",
      grants: [],
      holds: new Map(),
      history: [],
    });
  }
  const entriesById = new Map<number, Entry>();
  /** Per debit entry id: what it took from each grant (the rest was credits without expiry). */
  const debitDraws = new Map<number, Draw[]>();
  /** Per reversed entry id: the total reversed, and what was given back to each grant. */
  const reversedOf = new Map<number, { total: number; restored: Map<ModelGrant, number> }>();
  /** Per transfer (app, nonce): what its TRANSFER_OUT spent, by expiry instant. */
  const transferOuts = new Map<string, { entry: Entry; byInstant: Map<number, number> }>();
  const chainBroken = new Set<string>();
  let ledgerEntries = 0;
  const ledgerSum = new Map<string, number>();

  for (const entry of writtenOrder(snapshot.entries)) {
    const o = owners.get(entry.owner_id);
    if (!o) {
      v("harness", `entry ${entry.id} of ${entry.owner_id}, an owner the client never wrote to`);
      continue;
    }
    const at = `${o.id} #${entry.sequence} (${entry.app} ${entry.operation} nonce ${entry.nonce})`;
    if (
      !chainBroken.has(o.id) &&
      (entry.sequence !== o.sequence + 1 ||
        entry.balance_after !== o.balance + entry.amount ||
        entry.balance_after < 0)
    ) {
      v(
        "broken-chain",
        `${at} has balance_after ${entry.balance_after}; expected #${o.sequence + 1} with ${o.balance} + ${entry.amount}`,
      );
      // One report per owner: it fails the run, and what follows a break is noise.
      chainBroken.add(o.id);
    }
    o.sequence = entry.sequence;
    o.balance = entry.balance_after;
    o.history.push(entry);
    entriesById.set(entry.id, entry);
    const t = Date.parse(entry.created_at);

    if (isLedgerEntry(entry)) {
      ledgerEntries += 1;
      ledgerSum.set(o.id, (ledgerSum.get(o.id) ?? 0) + entry.amount);
      if (entry.operation === HOLD_EXPIRY) {
        const h = entry.hold_id === undefined ? undefined : o.holds.get(entry.hold_id);
        if (!h || h.status !== "active" || h.expiresAtMs > t || h.app !== entry.app || entry.amount !== 0) {
          v(
            "bad-expiry",
            `${at}: expires hold ${entry.hold_id ?? "none"}, ${h ? `${h.status}, expiring ${new Date(h.expiresAtMs).toISOString()}, of ${h.app}` : "not one of the owner's holds"}`,
          );
        }
        if (h) h.status = "expired";
        continue;
      }
      // The grant due first in burn order with something left that no live hold holds.
      const held = heldOf(o, t);
      const grant = [...o.grants]
        .sort(burnOrder)
        .find((g) => g.expiresAtMs <= t && g.remaining - (held.get(g) ?? 0) > 0);
      if (!grant) {
        // One written too early names its grant by its expiry and app, and what it takes.
        const early = o.grants.find(
          (g) =>
            g.expiresAtMs === msOf(entry.expires_at) &&
            g.app === entry.app &&
            g.remaining - (held.get(g) ?? 0) === -entry.amount,
        );
        v(
          "bad-expiry",
          early
            ? `${at}: expires grant #${early.sequence}.${early.part} at ${entry.created_at}, before its expiry`
            : `${at}: no grant of ${o.id} was due with something unheld left`,
        );
        if (early) early.remaining += entry.amount;
        continue;
      }
      const unheld = grant.remaining - (held.get(grant) ?? 0);
      const problems: string[] = [];
      if (entry.amount !== -unheld)
        problems.push(`amount ${entry.amount}, but ${unheld} was left of it, unheld`);
      if (entry.app !== grant.app) problems.push(`app ${entry.app}, but it was granted by ${grant.app}`);
      if (msOf(entry.expires_at) !== grant.expiresAtMs) {
        problems.push(
          `expires_at ${entry.expires_at ?? "none"}, the grant's is ${new Date(grant.expiresAtMs).toISOString()}`,
        );
      }
      if (problems.length > 0) {
        v("bad-expiry", `${at}: expires grant #${grant.sequence}.${grant.part} with ${problems.join("; ")}`);
      }
      // What the rule expires, whatever the entry said (reported above): one wrong entry, one report.
      grant.remaining -= unheld;
      continue;
    }

    // A client's write. Whatever was due before it is recorded first, in the same transaction.
    const held = heldOf(o, t);
    for (const g of o.grants) {
      if (!g.missed && g.remaining - (held.get(g) ?? 0) > 0 && g.expiresAtMs <= t) {
        v(
          "expiry-missed",
          `${at} was written at ${entry.created_at} while grant #${g.sequence}.${g.part} (${g.remaining} left, ` +
            `expiring ${new Date(g.expiresAtMs).toISOString()}) had not been expired before it`,
        );
        g.missed = true;
      }
    }
    for (const h of o.holds.values()) {
      if (!h.missed && h.status === "active" && h.expiresAtMs <= t) {
        v(
          "expiry-missed",
          `${at} was written while hold ${h.id} (expiring ${new Date(h.expiresAtMs).toISOString()}) was still active`,
        );
        h.missed = true;
      }
    }
    if (o.status === "suspended" && !WRITABLE_WHILE_SUSPENDED.has(entry.operation)) {
      v("suspended-write", `${at}: written while ${o.id} was suspended`);
    }
    // What counted right before this entry.
    const standing = standingAt({ ...o, balance: entry.balance_after - entry.amount }, t);
    const debit = (need: number) => {
      if (need > standing.available) {
        v(
          "overdraw",
          `${at}: took ${need} with ${standing.available} available (${standing.balance} less ${standing.held} held)`,
        );
      }
      const draws = planDraws(o, t, need);
      for (const d of draws) d.grant.remaining -= d.amount;
      return draws;
    };
    const openGrant = (part: number, amount: number, expiresAtMs: number) =>
      o.grants.push({
        sequence: entry.sequence,
        part,
        app: entry.app,
        amount,
        remaining: amount,
        expiresAtMs,
        missed: false,
      });

    switch (entry.operation) {
      case "HOLD": {
        const facts = entry.hold_id === undefined ? undefined : holdFacts.get(entry.hold_id);
        if (!facts || entry.hold_id === undefined) {
          v("bad-hold", `${at}: a HOLD entry for no acknowledged hold`);
          break;
        }
        if (facts.amount > standing.available) {
          v("overdraw", `${at}: held ${facts.amount} with ${standing.available} available`);
        }
        o.holds.set(entry.hold_id, {
          id: entry.hold_id,
          ...facts,
          status: "active",
          capturedAmount: null,
          draws: planDraws(o, t, facts.amount),
          missed: false,
        });
        break;
      }
      case "HOLD_RELEASE": {
        const h = entry.hold_id === undefined ? undefined : o.holds.get(entry.hold_id);
        if (!h || h.status !== "active" || h.expiresAtMs <= t) {
          v("bad-hold", `${at}: releases hold ${entry.hold_id ?? "none"}, ${h ? h.status : "unknown"}`);
        }
        if (h) h.status = "released";
        break;
      }
      case "REVERSAL": {
        const original = entry.reverses === undefined ? undefined : entriesById.get(entry.reverses);
        if (
          !original ||
          original.owner_id !== o.id ||
          original.app !== entry.app ||
          NOT_REVERSIBLE.has(original.operation) ||
          original.amount === 0 ||
          Math.sign(original.amount) === Math.sign(entry.amount)
        ) {
          v(
            "bad-reversal",
            `${at}: reverses entry ${entry.reverses ?? "none"}, ${original ? JSON.stringify(original) : "not written before it"}`,
          );
          break;
        }
        const so = reversedOf.get(original.id) ?? { total: 0, restored: new Map<ModelGrant, number>() };
        reversedOf.set(original.id, so);
        const amount = Math.abs(entry.amount);
        if (so.total + amount > Math.abs(original.amount)) {
          v(
            "bad-reversal",
            `${at}: reverses ${amount} of entry ${original.id} (${original.amount}), ${so.total} reversed before`,
          );
        }
        if (original.amount < 0) {
          // Back first to the credits without expiry it took, then to its grants, the latest expiry first.
          const draws = debitDraws.get(original.id) ?? [];
          const fromGrants = draws.reduce((s, d) => s + d.amount, 0);
          const toGrantsSoFar = [...so.restored.values()].reduce((s, n) => s + n, 0);
          const permanentLeft = -original.amount - fromGrants - (so.total - toGrantsSoFar);
          let toGive = amount - Math.min(amount, Math.max(0, permanentLeft));
          for (const d of [...draws].sort((a, b) => burnOrder(a.grant, b.grant)).reverse()) {
            if (toGive === 0) break;
            const give = Math.min(toGive, d.amount - (so.restored.get(d.grant) ?? 0));
            if (give <= 0) continue;
            d.grant.remaining += give;
            so.restored.set(d.grant, (so.restored.get(d.grant) ?? 0) + give);
            toGive -= give;
          }
        } else if (original.expires_at !== undefined) {
          // From that credit's own grant: its unspent, unheld remainder, while it counts.
          const g = o.grants.find((x) => x.sequence === original.sequence && x.part === 0);
          const unheld = g && g.expiresAtMs > t ? g.remaining - (held.get(g) ?? 0) : 0;
          if (!g || amount > unheld)
            v("overdraw", `${at}: took back ${amount} of a grant with ${unheld} unheld`);
          if (g) g.remaining -= Math.min(g.remaining, amount);
        } else {
          const inGrants = o.grants.reduce((s, g) => s + g.remaining, 0);
          const heldPermanent = liveHolds(o, t).reduce(
            (s, h) => s + h.amount - h.draws.reduce((x, d) => x + d.amount, 0),
            0,
          );
          const permanent = standing.balance + (o.balance - entry.balance_after) - inGrants - heldPermanent;
          if (amount > permanent)
            v("overdraw", `${at}: took back ${amount} with ${permanent} available without expiry`);
        }
        so.total += amount;
        break;
      }
      case "TRANSFER_OUT": {
        const draws = debit(-entry.amount);
        const byInstant = new Map<number, number>();
        for (const d of draws)
          byInstant.set(d.grant.expiresAtMs, (byInstant.get(d.grant.expiresAtMs) ?? 0) + d.amount);
        transferOuts.set(key(entry.app, entry.nonce), { entry, byInstant });
        break;
      }
      case "TRANSFER_IN": {
        const m = /^transfer-in (\S+)$/.exec(entry.nonce);
        const out = m?.[1] === undefined ? undefined : transferOuts.get(key(entry.app, m[1]));
        if (
          !out ||
          out.entry.amount !== -entry.amount ||
          out.entry.counterparty_owner_id !== o.id ||
          entry.counterparty_owner_id !== out.entry.owner_id
        ) {
          v(
            "bad-transfer",
            `${at}: ${out ? `pairs with ${JSON.stringify(out.entry)}` : "no TRANSFER_OUT written before it"}`,
          );
          break;
        }
        [...out.byInstant]
          .sort(([a], [b]) => a - b)
          .forEach(([expiresAtMs, amount], part) => openGrant(part, amount, expiresAtMs));
        break;
      }
      case "SUSPENSION":
        if (o.status === "suspended") v("bad-status", `${at}: suspends an owner already suspended`);
        o.status = "suspended";
        break;
      case "REINSTATEMENT":
        if (o.status !== "suspended") v("bad-status", `${at}: reinstates an owner that was not suspended`);
        o.status = "active";
        break;
      default: {
        const h = entry.hold_id === undefined ? undefined : o.holds.get(entry.hold_id);
        if (entry.hold_id !== undefined) {
          // A capture: its hold's own draws first, then credits without expiry; the rest is released.
          if (
            !h ||
            h.status !== "active" ||
            h.expiresAtMs <= t ||
            -entry.amount > h.amount ||
            h.operation !== entry.operation
          ) {
            v(
              "bad-hold",
              `${at}: captures hold ${entry.hold_id}, ${h ? `${h.status}, holding ${h.amount}` : "unknown"}`,
            );
            break;
          }
          let left = -entry.amount;
          const taken: Draw[] = [];
          for (const d of h.draws) {
            const take = Math.min(d.amount, left);
            if (take <= 0) continue;
            d.grant.remaining -= take;
            taken.push({ grant: d.grant, amount: take });
            left -= take;
          }
          h.status = "captured";
          h.capturedAmount = -entry.amount;
          debitDraws.set(entry.id, taken);
        } else if (entry.amount < 0) {
          debitDraws.set(entry.id, debit(-entry.amount));
        } else if (entry.amount > 0 && entry.expires_at !== undefined) {
          openGrant(0, entry.amount, Date.parse(entry.expires_at));
        }
      }
    }
  }

  // The read: what counted then.
  const window = snapshot.readWindow;
  for (const o of owners.values()) {
    const answered = snapshot.balances.get(o.id);
    // Which holds still held and which grants still counted when the owner was read.
    const pending: string[] = [];
    for (const g of o.grants) {
      if (g.remaining === 0) continue;
      if (window === undefined)
        pending.push(`grant #${g.sequence}.${g.part} is open, and the snapshot has no read window`);
      else if (g.expiresAtMs > window.fromMs && g.expiresAtMs <= window.toMs) {
        pending.push(
          `grant #${g.sequence}.${g.part} (expires ${new Date(g.expiresAtMs).toISOString()}) expired while the balances were read`,
        );
      }
    }
    for (const h of o.holds.values()) {
      if (h.status !== "active") continue;
      if (window === undefined) pending.push(`hold ${h.id} is active, and the snapshot has no read window`);
      else if (h.expiresAtMs > window.fromMs && h.expiresAtMs <= window.toMs) {
        pending.push(`hold ${h.id} expired while the balances were read`);
      }
    }
    if (pending.length > 0) {
      for (const p of pending) v("harness", `${o.id}: ${p}: whether it counted is unknown`);
      continue;
    }
    const readAt = window?.toMs ?? 0;
    const s = standingAt(o, readAt);
    const listed = o.history.reduce((sum, e) => sum + e.amount, 0);
    const acked = (ackedSums.get(o.id) ?? 0) + (ledgerSum.get(o.id) ?? 0);
    const due = o.balance - s.balance;
    if (answered !== listed - due) {
      v(
        "balance-mismatch",
        `${o.id}: balance ${answered}; its listed entries sum to ${listed}, less ${due} due but not yet expired`,
      );
    }
    if (answered !== acked - due) {
      v(
        "balance-mismatch",
        `${o.id}: balance ${answered}; acknowledged writes and the ledger's own entries sum to ${acked}, less ${due} due`,
      );
    }
    if (answered !== undefined && answered < 0) v("negative-balance", `${o.id}: balance ${answered}`);
    const figures = snapshot.figures?.get(o.id);
    if (
      figures &&
      (figures.held !== s.held || figures.available !== s.available || figures.status !== o.status)
    ) {
      v(
        "figures-mismatch",
        `${o.id}: ${JSON.stringify(figures)}; the active holds make it held ${s.held}, available ${s.available}, ${o.status}`,
      );
    }
    const answeredExpiring = snapshot.expiring?.get(o.id);
    if (answeredExpiring !== undefined) {
      const expected = expiringOf(o.grants.filter((g) => g.expiresAtMs > readAt));
      const normal = answeredExpiring.map((x) => ({
        amount: x.amount,
        expiresAtMs: Date.parse(x.expires_at),
      }));
      if (JSON.stringify(normal) !== JSON.stringify(expected)) {
        v(
          "expiring-mismatch",
          `${o.id}: expiring ${JSON.stringify(answeredExpiring)}; the open grants make it ` +
            JSON.stringify(
              expected.map((x) => ({ amount: x.amount, expires_at: new Date(x.expiresAtMs).toISOString() })),
            ),
        );
      }
    }
    for (const h of o.holds.values()) {
      const read = snapshot.holds?.get(h.id);
      if (!read) continue;
      const status = h.status === "active" && h.expiresAtMs <= readAt ? "expired" : h.status;
      if (read.status !== status || (read.captured_amount ?? null) !== h.capturedAmount) {
        v(
          "hold-mismatch",
          `hold ${h.id}: ${JSON.stringify(read)}; its entries make it ${status}${h.capturedAmount === null ? "" : ` (${h.capturedAmount} captured)`}`,
        );
      }
    }
  }

  if (snapshot.totalEntries !== undefined && snapshot.totalEntries !== ackedEntries + ledgerEntries) {
    v(
      "entry-count",
      `${snapshot.totalEntries} entries in the database; ${ackedEntries} written by acknowledged writes and ` +
        `${ledgerEntries} by the ledger (EXPIRY, HOLD_EXPIRY) listed`,
    );
  }
  const expiryEntries = snapshot.entries.filter((e) => e.operation === EXPIRY).length;
  if (snapshot.totalExpiryEntries !== undefined && snapshot.totalExpiryEntries !== expiryEntries) {
    v(
      "entry-count",
      `${snapshot.totalExpiryEntries} EXPIRY entries in the database, ${expiryEntries} listed`,
    );
  }
  return violations;
}

/**
 * The entries in the order the ledger wrote them: each owner's in sequence order, the owners interleaved
 * by id (a write takes its owners' locks, so what one owner's entry depends on of another, a transfer's
 * TRANSFER_OUT, was written before it, with a lower id).
 */
function writtenOrder(entries: readonly Entry[]): Entry[] {
  const byOwner = new Map<string, Entry[]>();
  for (const e of entries) byOwner.set(e.owner_id, [...(byOwner.get(e.owner_id) ?? []), e]);
  const queues = [...byOwner.values()].map((list) => list.sort((a, b) => a.sequence - b.sequence));
  const out: Entry[] = [];
  const at = queues.map(() => 0);
  for (;;) {
    let best = -1;
    queues.forEach((q, i) => {
      const head = q[at[i] ?? 0];
      const current = queues[best]?.[at[best] ?? 0];
      if (head && (!current || head.id < current.id)) best = i;
    });
    const queue = queues[best];
    if (!queue) return out;
    const next = queue[at[best] ?? 0];
    if (next) out.push(next);
    at[best] = (at[best] ?? 0) + 1;
  }
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

/** Violations counted by kind, for a summary. */
export function countByKind(violations: readonly Violation[]): Partial<Record<ViolationKind, number>> {
  const counts: Partial<Record<ViolationKind, number>> = {};
  for (const { kind } of violations) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}
