-- The events outbox. Every entry written from now on gets its events in its own transaction (an
-- entry.created, and for hold entries a hold.created / captured / released / expired), at positions taken
-- from ledger_event_counter's one row, locked last by each writing transaction until it commits: gapless,
-- and in commit order. Entries written before this migration get their entry.created here, in id order
-- (request_id null: it was not kept), and backfilled_through records the last of them; holds made before it
-- get no hold events. Events are append-only (UPDATE and TRUNCATE are refused); DELETE is the retention
-- prune of delivered events. Relays keep their checkpoints in ledger_event_relays;
-- ledger_event_retention says what retention has pruned (nothing yet).
CREATE TABLE "ledger_event_counter" (
	"singleton" boolean PRIMARY KEY DEFAULT true NOT NULL,
	"last_position" bigint NOT NULL,
	"backfilled_through" bigint NOT NULL,
	CONSTRAINT "ledger_event_counter_one_row" CHECK ("ledger_event_counter"."singleton")
);
--> statement-breakpoint
CREATE TABLE "ledger_event_relays" (
	"name" text PRIMARY KEY NOT NULL,
	"position" bigint NOT NULL,
	"updated_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "ledger_event_retention" (
	"singleton" boolean PRIMARY KEY DEFAULT true NOT NULL,
	"pruned_before" timestamp with time zone,
	CONSTRAINT "ledger_event_retention_one_row" CHECK ("ledger_event_retention"."singleton")
);
--> statement-breakpoint
CREATE TABLE "ledger_events" (
	"position" bigint PRIMARY KEY NOT NULL,
	"id" uuid NOT NULL,
	"type" text NOT NULL,
	"version" integer NOT NULL,
	"occurred_at" timestamp with time zone NOT NULL,
	"app" text NOT NULL,
	"owner_id" text NOT NULL,
	"sequence" bigint NOT NULL,
	"entry_id" bigint NOT NULL,
	"request_id" text,
	"data" jsonb NOT NULL
);
--> statement-breakpoint
CREATE INDEX "ledger_events_owner" ON "ledger_events" USING btree ("owner_id","position");
--> statement-breakpoint
-- No entry may be written between the backfill and the counter below (a process of the previous version,
-- during a rolling deploy): writers wait until this migration commits. Stop the previous version's
-- processes before it runs: their writes after it would have no events.
LOCK TABLE "ledger_entries" IN EXCLUSIVE MODE;
--> statement-breakpoint
INSERT INTO "ledger_events" ("position", "id", "type", "version", "occurred_at", "app", "owner_id", "sequence", "entry_id", "request_id", "data")
SELECT row_number() OVER (ORDER BY e.id), gen_random_uuid(), 'entry.created', 1, e.created_at, e.app, e.owner_id, e.sequence, e.id, NULL,
  jsonb_strip_nulls(jsonb_build_object(
    'app', e.app, 'operation', e.operation, 'owner_id', e.owner_id, 'amount', e.amount,
    'balance_after', e.balance_after, 'sequence', e.sequence, 'nonce', e.nonce,
    'created_at', to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'expires_at', to_char(e.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'hold_id', e.hold_id, 'reverses', e.reverses, 'counterparty_owner_id', e.counterparty_owner_id,
    'reason', e.reason,
    'balance', e.balance_after, 'available', e.balance_after - e.held_after, 'held', e.held_after))
FROM "ledger_entries" e;
--> statement-breakpoint
INSERT INTO "ledger_event_counter" ("singleton", "last_position", "backfilled_through")
SELECT true, count(*), coalesce(max(entry_id), 0) FROM "ledger_events";
--> statement-breakpoint
INSERT INTO "ledger_event_retention" ("singleton", "pruned_before") VALUES (true, NULL);
--> statement-breakpoint
CREATE FUNCTION ledger_refuse_event_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'ledger events are append-only: % on % is refused', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'restrict_violation', HINT = 'only the retention prune deletes events';
END;
$$;
--> statement-breakpoint
CREATE TRIGGER ledger_events_append_only
  BEFORE UPDATE ON ledger_events
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_event_change();
--> statement-breakpoint
CREATE TRIGGER ledger_events_no_truncate
  BEFORE TRUNCATE ON ledger_events
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_event_change();
