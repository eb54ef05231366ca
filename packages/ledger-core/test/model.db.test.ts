// Model-based tests of the real LedgerService, on both drivers (issue "Prove it never loses, duplicates
// or overdraws", part 2). fast-check generates sequences of commands (credits, debits, limited
// operations, credits that expire (a requested expires_at, an operation's own expiry), spends across
// several grants, clock moves that make grants due, the expiry sweeper, replays, nonce reuse, a second
// app, bad amounts, unknown operations, reads)
// and runs each against the service and against a small in-memory model that predicts every answer:
// the exact entry and balance of a success, the exact code of a refusal. The model is written from the
// documented rules, not from the service's code, so the two can disagree.
//
// Each run is its own world: fresh owner ids (a pool of 2 or 3, so commands interact) and fresh nonces
// on the one database this file opens; the model starts empty every run.
//
// Replaying a failure. fast-check's error gives `seed` and `path`, and the counterexample's commands
// end with a comment `/*replayPath="..."*/`. Pass all three back (quote them for the shell):
//   FC_SEED=<seed> FC_PATH='<path>' FC_REPLAY_PATH='<replayPath>' \
//     npx vitest run test/model.db.test.ts --project pglite      (or --project postgres)
// Owner ids and nonces are random per run, everything else is replayed exactly.
// Knobs: FC_NUM_RUNS (runs, default 200), FC_MAX_COMMANDS (commands per run at most, default 30).
import { sql } from "drizzle-orm";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { queryRows } from "../src/store/index.js";
import {
  LedgerError,
  LedgerService,
  defineCatalog,
  fixed,
  variable,
  type LedgerEntry,
  type PostResult,
} from "../src/index.js";
import { freshNonce, freshOwner, testDriver, useTestDatabase } from "../src/testing/index.js";
import { testCatalog } from "./fixtures.js";

const NUM_RUNS = envInt("FC_NUM_RUNS", 200);
const MAX_COMMANDS = envInt("FC_MAX_COMMANDS", 30);
const SEED = envSeed("FC_SEED");
const PATH = process.env.FC_PATH;
const REPLAY_PATH = process.env.FC_REPLAY_PATH;

