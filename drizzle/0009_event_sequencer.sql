DROP INDEX "session_events_unsequenced_idx";--> statement-breakpoint
CREATE INDEX "session_events_pending_idx" ON "session_events" USING btree ("id") WHERE "session_events"."seq" is null;--> statement-breakpoint
-- Hand-written: events are numbered after their writer's commit instead of inside it. The commit
-- trigger of 0005/0007 held a per-scope advisory lock and the counter's row lock through the WAL
-- flush, and queued a NOTIFY, whose commit takes a database-wide lock: every event-producing
-- write of the database committed one at a time. Now a writer only inserts its rows (seq null)
-- and commits; a sweep (below), run by the service after event writes and on a timer, numbers
-- what has committed since the last sweep and sends one NOTIFY per scope.
DROP TRIGGER IF EXISTS "session_events_sequence" ON "session_events";
--> statement-breakpoint
DROP FUNCTION IF EXISTS "session_events_sequence"();
--> statement-breakpoint
-- Numbers up to max_rows committed, unnumbered events, oldest id first, per product and env from
-- its counter, and notifies each scope; returns how many it numbered (max_rows: call again).
-- Sweeps of the whole database run one at a time (the transaction-level advisory lock, released
-- only once the sweep's commit is visible), and each statement reads a snapshot taken after the
-- lock, so:
-- - only committed rows are numbered, and a sweep sees every number the previous one gave: a
--   reader that sees id N of a scope has seen every id below N (no cursor skips a late commit);
-- - a row a sweep did not see committed after that sweep's snapshot, so it gets a higher number
--   than everything the sweep numbered: ids follow commit order, except between transactions
--   that committed between the same two sweeps, which are ordered by insertion (a transaction
--   that began after another committed always inserted later, so its events come after).
CREATE OR REPLACE FUNCTION "session_events_sequence_pending"("max_rows" integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  scope record;
  total integer := 0;
BEGIN
  PERFORM pg_advisory_xact_lock(7453201999);
  FOR scope IN
    WITH pending AS (
      SELECT p."id", p."product_id", p."env",
             row_number() OVER (PARTITION BY p."product_id", p."env" ORDER BY p."id") AS rn
      FROM (
        SELECT e."id", e."product_id", e."env" FROM "session_events" e
        WHERE e."seq" IS NULL
        ORDER BY e."id"
        LIMIT "max_rows"
      ) p
    ), counts AS (
      SELECT "product_id", "env", count(*) AS n FROM pending GROUP BY "product_id", "env"
    ), bumped AS (
      INSERT INTO "session_event_counters" AS c ("product_id", "env", "last_seq")
      SELECT "product_id", "env", n FROM counts
      ON CONFLICT ("product_id", "env") DO UPDATE SET "last_seq" = c."last_seq" + excluded."last_seq"
      RETURNING c."product_id", c."env", c."last_seq"
    ), numbered AS (
      UPDATE "session_events" e SET "seq" = b."last_seq" - k.n + p.rn
      FROM pending p
      JOIN counts k ON k."product_id" = p."product_id" AND k."env" = p."env"
      JOIN bumped b ON b."product_id" = p."product_id" AND b."env" = p."env"
      WHERE e."id" = p."id"
      RETURNING e."product_id", e."env"
    )
    SELECT "product_id", "env", count(*) AS n FROM numbered GROUP BY "product_id", "env"
  LOOP
    total := total + scope.n;
    PERFORM pg_notify('session_service_events', json_build_object('productId', scope."product_id", 'env', scope."env")::text);
  END LOOP;
  RETURN total;
END;
$$;
--> statement-breakpoint
-- Whatever the old trigger left unnumbered (writers in flight during the upgrade) is numbered now.
SELECT "session_events_sequence_pending"(2147483647);
--> statement-breakpoint
-- Rate limit counters shared by the instances (src/security/rate-limits.ts); hand-edited to
-- UNLOGGED: no crash safety needed, and no WAL flush per counted call.
CREATE UNLOGGED TABLE "rate_limit_counters" (
	"key" text PRIMARY KEY NOT NULL,
	"points" integer NOT NULL,
	"expire" timestamp with time zone
);
--> statement-breakpoint
CREATE INDEX "rate_limit_counters_expire_idx" ON "rate_limit_counters" USING btree ("expire");