// Reversing an entry: a refund or a correction. A REVERSAL entry of the opposite sign, linked to the
// entry it reverses, for all of it or part of it; partial reversals add up to at most the original.
//
// What the original was never changes (entries are append-only), so it is read before the command,
// without a lock: the entry and what it took from each grant. What reversals of it already gave back
// does change, and only under its owner's lock, so the command loads that with the lock (a FactLoader)
// and, once decided, leaves the new totals for the next reversal of the same entry in the batch.
//
// Reversing a debit gives the credits back where they came from: to the grants it spent, with their
// expiry (past it, they expire again at once), and the rest as credits without expiry. A partial
// reversal undoes the debit's draws from the last one back: the debit took its grants in burn order and
// credits without expiry last, so a reversal gives back the credits without expiry first, then the
// grants from the latest expiry to the soonest. Successive partial reversals thus add up to exactly the
// full reversal, and a refund in part gives back the longest-lived credits first.
//
// Reversing a credit takes the credits back: from that credit's grant (its unspent, unheld remainder)
// if it expires, else from the owner's available credits without expiry. Either way nothing else of the
// owner's is taken, so a reversal never turns expiring credits into lasting ones or the reverse.
//
// A reversal gives no once or daily limit back: the original keeps its limit period. It applies to a
// suspended owner too (what undoes is always allowed).
import {
  AlreadyReversedError,
  EntryNotFoundError,
  NonceConflictError,
  NotReversibleError,
  ReversalExceedsOriginalError,
} from "../../domain/errors.js";
import { byBurnOrder, drawKey, grantKey, type Draw } from "../../domain/grants.js";
import { LEDGER_OPERATIONS, whyNotReversible } from "../../domain/ledger-operations.js";
import type { LedgerEntry } from "../../domain/types.js";
import type { Command, ErrorList, FactLoader } from "../../engine/command.js";
import type { StoredGrant } from "../../engine/state.js";
import type { LedgerService } from "../../service/ledger-service.js";
import {
  availableAfter,
  entryColumns,
  parseJson,
  toDraws,
  toEntryRow,
  toOpenGrant,
  toLedgerEntry,
  UTC_MS,
  type EntryRow,
  type RawEntry,
  type RawGrant,
  type RecordedEntry,
} from "../../store/reads.js";
import type { Rows } from "../../store/sql-client.js";

/**
 * What reversing an entry can refuse with, in order of precedence. The first three need no lock (what
 * an entry is never changes); the rest are decided under the owner's lock.
 */
export const REVERSE_ENTRY_ERRORS: ErrorList = [
  "VALIDATION_FAILED",
  "ENTRY_NOT_FOUND", // no such entry, or another app's
  "NOT_REVERSIBLE", // zero amount, or an EXPIRY, HOLD*, REVERSAL, TRANSFER_*, SUSPENSION, REINSTATEMENT
  "NONCE_CONFLICT",
  "ALREADY_REVERSED", // nothing is left to reverse
  "REVERSAL_EXCEEDS_ORIGINAL", // more than is left
  "INSUFFICIENT_BALANCE", // a credit's reversal: its grant's remainder, or the credits without expiry, are short
  "BALANCE_LIMIT_EXCEEDED", // a debit's reversal would pass 2^53-1
];

export interface ReversalInput {
  nonce: string;
  /** 1..what is left; without it, what is left. */
  amount?: number | undefined;
  reason?: string | undefined;
}

export interface ReversalResult {
  entry: LedgerEntry;
  /** The owner's balance and available credits after the reversal (and what expired at once with it). */
  balance: number;
  available: number;
  original: { id: number; amount: number; reversed_amount: number };
  replayed: boolean;
}

/** The entry to reverse, as written, with what it took from each grant (a debit's draws). */
export interface OriginalEntry {
  row: EntryRow;
  draws: Draw[];
}