function envSeed(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw new Error(`${name} must be an integer (fast-check's seed), got ${raw}`);
  return n;
}

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${raw}`);
  return n;
}

// ---------------------------------------------------------------------------------------------------
// The system: two apps over one database, with catalogs that differ by one operation each, so that an
// operation one app offers is unknown to the other. app-a adds a limited debit (the only way to see
// that the balance rule comes before the limit); app-b a limited variable credit.

const APP_CATALOGS = [
  defineCatalog({
    ...testCatalog.operations,
    MODEL_DAILY_FEE: variable({ direction: "debit", min: 1, max: 100, limit: "daily" }),
  }),
  defineCatalog({
    ...testCatalog.operations,
    MODEL_ONCE_BONUS: variable({ direction: "credit", min: 1, max: 5, limit: "once" }),
    MODEL_PROMO: fixed(4, { expiresAfterS: 6 * 3600 }),
  }),
] as const;
const APP_NAMES = ["app-a", "app-b"] as const;
type AppIndex = 0 | 1;

// ---------------------------------------------------------------------------------------------------
// The model's own statement of the rules: the seed's amounts for the shared operations, the fixture's
// for the test ones, and the documented bounds (AMOUNT_MAX 1e9, balances within [0, 2^53-1]).

type Limit = "once" | "daily";
type OpSpec =
  | { kind: "fixed"; amount: number; limit?: Limit; allowsExpiresAt?: true; expiresAfterMs?: number }
  | { kind: "variable"; sign: 1 | -1; min: number; max: number; limit?: Limit };

const SHARED_SPEC: [string, OpSpec][] = [
  ["DAILY_REWARD", { kind: "fixed", amount: 1, limit: "daily" }],
  ["SIGNUP_CREDIT", { kind: "fixed", amount: 3, limit: "once" }],
  ["CREDIT_SPEND", { kind: "fixed", amount: -1 }],
  ["CREDIT_ADD", { kind: "fixed", amount: 10, allowsExpiresAt: true }],
  ["TEST_ZERO", { kind: "fixed", amount: 0 }],
  ["TEST_DEBIT", { kind: "variable", sign: -1, min: 2, max: 50 }],
  ["TEST_CREDIT", { kind: "variable", sign: 1, min: 1, max: 1_000_000_000 }],
  ["TEST_WELCOME", { kind: "fixed", amount: 7, limit: "once" }],
];
// Maps, not objects: "toString" or "__proto__" must be unknown operations, not inherited properties.
const APP_SPECS: readonly [Map<string, OpSpec>, Map<string, OpSpec>] = [
  new Map([
    ...SHARED_SPEC,
    ["MODEL_DAILY_FEE", { kind: "variable", sign: -1, min: 1, max: 100, limit: "daily" }],
  ]),
  new Map([
    ...SHARED_SPEC,
    ["MODEL_ONCE_BONUS", { kind: "variable", sign: 1, min: 1, max: 5, limit: "once" }],
    ["MODEL_PROMO", { kind: "fixed", amount: 4, expiresAfterMs: 6 * 3_600_000 }],
  ]),
];
const AMOUNT_LIMIT = 1_000_000_000;
const BALANCE_LIMIT = Number.MAX_SAFE_INTEGER;
const PAGE_SIZE_LIMIT = 200;
const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
/** Runs start somewhere on this UTC day, at a time fast-check picks. */
const EPOCH_MS = Date.parse("2026-03-01T00:00:00Z");

type Code =
  | "VALIDATION_FAILED"
  | "UNKNOWN_OPERATION"
  | "EXPIRY_NOT_ALLOWED"
  | "AMOUNT_REQUIRED"
  | "AMOUNT_MISMATCH"
  | "AMOUNT_OUT_OF_RANGE"
  | "NONCE_CONFLICT"
  | "INSUFFICIENT_BALANCE"
  | "BALANCE_LIMIT_EXCEEDED"
  | "LIMIT_REACHED";

interface PostInput {
  owner_id: string;
  operation: string;
  nonce: string;
  amount?: number;
  expires_at?: string;
}

/** An entry before the database has given it an id. */
type PredictedEntry = Omit<LedgerEntry, "id">;

/** A credit that expires, as the model keeps it. */
interface ModelGrant {
  sequence: number;
  app: string;
  remaining: number;
  expiresAtMs: number;
}

type Prediction =
  | { kind: "refused"; code: Code }
  | { kind: "replayed"; entry: LedgerEntry }
  | {
      kind: "applied";
      /** The EXPIRY entries written first for the owner's due grants, then the operation's. */
      expiries: PredictedEntry[];
      entry: PredictedEntry;
      limitKey: string | null;
      /** The owner's grants after it. */
      grants: ModelGrant[];
    };

interface Model {
  nowMs: number;
  readonly owners: readonly string[];
  readonly noncePrefix: string;
  nonceCount: number;
  /** Per owner, oldest first, as the service returned them (ids included). */
  readonly history: Map<string, LedgerEntry[]>;
  /** `${app} ${nonce}` (a nonce has no space) -> the entry it applied. */
  readonly byNonce: Map<string, LedgerEntry>;
  /** Applied entries in order, with the app index that wrote them: the pool replays draw from. */
  readonly applied: { app: AppIndex; entry: LedgerEntry }[];
  /** Nonces only ever refused by an app: still unused there, so a later request may take them. */
  readonly refused: { app: AppIndex; nonce: string }[];
  readonly refusedKeys: Set<string>;
  /** `${owner} ${operation} ${period}` of every limited operation applied. */
  readonly limitsUsed: Set<string>;
  /** Per owner: open grants (something left, not expired), in no particular order. */
  readonly grants: Map<string, ModelGrant[]>;
  /** The expires_at each applied CREDIT_ADD asked for, by `${app} ${nonce}`: part of the request. */
  readonly requestedExpiry: Map<string, string | undefined>;
  lastId: number;
}

interface Real {
  readonly services: readonly [LedgerService, LedgerService];
  readonly clock: { nowMs: number };
}

const nonceKey = (app: AppIndex, nonce: string) => `${APP_NAMES[app]} ${nonce}`;
const storedBalanceOf = (m: Model, owner: string) => m.history.get(owner)?.at(-1)?.balance_after ?? 0;
const grantsOf = (m: Model, owner: string) => m.grants.get(owner) ?? [];
const dueSum = (m: Model, owner: string) =>
  grantsOf(m, owner)
    .filter((g) => g.expiresAtMs <= m.nowMs)
    .reduce((sum, g) => sum + g.remaining, 0);
/** The balance that counts now: expired remainders do not, whether their EXPIRY entry is written or not. */
const balanceOf = (m: Model, owner: string) => storedBalanceOf(m, owner) - dueSum(m, owner);
const byBurnOrder = (a: ModelGrant, b: ModelGrant) =>
  a.expiresAtMs - b.expiresAtMs || a.sequence - b.sequence;
const iso = (ms: number) => new Date(ms).toISOString();

/** The EXPIRY entries the next write for this owner (or a sweep) writes, soonest expiry first. */
function expiriesOf(m: Model, owner: string): { entries: PredictedEntry[]; grants: ModelGrant[] } {
  let balance = storedBalanceOf(m, owner);
  let sequence = m.history.get(owner)?.length ?? 0;
  const entries: PredictedEntry[] = [];
  const grants: ModelGrant[] = [];
  for (const g of [...grantsOf(m, owner)].sort(byBurnOrder)) {
    if (g.expiresAtMs > m.nowMs) {
      grants.push({ ...g });
      continue;
    }
    balance -= g.remaining;
    sequence += 1;
    entries.push({
      app: g.app,
      operation: "EXPIRY",
      owner_id: owner,
      amount: -g.remaining,
      balance_after: balance,
      sequence,
      nonce: `ledger ${sequence} ${owner}`,
      created_at: iso(m.nowMs),
      expires_at: iso(g.expiresAtMs),
    });
  }
  return { entries, grants };
}

/** Takes a debit of `amount` from the grants in burn order; credits without expiry cover the rest. */
function spend(grants: ModelGrant[], amount: number): ModelGrant[] {
  let left = amount;
  return [...grants].sort(byBurnOrder).flatMap((g) => {
    const take = Math.min(g.remaining, left);
    left -= take;
    return g.remaining - take > 0 ? [{ ...g, remaining: g.remaining - take }] : [];
  });
}

function expiringOf(m: Model, owner: string): { amount: number; expires_at: string }[] {
  const by = new Map<number, number>();
  for (const g of grantsOf(m, owner)) {
    if (g.expiresAtMs > m.nowMs) by.set(g.expiresAtMs, (by.get(g.expiresAtMs) ?? 0) + g.remaining);
  }
  return [...by]
    .sort(([a], [b]) => a - b)
    .slice(0, 50)
    .map(([t, amount]) => ({ amount, expires_at: iso(t) }));
}

const expectedRead = (m: Model, owner: string) => {
  const balance = balanceOf(m, owner);
  return {
    owner_id: owner,
    balance,
    available: balance,
    held: 0,
    status: "active",
    expiring: expiringOf(m, owner),
  };
};
const ownerAt = (m: Model, index: number) => m.owners[index % m.owners.length] ?? "";

const OWNER_ID_RULE = /^[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,127}$/;
const NONCE_RULE = /^[\x21-\x7E]{1,128}$/;

/**
 * What the service must answer, in its documented order of precedence: validation, unknown operation,
 * amount, then (under the owner's lock) nonce replay or conflict, balance, limit.
 */
function predict(m: Model, app: AppIndex, input: PostInput): Prediction {
  const { owner_id, operation, nonce, amount } = input;
  const amountValid =
    amount === undefined || (Number.isInteger(amount) && amount >= 0 && amount <= AMOUNT_LIMIT);
  if (
    !OWNER_ID_RULE.test(owner_id) ||
    !NONCE_RULE.test(nonce) ||
    operation.length < 1 ||
    operation.length > 64 ||
    !amountValid
  ) {
    return { kind: "refused", code: "VALIDATION_FAILED" };
  }
  const spec = APP_SPECS[app].get(operation);
  if (!spec) return { kind: "refused", code: "UNKNOWN_OPERATION" };
  if (input.expires_at !== undefined && !(spec.kind === "fixed" && spec.allowsExpiresAt)) {
    return { kind: "refused", code: "EXPIRY_NOT_ALLOWED" };
  }

  let signed: number;
  if (spec.kind === "fixed") {
    if (amount !== undefined && amount !== Math.abs(spec.amount)) {
      return { kind: "refused", code: "AMOUNT_MISMATCH" };
    }
    signed = spec.amount;
  } else {
    if (amount === undefined) return { kind: "refused", code: "AMOUNT_REQUIRED" };
    if (amount < spec.min || amount > spec.max) return { kind: "refused", code: "AMOUNT_OUT_OF_RANGE" };
    signed = spec.sign * amount;
  }

  const earlier = m.byNonce.get(nonceKey(app, nonce));
  if (earlier) {
    const sameExpiry =
      !(spec.kind === "fixed" && spec.allowsExpiresAt) ||
      instantMs(m.requestedExpiry.get(nonceKey(app, nonce))) === instantMs(input.expires_at);
    const same =
      earlier.owner_id === owner_id &&
      earlier.operation === operation &&
      earlier.amount === signed &&
      sameExpiry;
    return same ? { kind: "replayed", entry: earlier } : { kind: "refused", code: "NONCE_CONFLICT" };
  }

  let expiresAtMs: number | null = null;
  if (input.expires_at !== undefined) {
    expiresAtMs = Date.parse(input.expires_at);
    const horizon = new Date(m.nowMs);
    horizon.setUTCFullYear(horizon.getUTCFullYear() + 10);
    if (expiresAtMs <= m.nowMs || expiresAtMs > horizon.getTime()) {
      return { kind: "refused", code: "VALIDATION_FAILED" };
    }
  } else if (spec.kind === "fixed" && spec.expiresAfterMs !== undefined) {
    expiresAtMs = m.nowMs + spec.expiresAfterMs;
  }

  const expired = expiriesOf(m, owner_id);
  const balance = balanceOf(m, owner_id);
  if (signed < 0 && balance + signed < 0) return { kind: "refused", code: "INSUFFICIENT_BALANCE" };
  if (signed > 0 && balance > BALANCE_LIMIT - signed) {
    return { kind: "refused", code: "BALANCE_LIMIT_EXCEEDED" };
  }

  const now = new Date(m.nowMs).toISOString();
  let limitKey: string | null = null;
  if (spec.limit) {
    limitKey = `${owner_id} ${operation} ${spec.limit === "once" ? "once" : now.slice(0, 10)}`;
    if (m.limitsUsed.has(limitKey)) return { kind: "refused", code: "LIMIT_REACHED" };
  }

  const sequence = (m.history.get(owner_id)?.length ?? 0) + expired.entries.length + 1;
  let grants = expired.grants;
  if (signed < 0) grants = spend(grants, -signed);
  if (signed > 0 && expiresAtMs !== null) {
    grants = [...grants, { sequence, app: APP_NAMES[app], remaining: signed, expiresAtMs }];
  }
  return {
    kind: "applied",
    limitKey,
    expiries: expired.entries,
    grants,
    entry: {
      app: APP_NAMES[app],
      operation,
      owner_id,
      amount: signed,
      balance_after: balance + signed,
      sequence,
      nonce,
      created_at: now,
      ...(expiresAtMs === null ? {} : { expires_at: iso(expiresAtMs) }),
    },
  };
}

const instantMs = (text: string | undefined) => (text === undefined ? null : Date.parse(text));

type Outcome = { ok: true; result: PostResult } | { ok: false; code: string };

async function attempt(p: Promise<PostResult>): Promise<Outcome> {
  try {
    return { ok: true, result: await p };
  } catch (error) {
    // Only the ledger's own errors are answers; anything else is a bug and fails the run as it is.
    if (error instanceof LedgerError) return { ok: false, code: error.code };
    throw error;
  }
}

/** Sends one post to the real service, checks the answer against the model, then moves the model. */
async function postAndCheck(m: Model, r: Real, app: AppIndex, input: PostInput): Promise<void> {
  const predicted = predict(m, app, input);
  const actual = await attempt(r.services[app].post(input));
  switch (predicted.kind) {
    case "refused": {
      expect(actual).toEqual({ ok: false, code: predicted.code });
      const key = nonceKey(app, input.nonce);
      if (!m.byNonce.has(key) && !m.refusedKeys.has(key) && NONCE_RULE.test(input.nonce)) {
        m.refusedKeys.add(key);
        m.refused.push({ app, nonce: input.nonce });
      }
      return;
    }
    case "replayed":
      expect(actual).toEqual({
        ok: true,
        result: {
          entry: predicted.entry,
          balance: predicted.entry.balance_after,
          available: predicted.entry.balance_after,
          replayed: true,
        },
      });
      return;
    case "applied": {
      if (!actual.ok) expect.fail(`expected ${JSON.stringify(predicted.entry)}, got ${actual.code}`);
      const { entry } = actual.result;
      expect(actual.result).toEqual({
        entry: { ...predicted.entry, id: entry.id },
        balance: predicted.entry.balance_after,
        available: predicted.entry.balance_after,
        replayed: false,
      });
      expect(entry.id).toBeGreaterThan(m.lastId);
      m.lastId = entry.id;
      const history = m.history.get(entry.owner_id) ?? [];
      // The expiry entries' ids come from the database: any id, checked in order by the history walk.
      history.push(...predicted.expiries.map((e) => ({ ...e, id: expect.any(Number) as number })), entry);
      m.history.set(entry.owner_id, history);
      m.grants.set(entry.owner_id, predicted.grants);
      m.byNonce.set(nonceKey(app, entry.nonce), entry);
      m.requestedExpiry.set(nonceKey(app, entry.nonce), input.expires_at);
      m.applied.push({ app, entry });
      if (predicted.limitKey) m.limitsUsed.add(predicted.limitKey);
      return;
    }
  }
}

/** A whole history, newest first, checked on its own terms: no model needed to see these break. */
function expectWellFormedHistory(owner: string, newestFirst: readonly LedgerEntry[]): void {
  const entries = [...newestFirst].reverse();
  let balance = 0;
  entries.forEach((e, i) => {
    expect(e.owner_id).toBe(owner);
    expect(e.sequence).toBe(i + 1);
    expect(e.balance_after).toBe(balance + e.amount);
    expect(e.balance_after).toBeGreaterThanOrEqual(0);
    const previous = entries[i - 1];
    // Runs are serial and the clock only moves forward, so ids and times follow the sequence too.
    if (previous) {
      expect(e.id).toBeGreaterThan(previous.id);
      expect(e.created_at >= previous.created_at).toBe(true);
    }
    balance = e.balance_after;
  });
}

/** Reads an owner's whole history page by page and checks every page against the model. */
async function walkHistory(m: Model, service: LedgerService, owner: string, pageSize: number) {
  const expected = [...(m.history.get(owner) ?? [])].reverse();
  const seen: LedgerEntry[] = [];
  let cursor: string | undefined;
  let pages = 0;
  for (;;) {
    const page = await service.entries({ owner_id: owner, cursor, limit: pageSize });
    pages += 1;
    expect(page.owner_id).toBe(owner);
    expect(page.entries).toEqual(expected.slice(seen.length, seen.length + pageSize));
    seen.push(...page.entries);
    expect(page.next_cursor === null).toBe(seen.length === expected.length);
    if (page.next_cursor === null || pages > expected.length) break;
    cursor = page.next_cursor;
  }
  expect(seen).toEqual(expected);
  expect(pages).toBe(Math.max(1, Math.ceil(expected.length / pageSize)));
  expectWellFormedHistory(owner, seen);
}

// ---------------------------------------------------------------------------------------------------
// Commands. They hold only what fast-check generated (shrinking reuses them across runs); everything
// that depends on the run (owner ids, nonces, what was applied) is looked up in the model when they run.

type NonceChoice = { kind: "fresh" } | { kind: "applied"; pick: number } | { kind: "refused"; pick: number };

/** The applied request a command picked (its check() makes sure there is one). */
function pickApplied(m: Readonly<Model>, pick: number): Model["applied"][number] {
  const original = m.applied[pick % m.applied.length];
  if (!original) throw new Error("check() guarantees an applied entry");
  return original;
}

function resolveNonce(m: Model, choice: NonceChoice): string {
  if (choice.kind === "applied") return pickApplied(m, choice.pick).entry.nonce;
  if (choice.kind === "refused") return m.refused[choice.pick % m.refused.length]?.nonce ?? "";
  m.nonceCount += 1;
  return `${m.noncePrefix}-${m.nonceCount}`;
}

const withAmount = (input: Omit<PostInput, "amount">, amount: number | undefined): PostInput =>
  amount === undefined ? input : { ...input, amount };

const showAmount = (amount: number | undefined) => (amount === undefined ? "-" : String(amount));

/** One post: a credit, a debit, a limited operation, a bad amount or an unknown operation. */
class PostCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly label: string,
    readonly app: AppIndex,
    /** Index into the run's owner pool, modulo its size. */
    readonly owner: number,
    readonly operation: string,
    readonly amount: number | undefined,
    readonly nonce: NonceChoice,
  ) {}
  check(m: Readonly<Model>): boolean {
    if (this.nonce.kind === "applied") return m.applied.length > 0;
    if (this.nonce.kind === "refused") return m.refused.length > 0;
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const input = withAmount(
      { owner_id: ownerAt(m, this.owner), operation: this.operation, nonce: resolveNonce(m, this.nonce) },
      this.amount,
    );
    await postAndCheck(m, r, this.app, input);
  }
  toString(): string {
    const nonce = this.nonce.kind === "fresh" ? "fresh" : `${this.nonce.kind}#${this.nonce.pick}`;
    return `${this.label}(${APP_NAMES[this.app]}, owner#${this.owner}, ${JSON.stringify(this.operation)}, amount=${showAmount(this.amount)}, nonce=${nonce})`;
  }
}

