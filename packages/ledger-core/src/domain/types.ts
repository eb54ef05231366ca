/** One line of an owner's history, as the ledger reports it. */
export interface LedgerEntry {
  id: number;
  app: string;
  operation: string;
  owner_id: string;
  /** Signed: what this entry did to the owner's balance. */
  amount: number;
  /** The owner's balance right after this entry (the running balance). */
  balance_after: number;
  /** 1, 2, 3, ... per owner, with no gaps: the position of this entry in the owner's history. */
  sequence: number;
  nonce: string;
  created_at: string;
  /**
   * A credit that expires: when its unspent remainder stops counting. An EXPIRY entry: the expiry it
   * enforced. A HOLD entry: the hold's expiry.
   */
  expires_at?: string;
  /** HOLD, HOLD_RELEASE, HOLD_EXPIRY and capture entries: the hold. */
  hold_id?: string;
  /** A REVERSAL: the entry it reverses. */
  reverses?: number;
  /** An entry that was reversed, in part or in full: the credits reversals gave back so far. */
  reversed_amount?: number;
  /** TRANSFER_OUT and TRANSFER_IN: the other owner. */
  counterparty_owner_id?: string;
  /** Why, as the caller said. */
  reason?: string;
  /** The id of the API key that wrote it. */
  actor?: string;
}

export interface PostResult {
  entry: LedgerEntry;
  /** The owner's balance after the entry: for a replay, the balance the original answer gave. */
  balance: number;
  /** The owner's available credits (balance less held) after the entry. */
  available: number;
  /** True when the nonce had been applied already and this is the original answer again. */
  replayed: boolean;
}

export interface Balance {
  owner_id: string;
  /** Credits that count now: expired remainders never do, whether or not their EXPIRY entry is written yet. */
  balance: number;
  /** The balance less credits under active holds (equal to balance until holds exist). */
  available: number;
  /** Credits under active holds. */
  held: number;
  status: "active" | "suspended";
  /** Unexpired credits that have an expiry, summed by instant, soonest first (at most 50). */
  expiring: { amount: number; expires_at: string }[];
}

export interface BalanceAt {
  owner_id: string;
  /** The running balance right after the owner's last entry at or before `at`. */
  balance: number;
  at: string;
}

/** What an owner's entries between two instants add up to, by app and operation. */
export interface EntrySummary {
  owner_id: string;
  from: string;
  to: string;
  /** The running balance right after the owner's last entry at or before `from` (0 before the first). */
  balance_from: number;
  /** The same at `to`. */
  balance_to: number;
  /** balance_to - balance_from: exactly what the groups' amounts add up to. */
  change: number;
  /** The entries after `from`, up to `to`, summed by app and operation, in that order. */
  groups: { app: string; operation: string; entries: number; amount: number }[];
}

export interface EntryPage {
  owner_id: string;
  entries: LedgerEntry[];
  /** Pass as `cursor` to get the next (older) page; null when there is none. */
  next_cursor: string | null;
}
