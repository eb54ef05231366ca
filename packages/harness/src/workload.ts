// The chaos run's traffic: a seeded mix over a set of owners, one of them hot, weighted towards debits
// so that balances hover near zero and refusals for lack of credits are common. Besides posts it sends
// every other kind of write: holds (most expiring within seconds, so captures race their expiry),
// captures in full and in part, releases, reversals of acknowledged entries (in full and in part, so
// concurrent ones meet what is left), transfers between owners, suspensions and reinstatements, and
// batches of posts (atomic or not). What it captures, releases, reverses and reinstates it learns from
// the answers it got (observe).
import type {
  BatchRequest,
  HoldRequest,
  PostBody,
  ReversalRequest,
  SettleRequest,
  StatusRequest,
  TransferRequest,
} from "./client.js";
import { batchItems, type OpRecord } from "./model.js";
import type { AppName } from "./paths.js";

/** A small seeded PRNG (mulberry32): the same seed gives the same sequence of choices. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

interface Choice {
  operation: string;
  weight: number;
  /** Variable operations: [min, max] of the amount sent. */
  amount?: readonly [number, number];
  /** Sends `expires_at` this many milliseconds ([min, max]) after the moment the request is made. */
  expiresInMs?: readonly [number, number];
}

/**
 * Credits that expire within seconds: long enough that most are spent first (debits burn the
 * soonest expiry first), short enough that some expire with a remainder while the run is on, so
 * both ways of writing an EXPIRY entry are exercised: by the owner's next write, and by the
 * sweepers (every second in the chaos run).
 */
const EXPIRES_IN_MS: readonly [number, number] = [1_000, 5_000];

/**
 * Per app: expected credits per request are below expected debits (app1 ~1.4 vs ~1.6, app2 ~2.1 vs
 * ~2.6; the two apps share the owners), so owners keep running out and debits land on balances
 * made of grants of several expiries, where the burn order decides what is left to expire. Half of
 * the CREDIT_ADDs expire within seconds; PROMO_CREDIT expires 30 days after it is granted, so it
 * never expires during a run but is spent after the short grants and before credits without expiry.
 * The once and daily operations are mostly refused after the first: LIMIT_REACHED under
 * concurrency, across both apps.
 */
const MIX: Readonly<Record<AppName, readonly Choice[]>> = {
  app1: [
    { operation: "CREDIT_ADD", weight: 6 },
    { operation: "CREDIT_ADD", weight: 6, expiresInMs: EXPIRES_IN_MS },
    { operation: "CREDIT_SPEND", weight: 40 },
    { operation: "CONTENT_CREATION", weight: 20 },
    { operation: "CONTENT_ACCESS", weight: 6 },
    { operation: "SIGNUP_CREDIT", weight: 4 },
    { operation: "DAILY_REWARD", weight: 4 },
  ],
  app2: [
    { operation: "CREDIT_ADD", weight: 6 },
    { operation: "CREDIT_ADD", weight: 6, expiresInMs: EXPIRES_IN_MS },
    { operation: "PROMO_CREDIT", weight: 2 },
    { operation: "CREDIT_SPEND", weight: 30 },
    { operation: "TOKEN_USAGE", weight: 24, amount: [1, 15] },
    { operation: "USAGE_REFUND", weight: 4, amount: [1, 8] },
    { operation: "REFERRAL_BONUS", weight: 4 },
    { operation: "SIGNUP_CREDIT", weight: 4 },
    { operation: "DAILY_REWARD", weight: 4 },
  ],
};

/** The longest a credit of the mix is given before it expires, counted from when it is sent. */
export const EXPIRES_IN_MS_MAX = EXPIRES_IN_MS[1];

/**
 * Refusals the mix meets by design: lack of credits, used limits, suspended owners, holds that ended
 * (expired, or captured or released by another loop) before their capture or release, reversals of
 * what another loop reversed meanwhile, status changes that another loop made first. Anything else
 * (NONCE_CONFLICT above all) is a violation, but for one more the model accepts under its own
 * condition (see lateExpiry in model.ts).
 */