/** The same request again, with the nonce of an applied one: through the same app a replay, through the other a new write. */
class ReplayCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly pick: number,
    readonly otherApp: boolean,
    /** For fixed operations: state the magnitude, or leave it out (the same request either way). */
    readonly statesAmount: boolean,
  ) {}
  check(m: Readonly<Model>): boolean {
    return m.applied.length > 0;
  }
  async run(m: Model, r: Real): Promise<void> {
    const original = pickApplied(m, this.pick);
    const { entry } = original;
    const spec = APP_SPECS[original.app].get(entry.operation);
    const magnitude = Math.abs(entry.amount);
    const amount = spec?.kind === "variable" || this.statesAmount ? magnitude : undefined;
    const app: AppIndex = this.otherApp ? (original.app === 0 ? 1 : 0) : original.app;
    const expires_at = m.requestedExpiry.get(nonceKey(original.app, entry.nonce));
    await postAndCheck(
      m,
      r,
      app,
      withAmount(
        {
          owner_id: entry.owner_id,
          operation: entry.operation,
          nonce: entry.nonce,
          ...(expires_at ? { expires_at } : {}),
        },
        amount,
      ),
    );
  }
  toString(): string {
    return `replay(applied#${this.pick}, ${this.otherApp ? "other app" : "same app"}, ${this.statesAmount ? "with" : "without"} amount)`;
  }
}

