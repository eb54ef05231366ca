// The snapshots the error cases compare against to prove that a refused request wrote nothing: what the
// API reports of an owner, and what the database holds in every table.
import { sql } from "drizzle-orm";
import { expect } from "vitest";
import type { LedgerDb } from "../store/client.js";
import {
  ledgerAllocations,
  ledgerEntries,
  ledgerGrants,
  ledgerHolds,
  ledgerOwners,
  ledgerPostings,
} from "../store/schema.js";
import { getBalance, getEntries, type RequestApp } from "./requests.js";

export interface OwnerState {
  balance: number;
  entryCount: number;
}

/** An owner's balance and number of entries, as the API reports them. */
export async function ownerState(app: RequestApp, ownerId: string): Promise<OwnerState> {
  // 200 is the largest page; no test gives one owner that many entries.
  const page = await getEntries(app, ownerId, "?limit=200");
  expect(page.next_cursor).toBeNull();
  return { balance: await getBalance(app, ownerId), entryCount: page.entries.length };
}

export interface TableCounts {
  entries: number;
  postings: number;
  owners: number;
  grants: number;
  allocations: number;
  holds: number;
}

/**
 * Row counts of every ledger table, read from the database itself: a refused request must not leave a
 * row anywhere, under any owner (not even an empty balance row for an owner id it made up).
 */
export async function tableCounts(db: LedgerDb): Promise<TableCounts> {
  return {
    entries: await db.$count(ledgerEntries),
    postings: await db.$count(ledgerPostings),
    owners: await db.$count(ledgerOwners),
    grants: await db.$count(ledgerGrants),
    allocations: await db.$count(ledgerAllocations),
    holds: await db.$count(ledgerHolds),
  };
}

export interface LedgerTotals extends TableCounts {
  /** The sum of every owner's balance, as text (bigint in the database). */
  balanceTotal: string;
}

/** Row counts of every table and the sum of all balances: a refused request changes none of them. */
export async function ledgerTotals(db: LedgerDb): Promise<LedgerTotals> {
  const [row] = await db
    .select({ total: sql<string>`coalesce(sum(${ledgerOwners.balance}), 0)::text` })
    .from(ledgerOwners);
  return { ...(await tableCounts(db)), balanceTotal: row?.total ?? "0" };
}
