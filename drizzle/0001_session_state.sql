ALTER TABLE "session_configs" ADD COLUMN "idle_timeout_seconds" integer;--> statement-breakpoint
ALTER TABLE "session_configs" ADD COLUMN "max_sessions_per_identifier" integer;--> statement-breakpoint
ALTER TABLE "sessions" ADD COLUMN "idle_timeout_seconds" integer;--> statement-breakpoint
ALTER TABLE "sessions" ADD COLUMN "version" integer DEFAULT 1 NOT NULL;--> statement-breakpoint
ALTER TABLE "sessions" ADD COLUMN "expired_at" timestamp with time zone;--> statement-breakpoint
CREATE INDEX "session_events_at_idx" ON "session_events" USING btree ("at");--> statement-breakpoint
CREATE INDEX "sessions_sweep_live_idx" ON "sessions" USING btree ("refresh_expires_at") WHERE "sessions"."revoked_at" is null and "sessions"."expired_at" is null;--> statement-breakpoint
CREATE INDEX "sessions_sweep_idle_idx" ON "sessions" USING btree ("last_active_at") WHERE "sessions"."idle_timeout_seconds" is not null and "sessions"."revoked_at" is null and "sessions"."expired_at" is null;--> statement-breakpoint
CREATE INDEX "sessions_sweep_revoked_idx" ON "sessions" USING btree ("revoked_at") WHERE "sessions"."revoked_at" is not null;--> statement-breakpoint
CREATE INDEX "sessions_sweep_expired_idx" ON "sessions" USING btree ("expired_at") WHERE "sessions"."expired_at" is not null;