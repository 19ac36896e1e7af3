#!/usr/bin/env bash
# Event-producing writes against the same writes without sequencing (issue #14), with pgbench.
#
#   scripts/bench-event-writes.sh [postgres://postgres@127.0.0.1:5432]   (a server, not a database)
#
# Creates a scratch database (evbench_<pid>), applies drizzle/*.sql to it, and measures, with
# BENCH_CLIENTS (16) clients for BENCH_SECONDS (8) each, a one-row insert into session_events:
#   plain    - a copy of the table (same columns, indexes and foreign key), nothing numbers it;
#   trigger  - a copy with the commit trigger of migrations 0005/0007 (numbering at commit under
#              per-scope advisory locks, NOTIFY in the commit): how events were numbered before;
#   sweeper  - the table itself, numbered after commit by session_events_sequence_pending
#              (migration 0009), with one more client sweeping as the service's sequencer does.
# Each in one product/env and spread over 1,000 envs. Prints tps and the ratio to plain, checks
# that the sweeper numbered every row with ids 1..n per scope, and drops the database.
set -euo pipefail
cd "$(dirname "$0")/.."

SERVER="${1:-postgres://postgres@127.0.0.1:5432}"
CLIENTS="${BENCH_CLIENTS:-16}"
SECONDS_EACH="${BENCH_SECONDS:-8}"
DB="evbench_$$"
URL="$SERVER/$DB"
WORK="$(mktemp -d)"
trap 'psql -q "$SERVER/postgres" -c "drop database if exists $DB with (force)" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

psql -q "$SERVER/postgres" -c "create database $DB" >/dev/null
for f in drizzle/0*.sql; do psql -q -v ON_ERROR_STOP=1 "$URL" -f "$f" >/dev/null; done

psql -q -v ON_ERROR_STOP=1 "$URL" >/dev/null <<'SQL'
INSERT INTO products (id, tag, name, envs)
VALUES ('00000000-0000-0000-0000-00000000e0e0', 'evbench', 'evbench', '{dev}');

CREATE TABLE plain_events (LIKE session_events INCLUDING DEFAULTS INCLUDING INDEXES);
ALTER TABLE plain_events ADD FOREIGN KEY (product_id) REFERENCES products(id) ON DELETE CASCADE;

CREATE TABLE trigger_events (LIKE session_events INCLUDING DEFAULTS INCLUDING INDEXES);
ALTER TABLE trigger_events ADD FOREIGN KEY (product_id) REFERENCES products(id) ON DELETE CASCADE;
CREATE TABLE trigger_counters (LIKE session_event_counters INCLUDING ALL);
ALTER TABLE trigger_counters ADD FOREIGN KEY (product_id) REFERENCES products(id) ON DELETE CASCADE;
CREATE INDEX ON trigger_events (xid) WHERE seq IS NULL;
-- Migration 0007's function, on the copies.
CREATE FUNCTION trigger_events_sequence() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  scope record;
  top bigint;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM trigger_events WHERE seq IS NULL AND xid = pg_current_xact_id()) THEN
    RETURN NULL;
  END IF;
  FOR scope IN
    SELECT product_id, env, count(*) AS n, hashtextextended(product_id::text || '|' || env, 0) AS k
    FROM trigger_events WHERE seq IS NULL AND xid = pg_current_xact_id()
    GROUP BY product_id, env ORDER BY k
  LOOP
    PERFORM pg_advisory_xact_lock(scope.k);
    INSERT INTO trigger_counters AS c (product_id, env, last_seq)
    VALUES (scope.product_id, scope.env, scope.n)
    ON CONFLICT (product_id, env) DO UPDATE SET last_seq = c.last_seq + excluded.last_seq
    RETURNING c.last_seq INTO top;
    UPDATE trigger_events e SET seq = top - scope.n + s.rn
    FROM (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM trigger_events
          WHERE seq IS NULL AND xid = pg_current_xact_id()
            AND product_id = scope.product_id AND env = scope.env) s
    WHERE e.id = s.id;
    PERFORM pg_notify('evbench', json_build_object('productId', scope.product_id, 'env', scope.env)::text);
  END LOOP;
  RETURN NULL;
END;
$$;
CREATE CONSTRAINT TRIGGER trigger_events_sequence AFTER INSERT ON trigger_events
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION trigger_events_sequence();
SQL

write_script() { # table, envs
  cat >"$WORK/$1-$2.sql" <<EOF
\set e random(1, $2)
INSERT INTO $1 (product_id, env, session_id, tag, identifier, type)
VALUES ('00000000-0000-0000-0000-00000000e0e0', 'e' || :e, gen_random_uuid(), 'bench', 'u', 'STARTED');
EOF
}
cat >"$WORK/sweep.sql" <<'EOF'
SELECT session_events_sequence_pending(5000);
\sleep 1 ms
EOF

run() { # table, envs -> tps
  write_script "$1" "$2"
  local sweeper=""
  if [ "$1" = session_events ]; then
    pgbench -n -c 1 -T "$SECONDS_EACH" -f "$WORK/sweep.sql" "$URL" >"$WORK/sweeper.out" 2>&1 &
    sweeper=$!
  fi
  pgbench -n -c "$CLIENTS" -j 2 -T "$SECONDS_EACH" -f "$WORK/$1-$2.sql" "$URL" 2>/dev/null |
    sed -n 's/^tps = \([0-9.]*\).*/\1/p'
  if [ -n "$sweeper" ]; then wait "$sweeper"; fi
}

printf '%-8s %6s %10s %8s\n' writes envs tps ratio
for envs in 1 1000; do
  plain=$(run plain_events "$envs")
  trig=$(run trigger_events "$envs")
  sweep=$(run session_events "$envs")
  for row in "plain $plain" "trigger $trig" "sweeper $sweep"; do
    set -- $row
    printf '%-8s %6s %10.0f %8.2f\n' "$1" "$envs" "$2" "$(echo "$2 / $plain" | bc -l)"
  done
done

# Whatever the last sweep left is numbered now; then every scope must be 1..n without a gap.
psql -q "$URL" -Atc "select session_events_sequence_pending(2147483647)" >/dev/null
psql -q -v ON_ERROR_STOP=1 "$URL" -At <<'SQL'
SELECT CASE WHEN bool_and(unnumbered = 0 AND n = maxseq AND n = distinct_seq)
       THEN 'check: every sweeper row numbered, 1..n per scope, no gap, no duplicate'
       ELSE 'check FAILED' END
FROM (SELECT env, count(*) AS n, max(seq) AS maxseq, count(DISTINCT seq) AS distinct_seq,
             count(*) FILTER (WHERE seq IS NULL) AS unnumbered
      FROM session_events GROUP BY env) s;
SQL
