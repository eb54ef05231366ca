// The ledger's tables. Entries and allocations are the truth and are append-only (triggers in the
// migrations refuse UPDATE, DELETE and TRUNCATE on them); owners' balances and grants' remainders are
// projections of them, written in the same transaction and rebuildable from them.
//
// Double entry: each entry has two postings that sum to zero, the owner's account against the system
// account of the operation ("owner:<id>" / "operation:<NAME>"). The postings are a function of the
// entry, so they are not stored: `ledger_postings` is a view over the entries (a plain operation writes
// one heap row, not three). Only owner accounts have a stored balance. A system account's balance is the
// sum of its postings, computed when asked: no write ever updates (and so locks) a system row.
//
// What a plain operation writes (no expiring credits involved): one entry row with three index entries
// (its id, (app, nonce), (owner_id, sequence); a limited one a fourth, its period), plus, once per owner
// per batch, the owner row's new version (a HOT update: no index entry).
import { sql } from "drizzle-orm";
import {
  bigint,
  bigserial,
  boolean,
  check,
  index,
  integer,
  jsonb,
  pgTable,
  pgView,
  primaryKey,
  text,
  uuid,
  timestamp,
  unique,
  uniqueIndex,
} from "drizzle-orm/pg-core";

/** Constraint names are part of the db layer's contract: errors are mapped to domain errors by them. */
export const constraints = {
  appNonce: "ledger_entries_app_nonce_key",
  ownerSequence: "ledger_entries_owner_sequence_key",
  limitPeriod: "ledger_entries_limit_period_key",
  balanceNonNegative: "ledger_owners_balance_non_negative",
  balanceMax: "ledger_owners_balance_max",
  heldRange: "ledger_owners_held_range",
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
    /**
     * A credit that expires: when. An EXPIRY entry: the expiry of the grant it expired. A HOLD entry: the
     * hold's expiry.
     */
    expiresAt: timestamp("expires_at", { withTimezone: true, mode: "date" }),
    /** The owner's credits under active holds right after this entry: balance_after - held_after was available. */
    heldAfter: bigint("held_after", { mode: "bigint" })
      .notNull()
      .default(sql`0`),
    /** HOLD, HOLD_RELEASE, HOLD_EXPIRY and capture entries: the hold. */
    holdId: text("hold_id"),
    /** REVERSAL entries: the id of the entry reversed. */
    reverses: bigint("reverses", { mode: "number" }),
    /** TRANSFER_OUT and TRANSFER_IN entries: the other owner. */
    counterpartyOwnerId: text("counterparty_owner_id"),
    /** Why, as the caller said (suspensions, reinstatements, reversals). */
    reason: text("reason"),
    /** The id of the API key that wrote it; null with LEDGER_AUTH=off, for sweepers, and before keys. */
    actor: text("actor"),
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
    check(
      "ledger_entries_held_after_range",
      sql`${t.heldAfter} >= 0 and ${t.heldAfter} <= ${t.balanceAfter}`,
    ),
    // What reversed an entry, summed under the owner's lock; and a hold's entries.
    index("ledger_entries_reverses")
      .on(t.reverses)
      .where(sql`${t.reverses} is not null`),
    index("ledger_entries_hold")
      .on(t.holdId)
      .where(sql`${t.holdId} is not null`),
  ],
);

/** Two rows per entry, derived from it (a view, see the migration 0002): nothing to write or keep in step. */
export const ledgerPostings = pgView("ledger_postings", {
  entryId: bigint("entry_id", { mode: "number" }).notNull(),
  account: text("account").notNull(),
  amount: bigint("amount", { mode: "bigint" }).notNull(),
}).existing();

/**
 * One row per owner that has ever had an entry: the row a write locks (every write for an owner locks it
 * first, in one global order), with what is projected of the owner's history.
 */
export const ledgerOwners = pgTable(
  "ledger_owners",
  {
    ownerId: text("owner_id").primaryKey(),
    /** The running balance of the newest entry: credits without expiry plus the open grants' remainders. */
    balance: bigint("balance", { mode: "bigint" }).notNull(),
    /** The sequence of the owner's newest entry (0 before the first). */
    lastSequence: bigint("last_sequence", { mode: "number" }).notNull(),
    status: text("status").notNull().default("active"),
    /** The sum of the owner's holds active in storage (some may be past their expiry, not yet recorded). */
    held: bigint("held", { mode: "bigint" })
      .notNull()
      .default(sql`0`),
    updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull(),
  },
  (t) => [
    check(constraints.balanceNonNegative, sql`${t.balance} >= 0`),
    check(constraints.balanceMax, sql`${t.balance} <= ${MAX_SAFE}`),
    check("ledger_owners_status_known", sql`${t.status} in ('active', 'suspended')`),
    check(constraints.heldRange, sql`${t.held} >= 0 and ${t.held} <= ${t.balance}`),
  ],
);

/**
 * Credits that expire: one row per credit entry with an expiry, keeping its unspent remainder (a
 * projection: amount less what allocations took from it). Credits without expiry have no row.
 */