type Change =
  | { kind: "owner"; shift: 1 | 2 }
  | { kind: "operation"; operation: string }
  | { kind: "amount"; amount: number }
  /** The same request with an expires_at moved (or added): another request. */
  | { kind: "expiry"; shiftMs: number };

/** An applied request's nonce, through the same app, with one thing changed: NONCE_CONFLICT, or what precedes it. */
class NonceReuseCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly pick: number,
    readonly change: Change,
  ) {}
  check(m: Readonly<Model>): boolean {
    return m.applied.length > 0;
  }
  async run(m: Model, r: Real): Promise<void> {
    const original = pickApplied(m, this.pick);
    const { entry } = original;
    let owner = entry.owner_id;
    let operation = entry.operation;
    let amount: number | undefined = Math.abs(entry.amount);
    if (this.change.kind === "owner") {
      owner = ownerAt(m, m.owners.indexOf(owner) + this.change.shift);
    } else if (this.change.kind === "operation") {
      operation = this.change.operation;
      amount = APP_SPECS[original.app].get(operation)?.kind === "variable" ? amount : undefined;
    } else if (this.change.kind === "amount") {
      amount = this.change.amount;
    }
    const requested = m.requestedExpiry.get(nonceKey(original.app, entry.nonce));
    const expires_at =
      this.change.kind === "expiry"
        ? iso((requested === undefined ? m.nowMs + HOUR_MS : Date.parse(requested)) + this.change.shiftMs)
        : requested;
    await postAndCheck(
      m,
      r,
      original.app,
      withAmount(
        { owner_id: owner, operation, nonce: entry.nonce, ...(expires_at ? { expires_at } : {}) },
        amount,
      ),
    );
  }
  toString(): string {
    const c = this.change;
    const what =
      c.kind === "owner"
        ? `owner+${c.shift}`
        : c.kind === "operation"
          ? `operation=${c.operation}`
          : c.kind === "amount"
            ? `amount=${c.amount}`
            : `expiry+${c.shiftMs}ms`;
    return `reuseNonce(applied#${this.pick}, ${what})`;
  }
}