export const EXPECTED_REFUSALS: ReadonlySet<string> = new Set([
  "INSUFFICIENT_BALANCE",
  "LIMIT_REACHED",
  "OWNER_SUSPENDED",
  "HOLD_NOT_ACTIVE",
  "ALREADY_REVERSED",
  "REVERSAL_EXCEEDS_ORIGINAL",
  "OWNER_ALREADY_SUSPENDED",
  "OWNER_NOT_SUSPENDED",
]);

/** The debit operations each app may hold (no limit), with the amounts sent for variable ones. */
const HOLDABLE: Readonly<Record<AppName, readonly Choice[]>> = {
  app1: [
    { operation: "CREDIT_SPEND", weight: 1 },
    { operation: "CONTENT_CREATION", weight: 1 },
  ],
  app2: [
    { operation: "CREDIT_SPEND", weight: 1 },
    { operation: "TOKEN_USAGE", weight: 2, amount: [1, 15] },
  ],
};

/** Holds: most expire within seconds (captures race their expiry), the others within half a minute. */
const HOLD_EXPIRES_IN_S: readonly (readonly [number, number])[] = [
  [1, 3],
  [10, 20],
];
/** The longest a hold of the mix is given before it expires. */
export const HOLD_EXPIRES_IN_S_MAX = 20;
/** Suspended owners at once, at most: the others keep the load going. */
const SUSPENDED_MAX = 2;

/** How often each kind of write is drawn (a kind with nothing to act on yet falls back to a post). */
const KINDS: readonly { kind: Request["kind"]; weight: number }[] = [
  { kind: "post", weight: 60 },
  { kind: "hold", weight: 9 },
  { kind: "capture", weight: 6 },
  { kind: "release", weight: 3 },
  { kind: "reversal", weight: 6 },
  { kind: "transfer", weight: 6 },
  { kind: "batch", weight: 5 },
  { kind: "suspension", weight: 1 },
  { kind: "reinstatement", weight: 2 },
];

/** One write of any kind: where it goes and what it says. */
export type Request =
  | { kind: "post"; app: AppName; body: PostBody }
  | { kind: "hold"; app: AppName; body: HoldRequest }
  | { kind: "capture" | "release"; app: AppName; holdId: string; body: SettleRequest }
  | { kind: "reversal"; app: AppName; entryId: number; body: ReversalRequest }
  | { kind: "transfer"; app: AppName; body: TransferRequest }
  | { kind: "suspension" | "reinstatement"; app: AppName; ownerId: string; body: StatusRequest }
  | { kind: "batch"; app: AppName; body: BatchRequest };

/** The route of a write. */
export function pathOf(r: Request): string {
  switch (r.kind) {
    case "post":
      return "/ledger";
    case "hold":
      return "/ledger/holds";
    case "capture":
    case "release":
      return `/ledger/holds/${encodeURIComponent(r.holdId)}/${r.kind}`;
    case "reversal":
      return `/ledger/entries/${r.entryId}/reversal`;
    case "transfer":
      return "/ledger/transfers";
    case "suspension":
    case "reinstatement":
      return `/ledger/${encodeURIComponent(r.ownerId)}/${r.kind}`;
    case "batch":
      return "/ledger/batch";
  }
}

export interface WorkloadOptions {
  owners: readonly string[];
  /** Share of requests that go to owners[0], the hot owner. */
  hotShare: number;
  random: () => number;
  /** Prefix of every nonce: unique per run. */
  noncePrefix: string;
  /** The wall clock (epoch ms) that expires_at is counted from; default Date.now. */
  clock?: () => number;
}

/** Entries kept to reverse, at most (the newest). */
const REVERSIBLE_KEPT_MAX = 300;

export class Workload {
  readonly #opts: WorkloadOptions;
  #sequence = 0;
  /** Holds acknowledged and not yet known to have ended. */
  readonly #holds: { id: string; app: AppName; amount: number; operation: string }[] = [];
  /** Acknowledged entries that moved credits and may have something left to reverse. */
  readonly #reversible: { id: number; app: AppName; amount: number }[] = [];
  /** Owners this client suspended and has not reinstated. */
  readonly #suspended = new Set<string>();