export const ledgerGrants = pgTable(
  "ledger_grants",
  {
    ownerId: text("owner_id").notNull(),
    /** The owner's sequence of the granting entry. */
    sequence: bigint("sequence", { mode: "number" }).notNull(),
    /** 0, or for a TRANSFER_IN carrying several expiries, one grant per expiry: 0, 1, 2... */
    part: integer("part").notNull().default(0),
    app: text("app").notNull(),
    amount: bigint("amount", { mode: "bigint" }).notNull(),
    remaining: bigint("remaining", { mode: "bigint" }).notNull(),
    expiresAt: timestamp("expires_at", { withTimezone: true, mode: "date" }).notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull(),
    /** The sequence of the newest EXPIRY entry that expired some of it. */
    expiredSequence: bigint("expired_sequence", { mode: "number" }),
  },
  (t) => [
    primaryKey({ name: "ledger_grants_pkey", columns: [t.ownerId, t.sequence, t.part] }),
    // A write loads its owners' open grants; the sweeper finds the due ones. Both only look at grants
    // with something left, so fully spent or expired grants drop out of both indexes.
    index("ledger_grants_open")
      .on(t.ownerId, t.expiresAt, t.sequence)
      .where(sql`${t.remaining} > 0`),
    index("ledger_grants_due")
      .on(t.expiresAt)
      .where(sql`${t.remaining} > 0`),
    check("ledger_grants_amount_positive", sql`${t.amount} > 0`),
    check("ledger_grants_remaining_range", sql`${t.remaining} >= 0 and ${t.remaining} <= ${t.amount}`),
  ],
);

/**
 * What each entry took from each grant (positive: a debit's draws in burn order, a capture's from its
 * hold, an expiry's remainder) or gave back to it (negative: a reversal of a debit). Append-only. An
 * entry that touches no expiring credit writes none.
 */
export const ledgerAllocations = pgTable(
  "ledger_allocations",
  {
    ownerId: text("owner_id").notNull(),
    /** The entry that took the credits. */
    sequence: bigint("sequence", { mode: "number" }).notNull(),
    grantSequence: bigint("grant_sequence", { mode: "number" }).notNull(),
    grantPart: integer("grant_part").notNull().default(0),
    amount: bigint("amount", { mode: "bigint" }).notNull(),
  },
  (t) => [
    primaryKey({
      name: "ledger_allocations_pkey",
      columns: [t.ownerId, t.sequence, t.grantSequence, t.grantPart],
    }),
    index("ledger_allocations_grant").on(t.ownerId, t.grantSequence, t.grantPart),
    check("ledger_allocations_amount_nonzero", sql`${t.amount} <> 0`),
  ],
);

/**
 * Holds: credits reserved for one of an app's debit operations until captured, released or expired.
 * The row is the hold's state (its status changes once, from active); the HOLD, capture, HOLD_RELEASE
 * and HOLD_EXPIRY entries are its history.
 */
export const ledgerHolds = pgTable(
  "ledger_holds",
  {
    id: text("id").primaryKey(),
    app: text("app").notNull(),
    ownerId: text("owner_id").notNull(),
    operation: text("operation").notNull(),
    amount: bigint("amount", { mode: "bigint" }).notNull(),
    status: text("status").notNull(),
    capturedAmount: bigint("captured_amount", { mode: "bigint" }),
    expiresAt: timestamp("expires_at", { withTimezone: true, mode: "date" }).notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull(),
    /** The HOLD entry's sequence. */
    sequence: bigint("sequence", { mode: "number" }).notNull(),
    endedAt: timestamp("ended_at", { withTimezone: true, mode: "date" }),
    /** The entry that ended it: the capture, HOLD_RELEASE or HOLD_EXPIRY. */
    endSequence: bigint("end_sequence", { mode: "number" }),
    /** What it took from each grant when made: [[grant sequence, grant part, amount], ...]. */
    draws: jsonb("draws").$type<[number, number, number][]>().notNull(),
  },
  (t) => [
    // An owner's holds, newest first (the list route's order and cursor).
    index("ledger_holds_owner").on(t.ownerId, t.app, t.sequence),
    // What a write loads with its owners' locks, and what the sweeper looks for.
    index("ledger_holds_active")
      .on(t.ownerId)
      .where(sql`${t.status} = 'active'`),
    index("ledger_holds_due")
      .on(t.expiresAt)
      .where(sql`${t.status} = 'active'`),
    check("ledger_holds_amount_positive", sql`${t.amount} > 0`),
    check("ledger_holds_status_known", sql`${t.status} in ('active', 'captured', 'released', 'expired')`),
    check(
      "ledger_holds_captured_amount",
      sql`(${t.status} = 'captured') = (${t.capturedAmount} is not null) and coalesce(${t.capturedAmount}, 1) between 1 and ${t.amount}`,
    ),
  ],
);

