-- Event ids in commit order, without serialising writers for their whole transaction.
-- A deferred constraint trigger runs inside COMMIT: it takes the per-scope advisory locks of
-- the transaction's events (in a fixed order, so two writers never deadlock), draws their
-- sequence numbers, and queues the NOTIFY. The locks are released only after the commit is
-- durable and visible, so a reader that sees seq N has already seen every N' < N of its scope.
CREATE SEQUENCE IF NOT EXISTS "session_events_seq";
--> statement-breakpoint
UPDATE "session_events" SET "seq" = s.n
FROM (SELECT "id", nextval('session_events_seq') AS n FROM (SELECT "id" FROM "session_events" WHERE "seq" IS NULL ORDER BY "id") o) s
WHERE "session_events"."id" = s."id";
--> statement-breakpoint
CREATE OR REPLACE FUNCTION "session_events_sequence"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  scope record;
BEGIN
  -- The first row's trigger does the whole transaction; the others find nothing left to do.
  IF NOT EXISTS (SELECT 1 FROM "session_events" WHERE "seq" IS NULL AND "xid" = pg_current_xact_id()) THEN
    RETURN NULL;
  END IF;
  FOR scope IN
    SELECT DISTINCT "product_id", "env", hashtextextended("product_id"::text || '|' || "env", 0) AS k
    FROM "session_events" WHERE "seq" IS NULL AND "xid" = pg_current_xact_id()
    ORDER BY k
  LOOP
    PERFORM pg_advisory_xact_lock(scope.k);
    PERFORM pg_notify('session_service_events', json_build_object('productId', scope."product_id", 'env', scope."env")::text);
  END LOOP;
  UPDATE "session_events" e SET "seq" = s.n
  FROM (
    SELECT "id", nextval('session_events_seq') AS n
    FROM (SELECT "id" FROM "session_events" WHERE "seq" IS NULL AND "xid" = pg_current_xact_id() ORDER BY "id") o
  ) s
  WHERE e."id" = s."id";
  RETURN NULL;
END;
$$;
--> statement-breakpoint
DROP TRIGGER IF EXISTS "session_events_sequence" ON "session_events";
--> statement-breakpoint
CREATE CONSTRAINT TRIGGER "session_events_sequence"
AFTER INSERT ON "session_events"
DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW EXECUTE FUNCTION "session_events_sequence"();