  constructor(opts: WorkloadOptions) {
    this.#opts = opts;
  }

  #nonce(): string {
    this.#sequence += 1;
    return `${this.#opts.noncePrefix}-${this.#sequence}`;
  }

  #owner(): string {
    const { owners, hotShare, random } = this.#opts;
    const ownerIndex = random() < hotShare ? 0 : Math.floor(random() * owners.length);
    const owner = owners[ownerIndex] ?? owners[0];
    if (owner === undefined) throw new Error("the workload needs at least one owner");
    return owner;
  }

  #amount(choice: Choice): number | undefined {
    if (!choice.amount) return undefined;
    const [min, max] = choice.amount;
    return min + Math.floor(this.#opts.random() * (max - min + 1));
  }

  /**
   * The next write, of any kind, with a nonce never used before. Call it when the request is about to
   * be sent: an expires_at is counted from the clock at that moment.
   */
  next(): Request {
    const { random } = this.#opts;
    const app: AppName = random() < 0.5 ? "app1" : "app2";
    const kind = pick(KINDS, random).kind;
    const at = <T>(list: readonly T[]): T | undefined => list[Math.floor(random() * list.length)];
    switch (kind) {
      case "hold": {
        const choice = pick(HOLDABLE[app], random);
        const [min, max] = at(HOLD_EXPIRES_IN_S) ?? [1, 3];
        const amount = this.#amount(choice);
        return {
          kind,
          app,
          body: {
            owner_id: this.#owner(),
            operation: choice.operation,
            nonce: this.#nonce(),
            ...(amount === undefined ? {} : { amount }),
            expires_in_s: min + Math.floor(random() * (max - min + 1)),
          },
        };
      }
      case "capture":
      case "release": {
        const h = at(this.#holds);
        if (!h) break;
        // A variable operation's hold is captured in part now and then; a fixed one's only in full.
        const part = kind === "capture" && h.operation === "TOKEN_USAGE" && h.amount > 1 && random() < 0.4;
        return {
          kind,
          app: h.app,
          holdId: h.id,
          body: {
            nonce: this.#nonce(),
            ...(part ? { amount: 1 + Math.floor(random() * (h.amount - 1)) } : {}),
          },
        };
      }
      case "reversal": {
        const e = at(this.#reversible);
        if (!e) break;
        const part = Math.abs(e.amount) > 1 && random() < 0.4;
        return {
          kind,
          app: e.app,
          entryId: e.id,
          body: {
            nonce: this.#nonce(),
            ...(part ? { amount: 1 + Math.floor(random() * (Math.abs(e.amount) - 1)) } : {}),
            ...(random() < 0.5 ? { reason: "chaos refund" } : {}),
          },
        };
      }
      case "transfer": {
        const from = this.#owner();
        const others = this.#opts.owners.filter((o) => o !== from);
        const to = at(others);
        if (to === undefined) break;
        return {
          kind,
          app,
          body: {
            from_owner_id: from,
            to_owner_id: to,
            amount: 1 + Math.floor(random() * 6),
            nonce: this.#nonce(),
          },
        };
      }
      case "suspension": {
        // Never the hot owner: it carries a quarter of the load.
        const candidates = this.#opts.owners.slice(1).filter((o) => !this.#suspended.has(o));
        const owner = at(candidates);
        if (owner === undefined || this.#suspended.size >= SUSPENDED_MAX) break;
        return { kind, app, ownerId: owner, body: { nonce: this.#nonce(), reason: "chaos review" } };
      }
      case "reinstatement": {
        const owner = at([...this.#suspended]);
        if (owner === undefined) break;
        return { kind, app, ownerId: owner, body: { nonce: this.#nonce() } };
      }
      case "batch": {
        const size = 2 + Math.floor(random() * 7);
        const operations = Array.from({ length: size }, () => this.nextPost(app).body);
        return { kind, app, body: { operations, ...(random() < 0.5 ? { atomic: true } : {}) } };
      }
      case "post":
        break;
    }
    return { kind: "post", ...this.nextPost(app) };
  }

  /** Learns from a definite answer what there is to capture, release, reverse or reinstate. */
  observe(op: OpRecord): void {
    const { outcome } = op;
    const removeHold = (id: string) => {
      const i = this.#holds.findIndex((h) => h.id === id);
      if (i >= 0) this.#holds.splice(i, 1);
    };
    const keep = (entry: { id: number; amount: number }) => {
      if (entry.amount === 0) return;
      this.#reversible.push({ id: entry.id, app: op.app, amount: entry.amount });
      if (this.#reversible.length > REVERSIBLE_KEPT_MAX) this.#reversible.shift();
    };
    switch (op.kind) {
      case undefined:
      case "post":
        if (op.outcome.kind === "acked") keep(op.outcome.result.entry);
        return;
      case "batch":
        for (const item of batchItems(op)) this.observe(item);
        return;
      case "hold":
        if (op.outcome.kind === "acked") {
          const { hold } = op.outcome.result;
          this.#holds.push({ id: hold.id, app: op.app, amount: hold.amount, operation: hold.operation });
        }
        return;
      case "capture":
        if (op.outcome.kind === "acked") keep(op.outcome.result.entry);
        if (outcome.kind !== "unresolved") removeHold(op.holdId);
        return;
      case "release":
        if (outcome.kind !== "unresolved") removeHold(op.holdId);
        return;
      case "reversal": {
        const done =
          (op.outcome.kind === "acked" &&
            op.outcome.result.original.reversed_amount >= Math.abs(op.outcome.result.original.amount)) ||
          (outcome.kind === "refused" && outcome.code === "ALREADY_REVERSED");
        if (done) {
          const i = this.#reversible.findIndex((e) => e.id === op.entryId);
          if (i >= 0) this.#reversible.splice(i, 1);
        }
        return;
      }
      case "suspension":
        if (
          outcome.kind === "acked" ||
          (outcome.kind === "refused" && outcome.code === "OWNER_ALREADY_SUSPENDED")
        ) {
          this.#suspended.add(op.ownerId);
        }
        return;
      case "reinstatement":
        if (
          outcome.kind === "acked" ||
          (outcome.kind === "refused" && outcome.code === "OWNER_NOT_SUSPENDED")
        ) {
          this.#suspended.delete(op.ownerId);
        }
        return;
      case "transfer":
        return;
    }
  }

  /**
   * The next post: an app (given, or drawn), and a request body with a nonce never used before. Call
   * it when the request is about to be sent: an expires_at is counted from the clock at that moment.
   */
  nextPost(appGiven?: AppName): { app: AppName; body: PostBody } {
    const { random } = this.#opts;
    const app: AppName = appGiven ?? (random() < 0.5 ? "app1" : "app2");
    const owner = this.#owner();
    const choice = pick(MIX[app], random);
    const body: PostBody = {
      owner_id: owner,
      operation: choice.operation,
      nonce: this.#nonce(),
    };
    if (choice.amount) {
      const [min, max] = choice.amount;
      body.amount = min + Math.floor(random() * (max - min + 1));
    }
    if (choice.expiresInMs) {
      const [min, max] = choice.expiresInMs;
      const inMs = min + Math.floor(random() * (max - min + 1));
      body.expires_at = new Date((this.#opts.clock ?? Date.now)() + inMs).toISOString();
    }
    return { app, body };
  }
}

function pick<C extends { weight: number }>(choices: readonly C[], random: () => number): C {
  const total = choices.reduce((sum, c) => sum + c.weight, 0);
  let r = random() * total;
  for (const choice of choices) {
    r -= choice.weight;
    if (r < 0) return choice;
  }
  const last = choices.at(-1);
  if (!last) throw new Error("an empty mix");
  return last;
}
