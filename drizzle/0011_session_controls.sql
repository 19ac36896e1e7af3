CREATE TABLE "session_revocation_watermarks" (
	"product_id" uuid NOT NULL,
	"env" text NOT NULL,
	"tag" text NOT NULL,
	"not_before" timestamp with time zone NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "session_revocation_watermarks_product_id_env_tag_pk" PRIMARY KEY("product_id","env","tag")
);
--> statement-breakpoint
ALTER TABLE "activity_log" ADD COLUMN "actor" text;--> statement-breakpoint
ALTER TABLE "session_events" ADD COLUMN "actor" text;--> statement-breakpoint
ALTER TABLE "sessions" ADD COLUMN "authenticated_at" timestamp with time zone DEFAULT now() NOT NULL;--> statement-breakpoint
-- Sessions started before this migration last proved who they are when they started.
UPDATE "sessions" SET "authenticated_at" = "created_at";--> statement-breakpoint
ALTER TABLE "sessions" ADD COLUMN "actor" text;--> statement-breakpoint
ALTER TABLE "sessions" ADD COLUMN "ends_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "sessions" ADD COLUMN "device_name" text;--> statement-breakpoint
ALTER TABLE "sessions" ADD COLUMN "device_history" jsonb DEFAULT '[]'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "session_revocation_watermarks" ADD CONSTRAINT "session_revocation_watermarks_product_id_products_id_fk" FOREIGN KEY ("product_id") REFERENCES "public"."products"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "sessions_identifier_idx" ON "sessions" USING btree ("product_id","env","identifier","created_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "sessions_scope_started_live_idx" ON "sessions" USING btree ("product_id","env","created_at") WHERE "sessions"."revoked_at" is null;