/**
 * The outbox: every committed entry's events, written in the entry's transaction (an event exists if and
 * only if its write committed). Append-only but for retention: delivered events older than
 * LEDGER_EVENTS_RETENTION_DAYS are pruned; entries stay forever. `position` is gapless and in commit order:
 * each transaction takes its positions from ledger_event_counter's one row, whose lock it holds until it
 * commits, so a transaction that commits later always has higher positions than one a reader already saw.
 * The data is stored without the entry's id (unknown until the insert); readers put entry_id back in.
 */
export const ledgerEvents = pgTable(
  "ledger_events",
  {
    position: bigint("position", { mode: "number" }).primaryKey(),
    id: uuid("id").notNull(),
    type: text("type").notNull(),
    version: integer("version").notNull(),
    occurredAt: timestamp("occurred_at", { withTimezone: true, mode: "date" }).notNull(),
    app: text("app").notNull(),
    ownerId: text("owner_id").notNull(),
    sequence: bigint("sequence", { mode: "number" }).notNull(),
    entryId: bigint("entry_id", { mode: "number" }).notNull(),
    requestId: text("request_id"),
    /** The API key that wrote the entry (the entry's actor). */
    actor: text("actor"),
    /** The W3C trace id of the request that wrote it (its traceparent header), if it had one. */
    traceId: text("trace_id"),
    data: jsonb("data").$type<Record<string, unknown>>().notNull(),
  },
  (t) => [
    // An owner's events in order: a stream's catch-up after Last-Event-ID.
    index("ledger_events_owner").on(t.ownerId, t.position),
  ],
);

/**
 * The one row every writing transaction locks last, after its owners, to take its events' positions:
 * commits that write events are serialized by it for the length of their COMMIT, which is what makes the
 * positions follow commit order. `backfilled_through` is the last entry id the migration gave events to.
 */
export const ledgerEventCounter = pgTable(
  "ledger_event_counter",
  {
    singleton: boolean("singleton").primaryKey().default(true),
    lastPosition: bigint("last_position", { mode: "number" }).notNull(),
    backfilledThrough: bigint("backfilled_through", { mode: "number" }).notNull(),
  },
  (t) => [check("ledger_event_counter_one_row", sql`${t.singleton}`)],
);

/**
 * What retention has pruned: events that occurred before `pruned_before` may be gone (delivered ones
 * only); every event since is still there. The audit's event checks start from it. Its own row, so the
 * prune never locks the writers' counter row.
 */
export const ledgerEventRetention = pgTable(
  "ledger_event_retention",
  {
    singleton: boolean("singleton").primaryKey().default(true),
    prunedBefore: timestamp("pruned_before", { withTimezone: true, mode: "date" }),
  },
  (t) => [check("ledger_event_retention_one_row", sql`${t.singleton}`)],
);

/** Each relay's checkpoint: the last position its broker acknowledged. One row per broker kind. */
export const ledgerEventRelays = pgTable("ledger_event_relays", {
  name: text("name").primaryKey(),
  position: bigint("position", { mode: "number" }).notNull(),
  updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull(),
});

export const ownerAccount = (ownerId: string) => `owner:${ownerId}`;
export const operationAccount = (operation: string) => `operation:${operation}`;

export const schema = {
  ledgerEntries,
  ledgerPostings,
  ledgerOwners,
  ledgerGrants,
  ledgerAllocations,
  ledgerHolds,
  ledgerEvents,
  ledgerEventCounter,
  ledgerEventRetention,
  ledgerEventRelays,
};

/**
 * API keys. The secret is never stored, only its SHA-256 (a key has 256 random bits: see
 * domain/api-keys.ts). A key belongs to one app; revoking sets revoked_at (kept, so entries' actors still
 * name a known key).
 */
export const ledgerApiKeys = pgTable(
  "ledger_api_keys",
  {
    id: text("id").primaryKey(),
    app: text("app").notNull(),
    name: text("name"),
    scopes: text("scopes").array().notNull(),
    /** Requests per second for this key; null: LEDGER_RATE_LIMIT_PER_S. */
    ratePerS: integer("rate_per_s"),
    secretSha256: text("secret_sha256").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
    lastUsedAt: timestamp("last_used_at", { withTimezone: true, mode: "date" }),
    revokedAt: timestamp("revoked_at", { withTimezone: true, mode: "date" }),
  },
  (t) => [
    check("ledger_api_keys_id_shape", sql`${t.id} ~ '^[0-9a-f]{16}$'`),
    check(
      "ledger_api_keys_scopes_known",
      sql`cardinality(${t.scopes}) >= 1 and ${t.scopes} <@ array['read', 'write', 'admin', 'events']::text[]`,
    ),
    check("ledger_api_keys_rate_positive", sql`${t.ratePerS} is null or ${t.ratePerS} between 1 and 100000`),
    check("ledger_api_keys_secret_shape", sql`${t.secretSha256} ~ '^[0-9a-f]{64}$'`),
    index("ledger_api_keys_app").on(t.app, t.createdAt),
  ],
);