// The entry and its allocations: one statement, served by the primary key and the allocations' key.
const FIND_ORIGINAL = `select ${entryColumns("e.")},
    coalesce((select json_agg(json_build_array(a.grant_sequence::text, a.grant_part, a.amount::text))
      from ledger_allocations a where a.owner_id = e.owner_id and a.sequence = e.sequence), '[]') as draws
  from ledger_entries e where e.id = $1::bigint and e.app = $2`;

/** The app's entry with this id, or undefined (no such entry, or another app's). */
export async function findOriginal(
  service: LedgerService,
  entryId: number,
): Promise<OriginalEntry | undefined> {
  const [rows = []] = await service.query((db) =>
    db.run([{ text: FIND_ORIGINAL, params: [entryId, service.app] }]),
  );
  const raw = rows[0] as (RawEntry & { draws: unknown }) | undefined;
  if (!raw) return undefined;
  return { row: toEntryRow(raw), draws: toDraws(raw.draws) };
}

/** What reversals of an entry have given back so far, and the grants it spent as they stand now. */
export interface ReversedSoFar {
  /** The magnitude reversed so far. */
  reversed: number;
  /** A debit's: what its reversals gave back to each grant, by grant key. */
  restored: ReadonlyMap<string, number>;
  /** A debit's: the stored rows of the grants it spent (closed ones included: remaining 0). */
  grants: readonly StoredGrant[];
}

// Per entry id: the reversed total (reversals of one entry all have the sign opposite to it), what its
// reversals gave back to each grant (their negative allocations), and the grants the entry spent. Read
// under the owner's lock, which every reversal of the entry takes.
const REVERSED_SO_FAR = `select k.id::text as id,
    (select coalesce(abs(sum(r.amount)), 0)::text from ledger_entries r where r.reverses = k.id) as reversed,
    (select coalesce(json_agg(json_build_array(x.grant_sequence::text, x.grant_part, x.restored::text)), '[]')
      from (select a.grant_sequence, a.grant_part, -sum(a.amount) as restored
            from ledger_entries r join ledger_allocations a on a.owner_id = r.owner_id and a.sequence = r.sequence
            where r.reverses = k.id and a.amount < 0
            group by a.grant_sequence, a.grant_part) x) as restored,
    (select coalesce(json_agg(json_build_object('sequence', g.sequence::text, 'part', g.part, 'app', g.app,
        'amount', g.amount::text, 'remaining', g.remaining::text, 'expires_at', ${UTC_MS("g.expires_at")},
        'created_at', ${UTC_MS("g.created_at")}, 'expired_sequence', g.expired_sequence::text)), '[]')
      from ledger_entries o
      join ledger_allocations a on a.owner_id = o.owner_id and a.sequence = o.sequence
      join ledger_grants g on g.owner_id = a.owner_id and g.sequence = a.grant_sequence and g.part = a.grant_part
      where o.id = k.id) as grants
  from unnest($1::bigint[]) as k(id)`;

interface RawReversedSoFar {
  id: string;
  reversed: string;
  restored: unknown;
  grants: unknown;
}

type RawStoredGrant = RawGrant & { created_at: string; expired_sequence: string | null };

/** The reversals feature's facts: what was reversed of each entry, keyed by its id. */
export const reversedSoFar: FactLoader<ReversedSoFar> = {
  name: "reversals.reversed-so-far",
  statement: (keys) => ({ text: REVERSED_SO_FAR, params: [keys] }),
  parse(rows: Rows) {
    return new Map(
      (rows as unknown as RawReversedSoFar[]).map((r) => [
        r.id,
        {
          reversed: Number(r.reversed),
          restored: new Map(toDraws(r.restored).map((d) => [drawKey(d), d.amount])),
          grants: parseJson<RawStoredGrant[]>(r.grants).map((g): StoredGrant => ({
            ...toOpenGrant(g),
            createdAt: new Date(g.created_at),
            expiredSequence: g.expired_sequence === null ? null : Number(g.expired_sequence),
          })),
        },
      ]),
    );
  },
};

