CREATE TABLE "activity_log_counters" (
	"product_id" uuid NOT NULL,
	"env" text NOT NULL,
	"last_seq" bigint NOT NULL,
	CONSTRAINT "activity_log_counters_product_id_env_pk" PRIMARY KEY("product_id","env")
);
--> statement-breakpoint
CREATE TABLE "session_event_counters" (
	"product_id" uuid NOT NULL,
	"env" text NOT NULL,
	"last_seq" bigint NOT NULL,
	CONSTRAINT "session_event_counters_product_id_env_pk" PRIMARY KEY("product_id","env")
);
--> statement-breakpoint
DROP INDEX "activity_log_scope_idx";--> statement-breakpoint
DROP INDEX "activity_log_tag_idx";--> statement-breakpoint
ALTER TABLE "activity_log" ADD COLUMN "seq" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "activity_log_counters" ADD CONSTRAINT "activity_log_counters_product_id_products_id_fk" FOREIGN KEY ("product_id") REFERENCES "public"."products"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "session_event_counters" ADD CONSTRAINT "session_event_counters_product_id_products_id_fk" FOREIGN KEY ("product_id") REFERENCES "public"."products"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "activity_log_scope_idx" ON "activity_log" USING btree ("product_id","env","at","seq");--> statement-breakpoint
CREATE INDEX "activity_log_tag_idx" ON "activity_log" USING btree ("product_id","env","tag","at","seq");
--> statement-breakpoint
-- Hand-written: existing activity rows numbered per product and env, in the order they were
-- written, and each scope's counter set to its last number.
UPDATE "activity_log" a SET "seq" = s.n
FROM (SELECT "id", row_number() OVER (PARTITION BY "product_id", "env" ORDER BY "id") AS n FROM "activity_log") s
WHERE a."id" = s."id";
--> statement-breakpoint
INSERT INTO "activity_log_counters" ("product_id", "env", "last_seq")
SELECT "product_id", "env", max("seq") FROM "activity_log" GROUP BY 1, 2
ON CONFLICT DO NOTHING;
--> statement-breakpoint
-- Hand-written: event ids numbered per product and env instead of from one global sequence,
-- so that the ids a product sees (events, `latestSessionEventId`, `after`) count only its own
-- events. Existing events keep their ids, and each scope's counter starts at its largest id, so
-- a subscriber resuming with an id it already holds misses nothing and gets nothing twice.
INSERT INTO "session_event_counters" ("product_id", "env", "last_seq")
SELECT "product_id", "env", max("seq") FROM "session_events" WHERE "seq" IS NOT NULL GROUP BY 1, 2
ON CONFLICT DO NOTHING;
--> statement-breakpoint
-- The commit trigger of 0005, drawing from the scope's counter: under the scope's advisory lock
-- (taken in a fixed order), the counter row is advanced by the transaction's events of that
-- scope and they are numbered in insertion order. The counter's row lock is held to the commit,
-- like the advisory lock, so ids still follow commit order within a scope.
CREATE OR REPLACE FUNCTION "session_events_sequence"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  scope record;
  top bigint;
BEGIN
  -- The first row's trigger does the whole transaction; the others find nothing left to do.
  IF NOT EXISTS (SELECT 1 FROM "session_events" WHERE "seq" IS NULL AND "xid" = pg_current_xact_id()) THEN
    RETURN NULL;
  END IF;
  FOR scope IN
    SELECT "product_id", "env", count(*) AS n,
           hashtextextended("product_id"::text || '|' || "env", 0) AS k
    FROM "session_events" WHERE "seq" IS NULL AND "xid" = pg_current_xact_id()
    GROUP BY "product_id", "env"
    ORDER BY k
  LOOP
    PERFORM pg_advisory_xact_lock(scope.k);
    INSERT INTO "session_event_counters" AS c ("product_id", "env", "last_seq")
    VALUES (scope."product_id", scope."env", scope.n)
    ON CONFLICT ("product_id", "env") DO UPDATE SET "last_seq" = c."last_seq" + excluded."last_seq"
    RETURNING c."last_seq" INTO top;
    UPDATE "session_events" e SET "seq" = top - scope.n + s.rn
    FROM (
      SELECT "id", row_number() OVER (ORDER BY "id") AS rn
      FROM "session_events"
      WHERE "seq" IS NULL AND "xid" = pg_current_xact_id()
        AND "product_id" = scope."product_id" AND "env" = scope."env"
    ) s
    WHERE e."id" = s."id";
    PERFORM pg_notify('session_service_events', json_build_object('productId', scope."product_id", 'env', scope."env")::text);
  END LOOP;
  RETURN NULL;
END;
$$;
--> statement-breakpoint
DROP SEQUENCE IF EXISTS "session_events_seq";
