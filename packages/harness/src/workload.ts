// The chaos run's traffic: a seeded mix over a set of owners, one of them hot, weighted towards debits
// so that balances hover near zero and refusals for lack of credits are common.
import type { PostBody } from "./client.js";
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
 * Refusals the mix meets by design; anything else (NONCE_CONFLICT above all) is a violation, but for
 * one more the model accepts under its own condition (see lateExpiry in model.ts).
 */
export const EXPECTED_REFUSALS: ReadonlySet<string> = new Set(["INSUFFICIENT_BALANCE", "LIMIT_REACHED"]);

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

export class Workload {
  readonly #opts: WorkloadOptions;
  #sequence = 0;

  constructor(opts: WorkloadOptions) {
    this.#opts = opts;
  }

  /**
   * The next operation: an app, and a request body with a nonce never used before. Call it when the
   * request is about to be sent: an expires_at is counted from the clock at that moment.
   */
  next(): { app: AppName; body: PostBody } {
    const { owners, hotShare, random, noncePrefix } = this.#opts;
    const app: AppName = random() < 0.5 ? "app1" : "app2";
    const ownerIndex = random() < hotShare ? 0 : Math.floor(random() * owners.length);
    const owner = owners[ownerIndex] ?? owners[0];
    if (owner === undefined) throw new Error("the workload needs at least one owner");
    const choice = pick(MIX[app], random);
    this.#sequence += 1;
    const body: PostBody = {
      owner_id: owner,
      operation: choice.operation,
      nonce: `${noncePrefix}-${this.#sequence}`,
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

function pick(choices: readonly Choice[], random: () => number): Choice {
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