/**
 * How a debit's reversal of `amount` gives credits back, when `soFar` was given back already: first to
 * the credits without expiry the debit took, then to its grants from the last drawn (the latest
 * expiry) to the first. Returns what goes to each grant; the rest is credits without expiry. Pure.
 */
export function planRestore(
  original: OriginalEntry,
  soFar: ReversedSoFar,
  amount: number,
): { grant: StoredGrant; amount: number }[] {
  const grants = new Map(soFar.grants.map((g) => [grantKey(g), g] as const));
  const drawn = original.draws.map((d) => {
    const grant = grants.get(`${d.grantSequence}.${d.grantPart}`);
    if (!grant) throw new Error(`entry ${original.row.id} drew from a grant that is not stored`);
    return { grant, amount: d.amount };
  });
  drawn.sort((a, b) => byBurnOrder(a.grant, b.grant));
  const drawnFromGrants = drawn.reduce((sum, d) => sum + d.amount, 0);
  const restoredToGrants = [...soFar.restored.values()].reduce((sum, n) => sum + n, 0);
  const permanentLeft = -Number(original.row.amount) - drawnFromGrants - (soFar.reversed - restoredToGrants);
  let left = amount - Math.min(amount, Math.max(0, permanentLeft));
  const to: { grant: StoredGrant; amount: number }[] = [];
  for (const d of drawn.reverse()) {
    if (left === 0) break;
    const give = Math.min(left, d.amount - (soFar.restored.get(grantKey(d.grant)) ?? 0));
    if (give > 0) to.push({ grant: d.grant, amount: give });
    left -= give;
  }
  if (left !== 0)
    throw new Error(`entry ${original.row.id}: ${left} credits of the reversal have nowhere to go`);
  return to;
}

/** What the command answers: a fresh reversal, or the entry a replay found (its answer is rebuilt after). */
export type ReversalOutcome =
  { kind: "reversed"; result: ReversalResult } | { kind: "replay"; recorded: RecordedEntry };

/** The command reversing one entry of the app, already read and found reversible. */
export function reverseEntryCommand(
  app: string,
  original: OriginalEntry,
  input: ReversalInput,
): Command<ReversalOutcome> {
  const { row } = original;
  const key = String(row.id);
  const originalAmount = Number(row.amount);
  const magnitude = Math.abs(originalAmount);
  const reason = input.reason ?? null;
  return {
    kind: "reversals.reverse",
    nonce: input.nonce,
    needs: () => ({ owners: [row.ownerId], facts: [{ loader: reversedSoFar, keys: [key] }] }),
    decide(draft, now) {
      const soFar = draft.fact(reversedSoFar, key) ?? { reversed: 0, restored: new Map(), grants: [] };
      const left = magnitude - soFar.reversed;
      if (left <= 0) return { ok: false, error: new AlreadyReversedError(row.id) };
      const amount = input.amount ?? left;
      if (amount > left) return { ok: false, error: new ReversalExceedsOriginalError(row.id, left, amount) };

      const restored = new Map(soFar.restored);
      const common = {
        app,
        operation: LEDGER_OPERATIONS.REVERSAL,
        ownerId: row.ownerId,
        nonce: input.nonce,
        reverses: row.id,
        reason,
      };
      if (originalAmount < 0) {
        const to = planRestore(original, soFar, amount);
        for (const t of to)
          restored.set(grantKey(t.grant), (restored.get(grantKey(t.grant)) ?? 0) + t.amount);
        // Throws BalanceLimitExceededError; what goes back to a grant past its expiry expires at once.
        draft.append({ ...common, amount, credit: { kind: "restore", to } }, now);
      } else {
        // A credit that expires opened a grant (part 0 of its own sequence): the reversal takes from it alone.
        const debit =
          row.expiresAt !== null
            ? { kind: "grant" as const, sequence: row.sequence, part: 0 }
            : { kind: "permanent" as const };
        // Throws InsufficientBalanceError when that source is short.
        draft.append({ ...common, amount: -amount, debit }, now);
      }
      draft.setFact(reversedSoFar, key, {
        reversed: soFar.reversed + amount,
        restored,
        grants: soFar.grants,
      });
      const reversedAmount = soFar.reversed + amount;
      return {
        ok: true,
        answer: (rows) => {
          const entry = rows.find((r) => r.nonce === input.nonce);
          // The owner as the command left it: after what expired at once, if anything did.
          const last = rows.at(-1);
          if (!entry || !last) throw new Error("a reversal wrote no entry");
          return {
            kind: "reversed",
            result: {
              entry: toLedgerEntry(entry),
              balance: Number(last.balanceAfter),
              available: availableAfter(last),
              original: { id: row.id, amount: originalAmount, reversed_amount: reversedAmount },
              replayed: false,
            },
          };
        },
      };
    },
    replay(recorded) {
      const same =
        recorded.operation === LEDGER_OPERATIONS.REVERSAL &&
        recorded.reverses === row.id &&
        recorded.reason === reason &&
        (input.amount === undefined || Math.abs(Number(recorded.amount)) === input.amount);
      return same ? { kind: "replay", recorded } : null;
    },
  };
}

