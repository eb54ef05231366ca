-- Holds, reversals, transfers and suspension.
-- Entries gain what they link to (hold_id, reverses, counterparty_owner_id, reason) and held_after, the
-- owner's held credits right after them (0 for every entry written before holds existed, when nothing
-- could be held). Owners gain held, the sum of their active holds. A TRANSFER_IN carries the sender's
-- expiries over as one grant per expiry, so a grant is (owner_id, sequence, part), and allocations name the
-- part; an allocation may now be negative (a reversal giving credits back to a grant). Every existing row
-- keeps its meaning: part 0, held 0, nothing linked.
CREATE TABLE "ledger_holds" (
	"id" text PRIMARY KEY NOT NULL,
	"app" text NOT NULL,
	"owner_id" text NOT NULL,
	"operation" text NOT NULL,
	"amount" bigint NOT NULL,
	"status" text NOT NULL,
	"captured_amount" bigint,
	"expires_at" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"sequence" bigint NOT NULL,
	"ended_at" timestamp with time zone,
	"end_sequence" bigint,
	"draws" jsonb NOT NULL,
	CONSTRAINT "ledger_holds_amount_positive" CHECK ("ledger_holds"."amount" > 0),
	CONSTRAINT "ledger_holds_status_known" CHECK ("ledger_holds"."status" in ('active', 'captured', 'released', 'expired')),
	CONSTRAINT "ledger_holds_captured_amount" CHECK (("ledger_holds"."status" = 'captured') = ("ledger_holds"."captured_amount" is not null) and coalesce("ledger_holds"."captured_amount", 1) between 1 and "ledger_holds"."amount")
);
--> statement-breakpoint
ALTER TABLE "ledger_allocations" DROP CONSTRAINT "ledger_allocations_amount_positive";--> statement-breakpoint
DROP INDEX "ledger_allocations_grant";--> statement-breakpoint
ALTER TABLE "ledger_allocations" ADD COLUMN "grant_part" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "ledger_entries" ADD COLUMN "held_after" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "ledger_entries" ADD COLUMN "hold_id" text;--> statement-breakpoint
ALTER TABLE "ledger_entries" ADD COLUMN "reverses" bigint;--> statement-breakpoint
ALTER TABLE "ledger_entries" ADD COLUMN "counterparty_owner_id" text;--> statement-breakpoint
ALTER TABLE "ledger_entries" ADD COLUMN "reason" text;--> statement-breakpoint
ALTER TABLE "ledger_grants" ADD COLUMN "part" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "ledger_owners" ADD COLUMN "held" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE INDEX "ledger_holds_owner" ON "ledger_holds" USING btree ("owner_id","app","sequence");--> statement-breakpoint
CREATE INDEX "ledger_holds_active" ON "ledger_holds" USING btree ("owner_id") WHERE "ledger_holds"."status" = 'active';--> statement-breakpoint
CREATE INDEX "ledger_holds_due" ON "ledger_holds" USING btree ("expires_at") WHERE "ledger_holds"."status" = 'active';--> statement-breakpoint
CREATE INDEX "ledger_entries_reverses" ON "ledger_entries" USING btree ("reverses") WHERE "ledger_entries"."reverses" is not null;--> statement-breakpoint
CREATE INDEX "ledger_entries_hold" ON "ledger_entries" USING btree ("hold_id") WHERE "ledger_entries"."hold_id" is not null;--> statement-breakpoint
CREATE INDEX "ledger_allocations_grant" ON "ledger_allocations" USING btree ("owner_id","grant_sequence","grant_part");--> statement-breakpoint
ALTER TABLE "ledger_allocations" DROP CONSTRAINT "ledger_allocations_pkey";
--> statement-breakpoint
ALTER TABLE "ledger_allocations" ADD CONSTRAINT "ledger_allocations_pkey" PRIMARY KEY("owner_id","sequence","grant_sequence","grant_part");--> statement-breakpoint
ALTER TABLE "ledger_grants" DROP CONSTRAINT "ledger_grants_pkey";
--> statement-breakpoint
ALTER TABLE "ledger_grants" ADD CONSTRAINT "ledger_grants_pkey" PRIMARY KEY("owner_id","sequence","part");--> statement-breakpoint
ALTER TABLE "ledger_allocations" ADD CONSTRAINT "ledger_allocations_amount_nonzero" CHECK ("ledger_allocations"."amount" <> 0);--> statement-breakpoint
ALTER TABLE "ledger_entries" ADD CONSTRAINT "ledger_entries_held_after_range" CHECK ("ledger_entries"."held_after" >= 0 and "ledger_entries"."held_after" <= "ledger_entries"."balance_after");--> statement-breakpoint
ALTER TABLE "ledger_owners" ADD CONSTRAINT "ledger_owners_held_range" CHECK ("ledger_owners"."held" >= 0 and "ledger_owners"."held" <= "ledger_owners"."balance");