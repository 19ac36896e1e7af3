-- The rows every start and refresh writes no longer check their product (and sessions their
-- config) by foreign key: each check locked the product's one row, shared by every concurrent
-- start (see writtenScope in src/db/schema.ts). Products are never deleted, configs only softly.
ALTER TABLE "session_events" DROP CONSTRAINT "session_events_product_id_products_id_fk";
--> statement-breakpoint
ALTER TABLE "session_users" DROP CONSTRAINT "session_users_product_id_products_id_fk";
--> statement-breakpoint
ALTER TABLE "sessions" DROP CONSTRAINT "sessions_product_id_products_id_fk";
--> statement-breakpoint
ALTER TABLE "sessions" DROP CONSTRAINT "sessions_config_id_session_configs_id_fk";