// A replay's answer as the reversal gave it: the total reversed up to and including it (reversals of
// one entry are one owner's entries, so sequence order is the order they were made in), and what of it
// expired at once (what it gave back to grants already past their expiry when it was made).
const AS_REPLAYED = `select
    (select coalesce(abs(sum(r.amount)), 0)::text from ledger_entries r
      where r.reverses = $1::bigint and r.sequence <= $3::bigint) as reversed,
    (select coalesce(-sum(a.amount), 0)::text from ledger_allocations a
      join ledger_grants g on g.owner_id = a.owner_id and g.sequence = a.grant_sequence and g.part = a.grant_part
      where a.owner_id = $2 and a.sequence = $3::bigint and a.amount < 0
        and g.expires_at <= $4::text::timestamptz) as expired`;

/**
 * Reverses one of the app's entries, exactly once per nonce.
 * @throws EntryNotFoundError, NotReversibleError, NonceConflictError, AlreadyReversedError,
 *   ReversalExceedsOriginalError, InsufficientBalanceError, BalanceLimitExceededError,
 *   DatabaseUnavailableError (REVERSE_ENTRY_ERRORS, in that order)
 */
export async function reverseEntry(
  service: LedgerService,
  entryId: number,
  input: ReversalInput,
): Promise<ReversalResult> {
  const original = await findOriginal(service, entryId);
  if (!original) throw new EntryNotFoundError(entryId);
  const why = whyNotReversible(original.row.operation, Number(original.row.amount));
  if (why !== null) throw new NotReversibleError(entryId, original.row.operation, why);
  const outcome = await service.submit(reverseEntryCommand(service.app, original, input));
  if (outcome.kind === "reversed") return outcome.result;

  const { recorded } = outcome;
  const [rows = []] = await service.query((db) =>
    db.run([
      {
        text: AS_REPLAYED,
        params: [entryId, recorded.ownerId, recorded.sequence, recorded.createdAt.toISOString()],
      },
    ]),
  );
  const figures = rows[0] as { reversed: string; expired: string } | undefined;
  const expired = Number(figures?.expired ?? 0);
  // A request without `amount` reverses what is left: the recorded reversal is its replay only if it
  // left nothing (one that left some was made with an amount: another request).
  if (input.amount === undefined && Number(figures?.reversed ?? 0) < Math.abs(Number(original.row.amount))) {
    throw new NonceConflictError(input.nonce);
  }
  return {
    entry: toLedgerEntry(recorded),
    balance: Number(recorded.balanceAfter) - expired,
    available: availableAfter(recorded) - expired,
    original: {
      id: entryId,
      amount: Number(original.row.amount),
      reversed_amount: Number(figures?.reversed ?? 0),
    },
    replayed: true,
  };
}