/** A credit that expires: CREDIT_ADD with an expires_at this far from now, written in UTC or with an offset. */
class ExpiringCreditCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly app: AppIndex,
    readonly owner: number,
    readonly offsetMs: number,
    readonly withOffset: boolean,
    readonly nonce: NonceChoice,
  ) {}
  check(m: Readonly<Model>): boolean {
    return new PostCommand("", this.app, this.owner, "", undefined, this.nonce).check(m);
  }
  async run(m: Model, r: Real): Promise<void> {
    const at = m.nowMs + this.offsetMs;
    // The same instant as +02:00 local time: the ledger must read both the same.
    const expires_at = this.withOffset
      ? new Date(at + 2 * HOUR_MS).toISOString().replace("Z", "+02:00")
      : iso(at);
    const input: PostInput = {
      owner_id: ownerAt(m, this.owner),
      operation: "CREDIT_ADD",
      nonce: resolveNonce(m, this.nonce),
      expires_at,
    };
    await postAndCheck(m, r, this.app, input);
  }
  toString(): string {
    const nonce = this.nonce.kind === "fresh" ? "fresh" : `${this.nonce.kind}#${this.nonce.pick}`;
    return `expiringCredit(${APP_NAMES[this.app]}, owner#${this.owner}, in ${this.offsetMs} ms${this.withOffset ? " +02:00" : ""}, nonce=${nonce})`;
  }
}

