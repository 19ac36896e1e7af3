CREATE TABLE "activity_log" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"product_id" uuid NOT NULL,
	"env" text NOT NULL,
	"tag" text,
	"operation" text NOT NULL,
	"status" text NOT NULL,
	"error_code" text,
	"duration_ms" double precision NOT NULL,
	"session_id" uuid,
	"identifier" text,
	"at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "activity_rollups" (
	"product_id" uuid NOT NULL,
	"env" text NOT NULL,
	"tag" text NOT NULL,
	"hour" timestamp with time zone NOT NULL,
	"operation" text NOT NULL,
	"successes" integer DEFAULT 0 NOT NULL,
	"failures" integer DEFAULT 0 NOT NULL,
	"duration_ms_total" double precision DEFAULT 0 NOT NULL,
	CONSTRAINT "activity_rollups_product_id_env_tag_hour_operation_pk" PRIMARY KEY("product_id","env","tag","hour","operation")
);
--> statement-breakpoint
CREATE TABLE "session_users" (
	"product_id" uuid NOT NULL,
	"env" text NOT NULL,
	"tag" text NOT NULL,
	"identifier" text NOT NULL,
	"first_seen_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_seen_at" timestamp with time zone DEFAULT now() NOT NULL,
	"total_sessions" integer DEFAULT 0 NOT NULL,
	CONSTRAINT "session_users_product_id_env_tag_identifier_pk" PRIMARY KEY("product_id","env","tag","identifier")
);
--> statement-breakpoint
ALTER TABLE "activity_log" ADD CONSTRAINT "activity_log_product_id_products_id_fk" FOREIGN KEY ("product_id") REFERENCES "public"."products"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "activity_rollups" ADD CONSTRAINT "activity_rollups_product_id_products_id_fk" FOREIGN KEY ("product_id") REFERENCES "public"."products"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "session_users" ADD CONSTRAINT "session_users_product_id_products_id_fk" FOREIGN KEY ("product_id") REFERENCES "public"."products"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "activity_log_scope_idx" ON "activity_log" USING btree ("product_id","env","at","id");--> statement-breakpoint
CREATE INDEX "activity_log_tag_idx" ON "activity_log" USING btree ("product_id","env","tag","at","id");--> statement-breakpoint
CREATE INDEX "session_users_last_seen_idx" ON "session_users" USING btree ("product_id","env","tag","last_seen_at","identifier");