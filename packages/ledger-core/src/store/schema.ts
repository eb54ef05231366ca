// The ledger's tables. Entries and postings are the truth and are append-only (a trigger in the
// migrations refuses UPDATE, DELETE and TRUNCATE on them); balances are a projection of the entries,
// written in the same transaction and rebuildable from them.
//
// Double entry: each entry writes two postings that sum to zero, the owner's account against the
// system account of the operation ("owner:<id>" / "operation:<NAME>"). Only owner accounts have a
// stored balance row. A system account's balance is the sum of its postings, computed when asked:
// no write ever updates (and so locks) a system row, so there is no hot row that every write in the
// system would queue on.
import { sql } from "drizzle-orm";
import {
  bigint,
  bigserial,
  check,
  pgTable,
  primaryKey,
  text,
  timestamp,
  unique,
  uniqueIndex,
} from "drizzle-orm/pg-core";

/** Constraint names are part of the db layer's contract: errors are mapped to domain errors by them. */
export const constraints = {
  appNonce: "ledger_entries_app_nonce_key",
  ownerSequence: "ledger_entries_owner_sequence_key",
  limitPeriod: "ledger_entries_limit_period_key",
  balanceNonNegative: "ledger_balances_balance_non_negative",
  balanceMax: "ledger_balances_balance_max",
} as const;

const MAX_SAFE = sql.raw("9007199254740991");

export const ledgerEntries = pgTable(
  "ledger_entries",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    app: text("app").notNull(),
    operation: text("operation").notNull(),
    ownerId: text("owner_id").notNull(),
    amount: bigint("amount", { mode: "bigint" }).notNull(),
    balanceAfter: bigint("balance_after", { mode: "bigint" }).notNull(),
    sequence: bigint("sequence", { mode: "number" }).notNull(),
    nonce: text("nonce").notNull(),
    /** For limited operations: "once", or the UTC date for daily ones. Null for unlimited ones. */
    limitPeriod: text("limit_period"),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull(),
  },
  (t) => [
    unique(constraints.appNonce).on(t.app, t.nonce),
    // Also the index behind "an owner's entries, newest first".
    unique(constraints.ownerSequence).on(t.ownerId, t.sequence),
    uniqueIndex(constraints.limitPeriod)
      .on(t.ownerId, t.operation, t.limitPeriod)
      .where(sql`${t.limitPeriod} is not null`),
    check("ledger_entries_sequence_positive", sql`${t.sequence} >= 1`),
    check(
      "ledger_entries_balance_after_range",
      sql`${t.balanceAfter} >= 0 and ${t.balanceAfter} <= ${MAX_SAFE}`,
    ),
  ],
);

export const ledgerPostings = pgTable(
  "ledger_postings",
  {
    entryId: bigint("entry_id", { mode: "number" })
      .notNull()
      .references(() => ledgerEntries.id),
    account: text("account").notNull(),
    amount: bigint("amount", { mode: "bigint" }).notNull(),
  },
  // No index on account: system accounts are only ever summed by audits, and an index keyed on a
  // handful of system accounts would concentrate every insert on the same few index pages.
  (t) => [primaryKey({ name: "ledger_postings_pkey", columns: [t.entryId, t.account] })],
);

export const ledgerBalances = pgTable(
  "ledger_balances",
  {
    ownerId: text("owner_id").primaryKey(),
    balance: bigint("balance", { mode: "bigint" }).notNull(),
    /** The sequence of the owner's newest entry (0 before the first). */
    lastSequence: bigint("last_sequence", { mode: "number" }).notNull(),
    updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull(),
  },
  (t) => [
    check(constraints.balanceNonNegative, sql`${t.balance} >= 0`),
    check(constraints.balanceMax, sql`${t.balance} <= ${MAX_SAFE}`),
  ],
);

export const ownerAccount = (ownerId: string) => `owner:${ownerId}`;
export const operationAccount = (operation: string) => `operation:${operation}`;

export const schema = { ledgerEntries, ledgerPostings, ledgerBalances };