/** The expiry sweeper of one app: expires every owner's due grants, whichever app granted them. */
class SweepCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly app: AppIndex) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    let expected = 0;
    for (const owner of m.owners) {
      if (!grantsOf(m, owner).some((g) => g.expiresAtMs <= m.nowMs)) continue;
      const { entries, grants } = expiriesOf(m, owner);
      expected += entries.length;
      const history = m.history.get(owner) ?? [];
      history.push(...entries.map((e) => ({ ...e, id: expect.any(Number) as number })));
      m.history.set(owner, history);
      m.grants.set(owner, grants);
    }
    const report = await r.services[this.app].sweepExpired();
    // The runs share one database, so the sweep may also expire what earlier runs left due (their
    // worlds are finished); this run's owners are checked entry by entry against the model.
    expect(report.grants).toBeGreaterThanOrEqual(expected);
  }
  toString(): string {
    return `sweep(${APP_NAMES[this.app]})`;
  }
}

/** Moves the clock to exactly the soonest expiry still ahead: the instant a grant stops counting. */
class AdvanceToExpiryCommand implements fc.AsyncCommand<Model, Real> {
  check(m: Readonly<Model>): boolean {
    return m.owners.some((o) => grantsOf(m, o).some((g) => g.expiresAtMs > m.nowMs));
  }
  run(m: Model, r: Real): Promise<void> {
    const next = Math.min(
      ...m.owners.flatMap((o) => grantsOf(m, o).map((g) => g.expiresAtMs)).filter((t) => t > m.nowMs),
    );
    m.nowMs = next;
    r.clock.nowMs = next;
    return Promise.resolve();
  }
  toString(): string {
    return "advanceToNextExpiry()";
  }
}

class AdvanceClockCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly ms: number) {}
  check(): boolean {
    return true;
  }
  run(m: Model, r: Real): Promise<void> {
    m.nowMs += this.ms;
    r.clock.nowMs += this.ms;
    return Promise.resolve();
  }
  toString(): string {
    return this.ms === DAY_MS ? "advanceClock(1 day)" : `advanceClock(${(this.ms / HOUR_MS).toFixed(2)} h)`;
  }
}

class ReadBalanceCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly app: AppIndex,
    readonly owner: number,
  ) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const owner = ownerAt(m, this.owner);
    expect(await r.services[this.app].balance(owner)).toEqual(expectedRead(m, owner));
  }
  toString(): string {
    return `balance(${APP_NAMES[this.app]}, owner#${this.owner})`;
  }
}

class ListEntriesCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly app: AppIndex,
    readonly owner: number,
    readonly pageSize: number,
  ) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    await walkHistory(m, r.services[this.app], ownerAt(m, this.owner), this.pageSize);
  }
  toString(): string {
    return `entries(${APP_NAMES[this.app]}, owner#${this.owner}, pages of ${this.pageSize})`;
  }
}

// ---------------------------------------------------------------------------------------------------
// Arbitraries. Weights keep most writes valid, so balances grow and debits, limits and replays bite.

const appArb = fc.constantFrom<AppIndex>(0, 1);
const ownerArb = fc.nat({ max: 2 });
const pickArb = fc.nat({ max: 1_000 });
const nonceArb: fc.Arbitrary<NonceChoice> = fc.oneof(
  { weight: 12, arbitrary: fc.constant({ kind: "fresh" as const }) },
  { weight: 1, arbitrary: pickArb.map((pick) => ({ kind: "refused" as const, pick })) },
  { weight: 1, arbitrary: pickArb.map((pick) => ({ kind: "applied" as const, pick })) },
);
const opArb = (operation: string, amount: fc.Arbitrary<number | undefined>) =>
  fc.tuple(fc.constant(operation), amount);
const noAmountOr = (magnitude: number) =>
  fc.oneof(
    { weight: 3, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.constant(magnitude) },
  );
