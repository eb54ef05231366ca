CREATE TABLE "ledger_balances" (
	"owner_id" text PRIMARY KEY NOT NULL,
	"balance" bigint NOT NULL,
	"last_sequence" bigint NOT NULL,
	"updated_at" timestamp with time zone NOT NULL,
	CONSTRAINT "ledger_balances_balance_non_negative" CHECK ("ledger_balances"."balance" >= 0),
	CONSTRAINT "ledger_balances_balance_max" CHECK ("ledger_balances"."balance" <= 9007199254740991)
);
--> statement-breakpoint
CREATE TABLE "ledger_entries" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"app" text NOT NULL,
	"operation" text NOT NULL,
	"owner_id" text NOT NULL,
	"amount" bigint NOT NULL,
	"balance_after" bigint NOT NULL,
	"sequence" bigint NOT NULL,
	"nonce" text NOT NULL,
	"limit_period" text,
	"created_at" timestamp with time zone NOT NULL,
	CONSTRAINT "ledger_entries_app_nonce_key" UNIQUE("app","nonce"),
	CONSTRAINT "ledger_entries_owner_sequence_key" UNIQUE("owner_id","sequence"),
	CONSTRAINT "ledger_entries_sequence_positive" CHECK ("ledger_entries"."sequence" >= 1),
	CONSTRAINT "ledger_entries_balance_after_range" CHECK ("ledger_entries"."balance_after" >= 0 and "ledger_entries"."balance_after" <= 9007199254740991)
);
--> statement-breakpoint
CREATE TABLE "ledger_postings" (
	"entry_id" bigint NOT NULL,
	"account" text NOT NULL,
	"amount" bigint NOT NULL,
	CONSTRAINT "ledger_postings_pkey" PRIMARY KEY("entry_id","account")
);
--> statement-breakpoint
ALTER TABLE "ledger_postings" ADD CONSTRAINT "ledger_postings_entry_id_ledger_entries_id_fk" FOREIGN KEY ("entry_id") REFERENCES "public"."ledger_entries"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "ledger_entries_limit_period_key" ON "ledger_entries" USING btree ("owner_id","operation","limit_period") WHERE "ledger_entries"."limit_period" is not null;