// The ledger's invariants, checked in SQL on a live database. Each figure is a count of violations
// (or, for the accounts sum, the sum itself), so a healthy ledger reads all zeros.
import { sql, type SQL } from "drizzle-orm";
import { queryRows, type LedgerDb } from "./client.js";

export interface InvariantReport {
  /** Sum over every account's postings: always 0 in double entry. */
  accountsSum: number;
  /** Owners whose stored balance differs from the sum of their entries. */
  balanceMismatches: number;
  /** Owners whose stored balance differs from the sum of their account's postings. */
  postingMismatches: number;
  /** Owners with a balance below zero. */
  negativeBalances: number;
  /** Entries whose postings are not exactly two lines summing to zero. */
  unbalancedEntries: number;
}

async function scalar(db: LedgerDb, query: SQL): Promise<number> {
  const rows = await queryRows<{ n: string | number | null }>(db, query);
  return Number(rows[0]?.n ?? 0);
}

export async function checkInvariants(db: LedgerDb): Promise<InvariantReport> {
  return {
    accountsSum: await scalar(db, sql`select coalesce(sum(amount), 0)::text as n from ledger_postings`),
    balanceMismatches: await scalar(
      db,
      sql`select count(*)::int as n
          from ledger_balances b
          full join (select owner_id, sum(amount) as total from ledger_entries group by owner_id) e using (owner_id)
          where coalesce(b.balance, 0) <> coalesce(e.total, 0)`,
    ),
    postingMismatches: await scalar(
      db,
      sql`select count(*)::int as n
          from ledger_balances b
          full join (
            select substr(account, 7) as owner_id, sum(amount) as total
            from ledger_postings where account like 'owner:%' group by account
          ) p using (owner_id)
          where coalesce(b.balance, 0) <> coalesce(p.total, 0)`,
    ),
    negativeBalances: await scalar(db, sql`select count(*)::int as n from ledger_balances where balance < 0`),
    unbalancedEntries: await scalar(
      db,
      sql`select count(*)::int as n from (
            select e.id from ledger_entries e left join ledger_postings p on p.entry_id = e.id
            group by e.id having count(p.entry_id) <> 2 or coalesce(sum(p.amount), 0) <> 0
          ) x`,
    ),
  };
}
