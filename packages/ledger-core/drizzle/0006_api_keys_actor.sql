-- API keys and who wrote what. ledger_api_keys holds each key's id, app, scopes, name, rate and the
-- SHA-256 of its secret (never the secret); a revoked key stays, with revoked_at. Entries and their events
-- gain the id of the key that wrote them (actor), and events the W3C trace id of the request (trace_id);
-- both are null for what was written before, with LEDGER_AUTH=off, and by the sweepers. Adding nullable
-- columns rewrites nothing, so the append-only tables stay as they are.
CREATE TABLE "ledger_api_keys" (
	"id" text PRIMARY KEY NOT NULL,
	"app" text NOT NULL,
	"name" text,
	"scopes" text[] NOT NULL,
	"rate_per_s" integer,
	"secret_sha256" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_used_at" timestamp with time zone,
	"revoked_at" timestamp with time zone,
	CONSTRAINT "ledger_api_keys_id_shape" CHECK ("ledger_api_keys"."id" ~ '^[0-9a-f]{16}$'),
	CONSTRAINT "ledger_api_keys_scopes_known" CHECK (cardinality("ledger_api_keys"."scopes") >= 1 and "ledger_api_keys"."scopes" <@ array['read', 'write', 'admin', 'events']::text[]),
	CONSTRAINT "ledger_api_keys_rate_positive" CHECK ("ledger_api_keys"."rate_per_s" is null or "ledger_api_keys"."rate_per_s" between 1 and 100000),
	CONSTRAINT "ledger_api_keys_secret_shape" CHECK ("ledger_api_keys"."secret_sha256" ~ '^[0-9a-f]{64}$')
);
--> statement-breakpoint
ALTER TABLE "ledger_entries" ADD COLUMN "actor" text;--> statement-breakpoint
ALTER TABLE "ledger_events" ADD COLUMN "actor" text;--> statement-breakpoint
ALTER TABLE "ledger_events" ADD COLUMN "trace_id" text;--> statement-breakpoint
CREATE INDEX "ledger_api_keys_app" ON "ledger_api_keys" USING btree ("app","created_at");