DROP INDEX "session_events_session_idx";--> statement-breakpoint
DROP INDEX "session_events_at_idx";--> statement-breakpoint
DROP INDEX "sessions_owner_idx";--> statement-breakpoint
CREATE INDEX "session_events_session_changes_idx" ON "session_events" USING btree ("session_id","at") WHERE "session_events"."type" in ('DATA_UPDATED', 'EXTENDED');--> statement-breakpoint
CREATE INDEX "session_events_at_brin_idx" ON "session_events" USING brin ("at");