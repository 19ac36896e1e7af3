DROP INDEX "session_events_scope_idx";--> statement-breakpoint
ALTER TABLE "session_events" ADD COLUMN "seq" bigint;--> statement-breakpoint
ALTER TABLE "session_events" ADD COLUMN "xid" "xid8" DEFAULT pg_current_xact_id() NOT NULL;--> statement-breakpoint
CREATE UNIQUE INDEX "session_events_scope_seq_idx" ON "session_events" USING btree ("product_id","env","seq") WHERE "session_events"."seq" is not null;--> statement-breakpoint
CREATE INDEX "session_events_unsequenced_idx" ON "session_events" USING btree ("xid") WHERE "session_events"."seq" is null;