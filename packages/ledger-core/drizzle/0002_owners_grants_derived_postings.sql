-- The credits engine (issue "The credits engine: one runner for every kind of write, and credits that
-- expire"). Existing ledgers keep every entry; nothing of their history changes.
--
-- 1. The balance row becomes the owner row: the row every write locks, with a status beside the balance.
ALTER TABLE "ledger_balances" RENAME TO "ledger_owners";--> statement-breakpoint
ALTER INDEX "ledger_balances_pkey" RENAME TO "ledger_owners_pkey";--> statement-breakpoint
ALTER TABLE "ledger_owners" RENAME CONSTRAINT "ledger_balances_balance_non_negative" TO "ledger_owners_balance_non_negative";--> statement-breakpoint
ALTER TABLE "ledger_owners" RENAME CONSTRAINT "ledger_balances_balance_max" TO "ledger_owners_balance_max";--> statement-breakpoint
ALTER TABLE "ledger_owners" ADD COLUMN "status" text DEFAULT 'active' NOT NULL;--> statement-breakpoint
ALTER TABLE "ledger_owners" ADD CONSTRAINT "ledger_owners_status_known" CHECK ("ledger_owners"."status" in ('active', 'suspended'));--> statement-breakpoint
-- 2. Entries say when the credits they grant expire.
ALTER TABLE "ledger_entries" ADD COLUMN "expires_at" timestamp with time zone;--> statement-breakpoint
-- 3. Postings become a function of the entry. Every stored posting must be exactly what the entry
-- implies (the owner's account gets the amount, the operation's the opposite, nothing else) before the
-- table goes: a ledger whose postings say anything else is not migrated, and says why.
DO $$
DECLARE
  bad bigint;
BEGIN
  SELECT count(*) INTO bad FROM (
    SELECT e.id
    FROM ledger_entries e LEFT JOIN ledger_postings p ON p.entry_id = e.id
    GROUP BY e.id, e.owner_id, e.operation, e.amount
    HAVING count(p.entry_id) <> 2
        OR count(*) FILTER (WHERE p.account = 'owner:' || e.owner_id AND p.amount = e.amount) <> 1
        OR count(*) FILTER (WHERE p.account = 'operation:' || e.operation AND p.amount = -e.amount) <> 1
  ) t;
  IF bad > 0 OR EXISTS (SELECT 1 FROM ledger_postings p WHERE NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.id = p.entry_id)) THEN
    RAISE EXCEPTION 'ledger_postings disagree with their entries (% entries): run `ledger verify` and repair before migrating', bad;
  END IF;
END
$$;--> statement-breakpoint
DROP TABLE "ledger_postings";--> statement-breakpoint
CREATE VIEW "ledger_postings" AS
  SELECT id AS entry_id, 'owner:' || owner_id AS account, amount FROM ledger_entries
  UNION ALL
  SELECT id AS entry_id, 'operation:' || operation AS account, -amount AS amount FROM ledger_entries;--> statement-breakpoint
-- The view cannot be written; say so in the ledger's own words.
CREATE TRIGGER ledger_postings_append_only
  INSTEAD OF INSERT OR UPDATE OR DELETE ON ledger_postings
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_history_change();--> statement-breakpoint
-- 4. Grants: the unspent remainder of each credit that expires.
CREATE TABLE "ledger_grants" (
	"owner_id" text NOT NULL,
	"sequence" bigint NOT NULL,
	"app" text NOT NULL,
	"amount" bigint NOT NULL,
	"remaining" bigint NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"expired_sequence" bigint,
	CONSTRAINT "ledger_grants_pkey" PRIMARY KEY("owner_id","sequence"),
	CONSTRAINT "ledger_grants_amount_positive" CHECK ("ledger_grants"."amount" > 0),
	CONSTRAINT "ledger_grants_remaining_range" CHECK ("ledger_grants"."remaining" >= 0 and "ledger_grants"."remaining" <= "ledger_grants"."amount")
);--> statement-breakpoint
CREATE INDEX "ledger_grants_open" ON "ledger_grants" USING btree ("owner_id","expires_at","sequence") WHERE "ledger_grants"."remaining" > 0;--> statement-breakpoint
CREATE INDEX "ledger_grants_due" ON "ledger_grants" USING btree ("expires_at") WHERE "ledger_grants"."remaining" > 0;--> statement-breakpoint
-- 5. Allocations: what each debit or expiry took from each grant. History: append-only like entries.
CREATE TABLE "ledger_allocations" (
	"owner_id" text NOT NULL,
	"sequence" bigint NOT NULL,
	"grant_sequence" bigint NOT NULL,
	"amount" bigint NOT NULL,
	CONSTRAINT "ledger_allocations_pkey" PRIMARY KEY("owner_id","sequence","grant_sequence"),
	CONSTRAINT "ledger_allocations_amount_positive" CHECK ("ledger_allocations"."amount" > 0)
);--> statement-breakpoint
CREATE INDEX "ledger_allocations_grant" ON "ledger_allocations" USING btree ("owner_id","grant_sequence");--> statement-breakpoint
CREATE TRIGGER ledger_allocations_append_only
  BEFORE UPDATE OR DELETE ON ledger_allocations
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_history_change();--> statement-breakpoint
CREATE TRIGGER ledger_allocations_no_truncate
  BEFORE TRUNCATE ON ledger_allocations
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_history_change();