/** Amounts that break some rule: schema bounds (VALIDATION_FAILED) or an operation's own. */
const badAmountArb = fc.constantFrom<number | undefined>(
  undefined,
  0,
  1,
  2,
  4,
  9,
  11,
  51,
  1_000_000_000,
  1_000_000_001,
  -1,
  2.5,
);
const OPERATIONS = [...new Set([...APP_SPECS[0].keys(), ...APP_SPECS[1].keys()])];

const postArb = (
  label: string,
  request: fc.Arbitrary<[string, number | undefined]>,
  nonce = nonceArb,
  app: fc.Arbitrary<AppIndex> = appArb,
) =>
  fc
    .tuple(app, ownerArb, request, nonce)
    .map(([app, owner, [operation, amount], n]) => new PostCommand(label, app, owner, operation, amount, n));

const creditArb = postArb(
  "credit",
  fc.oneof(
    { weight: 3, arbitrary: opArb("CREDIT_ADD", noAmountOr(10)) },
    {
      weight: 3,
      arbitrary: opArb(
        "TEST_CREDIT",
        fc.oneof(
          { weight: 6, arbitrary: fc.integer({ min: 1, max: 30 }) },
          { weight: 1, arbitrary: fc.constantFrom(1, 1_000_000_000) },
        ),
      ),
    },
    { weight: 1, arbitrary: opArb("TEST_ZERO", noAmountOr(0)) },
  ),
);
const debitArb = postArb(
  "debit",
  fc.oneof(
    { weight: 3, arbitrary: opArb("CREDIT_SPEND", noAmountOr(1)) },
    { weight: 3, arbitrary: opArb("TEST_DEBIT", fc.integer({ min: 2, max: 25 })) },
  ),
);
const limitedArb = postArb(
  "limited",
  fc.oneof(
    { weight: 2, arbitrary: opArb("SIGNUP_CREDIT", noAmountOr(3)) },
    { weight: 3, arbitrary: opArb("DAILY_REWARD", noAmountOr(1)) },
    { weight: 1, arbitrary: opArb("TEST_WELCOME", noAmountOr(7)) },
  ),
);
/**
 * Each app's own limited operation, through that app (through the other one it is unknown: the
 * bad-amount and nonce-reuse commands send every operation to either app). The fee's amount is drawn
 * without bias toward small values, so that a second fee on the same day often exceeds the balance.
 */
const appOwnArb = fc.oneof(
  postArb(
    "limitedDebit",
    opArb("MODEL_DAILY_FEE", fc.noBias(fc.integer({ min: 1, max: 40 }))),
    nonceArb,
    fc.constant<AppIndex>(0),
  ),
  postArb(
    "limitedCredit",
    opArb("MODEL_ONCE_BONUS", fc.integer({ min: 1, max: 5 })),
    nonceArb,
    fc.constant<AppIndex>(1),
  ),
);
const promoArb = postArb("promo", opArb("MODEL_PROMO", noAmountOr(4)), nonceArb, fc.constant<AppIndex>(1));
const expiringCreditArb = fc
  .tuple(
    appArb,
    ownerArb,
    fc.oneof(
      { weight: 6, arbitrary: fc.integer({ min: 1, max: 3 * DAY_MS }) },
      { weight: 1, arbitrary: fc.constantFrom(0, -1, -HOUR_MS, 11 * 366 * DAY_MS, 1) },
    ),
    fc.boolean(),
    nonceArb,
  )
  .map(
    ([app, owner, offset, withOffset, nonce]) =>
      new ExpiringCreditCommand(app, owner, offset, withOffset, nonce),
  );
const sweepArb = appArb.map((app) => new SweepCommand(app));
const toExpiryArb = fc.constant(null).map(() => new AdvanceToExpiryCommand());
const badAmountCommandArb = postArb("badAmount", fc.tuple(fc.constantFrom(...OPERATIONS), badAmountArb));
const unknownArb = postArb(
  "unknownOperation",
  fc.tuple(
    fc.constantFrom("NOPE", "credit_add", "toString", "__proto__", "CREDIT ADD", "", "X".repeat(65)),
    fc.constantFrom<number | undefined>(undefined, 10),
  ),
  // An unknown operation is refused before its nonce is looked at, used or not.
  fc.oneof(
    nonceArb,
    pickArb.map((pick) => ({ kind: "applied" as const, pick })),
  ),
);
const replayArb = fc
  .tuple(pickArb, fc.boolean(), fc.boolean())
  .map(([pick, other, states]) => new ReplayCommand(pick, other, states));
const reuseArb = fc
  .tuple(
    pickArb,
    fc.oneof(
      fc.constantFrom(1 as const, 2 as const).map((shift): Change => ({ kind: "owner", shift })),
      fc.constantFrom(...OPERATIONS).map((operation): Change => ({ kind: "operation", operation })),
      fc.constantFrom(1, 2, 3, 10, 11, 50).map((amount): Change => ({ kind: "amount", amount })),
      fc.constantFrom(1, 1000, -HOUR_MS).map((shiftMs): Change => ({ kind: "expiry", shiftMs })),
    ),
  )
  .map(([pick, change]) => new NonceReuseCommand(pick, change));
