// Transfers between owners: credits leave one owner's available credits (TRANSFER_OUT) and reach
// another's (TRANSFER_IN), both in one command, so both in one transaction. The command locks both
// owners; the engine takes every batch's locks in one global order, so transfers crossing between two
// processes cannot deadlock.
//
// Credits keep their expiry: the TRANSFER_OUT spends the sender's grants in burn order, and the
// TRANSFER_IN opens, for the receiver, one grant per expiry instant among what it spent (part 0 the
// soonest), so a transfer cannot turn expiring credits into lasting ones. What came from credits without
// expiry stays without.
//
// Both entries are written under the transferring app, the TRANSFER_OUT under the client's nonce and the
// TRANSFER_IN under a nonce linked to it (transferInNonce). The grants carried over are the receiver's,
// granted by the transferring app: their expiry is recorded under it, whichever app granted the
// sender's credits.
import { InsufficientBalanceError, OwnerSuspendedError } from "../../domain/errors.js";
import { LEDGER_OPERATIONS } from "../../domain/ledger-operations.js";
import type { LedgerEntry } from "../../domain/types.js";
import type { Command, ErrorList } from "../../engine/command.js";
import type { Appended } from "../../engine/state.js";
import type { LedgerService } from "../../service/ledger-service.js";
import { availableAfter, toLedgerEntry, type EntryRow, type RecordedEntry } from "../../store/reads.js";

/** What a transfer can refuse with, in order of precedence. The first needs no database. */
export const TRANSFER_ERRORS: ErrorList = [
  "VALIDATION_FAILED", // including the same owner on both sides
  "NONCE_CONFLICT",
  "OWNER_SUSPENDED", // either side: the sender first
  "INSUFFICIENT_BALANCE", // the sender's available credits: its balance less what is held
  "BALANCE_LIMIT_EXCEEDED", // the receiver would pass 2^53-1
];

export interface TransferInput {
  from_owner_id: string;
  to_owner_id: string;
  /** 1..AMOUNT_MAX. */
  amount: number;
  nonce: string;
}

export interface TransferSide {
  owner_id: string;
  balance: number;
  available: number;
  entry: LedgerEntry;
}

export interface TransferResult {
  from: TransferSide;
  to: TransferSide;
  replayed: boolean;
}

/**
 * The nonce of a transfer's TRANSFER_IN entry. It holds a space, which no client nonce may, so it can
 * never be taken by another request; (app, nonce) is unique, so a transfer is recorded once.
 */
export function transferInNonce(nonce: string): string {
  return `transfer-in ${nonce}`;
}

/** What a TRANSFER_OUT spent of the sender's grants, merged by expiry instant, soonest first. */
export function carriedExpiries(draws: Appended["draws"]): { expiresAt: Date; amount: number }[] {
  const byInstant = new Map<number, number>();
  for (const d of draws)
    byInstant.set(d.expiresAt.getTime(), (byInstant.get(d.expiresAt.getTime()) ?? 0) + d.amount);
  return [...byInstant].sort(([a], [b]) => a - b).map(([t, amount]) => ({ expiresAt: new Date(t), amount }));
}

function sideOf(row: EntryRow): TransferSide {
  return {
    owner_id: row.ownerId,
    balance: Number(row.balanceAfter),
    available: availableAfter(row),
    entry: toLedgerEntry(row),
  };
}

/** The command of one transfer, already validated (two different owners, an amount within bounds). */
export function transferCommand(app: string, input: TransferInput): Command<TransferResult> {
  const { from_owner_id: from, to_owner_id: to, amount, nonce } = input;
  const inNonce = transferInNonce(nonce);
  return {
    kind: "transfers.transfer",
    nonce,
    linkedNonces: [inNonce],
    needs: () => ({ owners: [from, to] }),
    decide(draft, now) {
      const sender = draft.owner(from, now);
      const receiver = draft.owner(to, now);
      if (sender.status === "suspended") return { ok: false, error: new OwnerSuspendedError(from) };
      if (receiver.status === "suspended") return { ok: false, error: new OwnerSuspendedError(to) };
      if (sender.available < amount) {
        return { ok: false, error: new InsufficientBalanceError(from, sender.available, -amount) };
      }
      const out = draft.append(
        {
          app,
          operation: LEDGER_OPERATIONS.TRANSFER_OUT,
          ownerId: from,
          amount: -amount,
          nonce,
          counterpartyOwnerId: to,
          debit: { kind: "available" },
        },
        now,
      );
      // Throws BalanceLimitExceededError for a receiver that cannot take it (the draft is dropped).
      draft.append(
        {
          app,
          operation: LEDGER_OPERATIONS.TRANSFER_IN,
          ownerId: to,
          amount,
          nonce: inNonce,
          counterpartyOwnerId: from,
          credit: { kind: "grants", parts: carriedExpiries(out.draws) },
        },
        now,
      );
      return {
        ok: true,
        answer: (rows) => {
          const outRow = rows.find((r) => r.nonce === nonce);
          const inRow = rows.find((r) => r.nonce === inNonce);
          if (!outRow || !inRow) throw new Error("a transfer wrote no TRANSFER_OUT or no TRANSFER_IN");
          return { from: sideOf(outRow), to: sideOf(inRow), replayed: false };
        },
      };
    },
    replay(recorded: RecordedEntry, linked) {
      const same =
        recorded.operation === LEDGER_OPERATIONS.TRANSFER_OUT &&
        recorded.ownerId === from &&
        recorded.counterpartyOwnerId === to &&
        Number(recorded.amount) === -amount;
      if (!same) return null;
      const inRow = linked.get(inNonce);
      // Both entries are written in one transaction: one without the other is a broken ledger.
      if (!inRow) throw new Error(`transfer ${nonce} has a TRANSFER_OUT and no TRANSFER_IN`);
      return { from: sideOf(recorded), to: sideOf(inRow), replayed: true };
    },
  };
}

/**
 * Moves credits from one owner to another, exactly once per nonce.
 * @throws NonceConflictError, OwnerSuspendedError, InsufficientBalanceError, BalanceLimitExceededError,
 *   DatabaseUnavailableError (TRANSFER_ERRORS, in that order)
 */
export function transferCredits(service: LedgerService, input: TransferInput): Promise<TransferResult> {
  return service.submit(transferCommand(service.app, input));
}