const clockArb = fc
  .oneof(
    fc.constant(DAY_MS),
    fc.integer({ min: 1, max: 23 }).map((h) => h * HOUR_MS),
    fc.integer({ min: 1, max: HOUR_MS }),
  )
  .map((ms) => new AdvanceClockCommand(ms));
const balanceArb = fc.tuple(appArb, ownerArb).map(([app, owner]) => new ReadBalanceCommand(app, owner));
const listArb = fc
  .tuple(appArb, ownerArb, fc.oneof(fc.integer({ min: 1, max: 4 }), fc.constant(PAGE_SIZE_LIMIT)))
  .map(([app, owner, size]) => new ListEntriesCommand(app, owner, size));

const commandArbs: fc.Arbitrary<fc.AsyncCommand<Model, Real>>[] = [
  creditArb,
  creditArb,
  debitArb,
  debitArb,
  limitedArb,
  limitedArb,
  appOwnArb,
  appOwnArb,
  expiringCreditArb,
  expiringCreditArb,
  expiringCreditArb,
  promoArb,
  sweepArb,
  toExpiryArb,
  clockArb,
  clockArb,
  replayArb,
  reuseArb,
  badAmountCommandArb,
  unknownArb,
  balanceArb,
  listArb,
];

// ---------------------------------------------------------------------------------------------------

const tdb = useTestDatabase();

function newWorld(startMs: number, poolSize: number): { model: Model; real: Real } {
  const owners = Array.from({ length: poolSize }, () => freshOwner("model"));
  const clock = { nowMs: EPOCH_MS + startMs };
  const services = [0, 1].map(
    (i) =>
      new LedgerService({
        db: tdb().db,
        app: APP_NAMES[i as AppIndex],
        catalog: APP_CATALOGS[i as AppIndex],
        clock: () => new Date(clock.nowMs),
      }),
  ) as [LedgerService, LedgerService];
  const model: Model = {
    nowMs: clock.nowMs,
    owners,
    noncePrefix: freshNonce(),
    nonceCount: 0,
    history: new Map(),
    byNonce: new Map(),
    applied: [],
    refused: [],
    refusedKeys: new Set(),
    limitsUsed: new Set(),
    grants: new Map(),
    requestedExpiry: new Map(),
    lastId: 0,
  };
  return { model, real: { services, clock } };
}

/** After a run: every owner's balance, history and stored projection are exactly the model's. */
async function expectWorldIsModel(m: Model, r: Real): Promise<void> {
  for (const owner of m.owners) {
    expect(await r.services[1].balance(owner)).toEqual(expectedRead(m, owner));
    await walkHistory(m, r.services[0], owner, PAGE_SIZE_LIMIT);
  }
  // Refused writes leave no trace, not even an empty balance row; nothing lands outside the pool.
  const inPool = sql.join(
    m.owners.map((o) => sql`${o}`),
    sql`, `,
  );
  const rows = await queryRows<{ owner_id: string; balance: string; last_sequence: string }>(
    tdb().db,
    sql`select owner_id, balance::text as balance, last_sequence::text as last_sequence
        from ledger_owners where owner_id in (${inPool}) order by owner_id`,
  );
  const expected = m.owners
    .filter((o) => (m.history.get(o)?.length ?? 0) > 0)
    .sort()
    .map((o) => ({
      owner_id: o,
      balance: String(storedBalanceOf(m, o)),
      last_sequence: String(m.history.get(o)?.length),
    }));
  expect(rows).toEqual(expected);
  // Every open grant, with its remainder, is the model's (spent and expired ones have nothing left).
  const grants = await queryRows<{ owner_id: string; sequence: number; remaining: number }>(
    tdb().db,
    sql`select owner_id, sequence::int as sequence, remaining::int as remaining from ledger_grants
        where owner_id in (${inPool}) and remaining > 0 order by owner_id, sequence`,
  );
  expect(grants).toEqual(
    [...m.owners]
      .sort()
      .flatMap((o) =>
        [...grantsOf(m, o)]
          .sort((a, b) => a.sequence - b.sequence)
          .map((g) => ({ owner_id: o, sequence: g.sequence, remaining: g.remaining })),
      ),
  );
  const written = await queryRows<{ n: number }>(
    tdb().db,
    sql`select count(*)::int as n from ledger_entries where nonce like ${`${m.noncePrefix}-%`}`,
  );
  expect(written).toEqual([{ n: m.applied.length }]);
}

describe(`ledger service against its model [${testDriver()}]`, () => {
  it(
    `agrees with the model on every answer over ${NUM_RUNS} runs of up to ${MAX_COMMANDS} commands`,
    { timeout: Math.max(120_000, NUM_RUNS * 2_000) },
    async () => {
      const property = fc.asyncProperty(
        fc.integer({ min: 0, max: DAY_MS - 1 }),
        fc.integer({ min: 2, max: 3 }),
        fc.commands(commandArbs, { maxCommands: MAX_COMMANDS, size: "max", replayPath: REPLAY_PATH }),
        async (startMs, poolSize, commands) => {
          const { model, real } = newWorld(startMs, poolSize);
          await fc.asyncModelRun(() => ({ model, real }), commands);
          await expectWorldIsModel(model, real);
        },
      );
      await fc.assert(property, { numRuns: NUM_RUNS, seed: SEED, path: PATH });
    },
  );
});
