#!/usr/bin/env bash
# A production-like Postgres topology on spare ports, for failover tests: a primary (node A), a
# synchronous streaming standby (node B, `synchronous_standby_names = '*'`) and pgbouncer in
# transaction pool mode in front of node A, all on 127.0.0.1, made from the PostgreSQL 15 binaries.
#
#   scripts/pg-topology.sh up                 start it; prints PRIMARY_URL=, STANDBY_URL=,
#                                             MULTIHOST_URL=, POOLER_URL= on stdout
#   scripts/pg-topology.sh status             which node is primary, which standby, pgbouncer
#   scripts/pg-topology.sh failover [delay]   kill -9 the primary (postmaster and backends), wait
#                                             `delay` seconds (default 1), promote the standby and
#                                             drop synchronous_standby_names (as Patroni does with
#                                             no synchronous candidate left); prints KILLED_AT=,
#                                             PROMOTED_AT= (epoch ms) and PRIMARY_PORT=
#   scripts/pg-topology.sh rebuild            re-create the node that is not the primary as a
#                                             synchronous standby of the primary
#   scripts/pg-topology.sh down               stop everything and remove PGTOPO_DIR (idempotent)
#
# Environment: PGTOPO_DIR (/tmp/pg-topology), PGTOPO_PORT_A (5434), PGTOPO_PORT_B (5435),
# PGTOPO_PORT_POOLER (6434), PGTOPO_TIMEOUT (60, seconds, the deadline of every wait),
# PGTOPO_BIN (/usr/lib/postgresql/15/bin), PGTOPO_PGBOUNCER (pgbouncer on PATH or /usr/sbin).
# Run as root, the servers run as the `postgres` OS user (runuser); otherwise as the caller.
# Only stdout's KEY=VALUE lines are meant for callers; progress goes to stderr.
#
# Layout of PGTOPO_DIR: A/ and B/ (data directories), run/ (unix sockets), log/ (server logs),
# pgbouncer/ (ini, auth file, pid and log), .pg-topology (marks the directory as ours for `down`).
# Each node's settings are in <data>/topology.conf, included from postgresql.conf and rewritten
# after every pg_basebackup (the copy carries the other node's port). synchronous_standby_names
# lives in postgresql.auto.conf (ALTER SYSTEM): '*' once a standby is attached, '' after failover.
set -euo pipefail

DIR="${PGTOPO_DIR:-/tmp/pg-topology}"
PORT_A="${PGTOPO_PORT_A:-5434}"
PORT_B="${PGTOPO_PORT_B:-5435}"
PORT_POOLER="${PGTOPO_PORT_POOLER:-6434}"
TIMEOUT="${PGTOPO_TIMEOUT:-60}"
BIN="${PGTOPO_BIN:-/usr/lib/postgresql/15/bin}"
PGBOUNCER="${PGTOPO_PGBOUNCER:-$(command -v pgbouncer || echo /usr/sbin/pgbouncer)}"

# libpq settings of the caller (PGOPTIONS, PGSSLMODE, PGTARGETSESSIONATTRS...) must not reach
# our psql/pg_basebackup calls; every connection below names host, port, user and database.
while IFS= read -r var; do
  [[ "$var" == PGTOPO_* ]] || unset "$var"
done < <(compgen -e | grep '^PG' || true)
export PGCONNECT_TIMEOUT=5

log() { printf 'pg-topology: %s\n' "$*" >&2; }
die() {
  printf 'pg-topology: error: %s\n' "$*" >&2
  exit 1
}
now_ms() { date +%s%3N; }

for p in "$PORT_A" "$PORT_B" "$PORT_POOLER" "$TIMEOUT"; do
  [[ "$p" =~ ^[0-9]+$ ]] || die "not a number: '$p' (PGTOPO_PORT_A/B/POOLER, PGTOPO_TIMEOUT)"
done
[[ "$PORT_A" != "$PORT_B" && "$PORT_A" != "$PORT_POOLER" && "$PORT_B" != "$PORT_POOLER" ]] ||
  die "PGTOPO_PORT_A, PGTOPO_PORT_B and PGTOPO_PORT_POOLER must differ"
[[ -n "$DIR" ]] || die "PGTOPO_DIR is empty"
DIR="$(realpath -m -- "$DIR")"
[[ "$DIR" != "/" ]] || die "PGTOPO_DIR must not be /"
# Running as root, the servers run as postgres; the working directory may be one it cannot read.
cd /

if [[ "$(id -u)" -eq 0 ]]; then
  RUN_AS=(runuser -u postgres --)
  OWNER="postgres"
else
  RUN_AS=()
  OWNER=""
fi
as_pg() { "${RUN_AS[@]}" "$@"; }
own() { if [[ -n "$OWNER" ]]; then chown -R "$OWNER:" "$@"; fi; }

MARKER="$DIR/.pg-topology"
RUN_DIR="$DIR/run"
LOG_DIR="$DIR/log"
BOUNCER_DIR="$DIR/pgbouncer"
BOUNCER_PID="$BOUNCER_DIR/pgbouncer.pid"

port_of() { if [[ "$1" == A ]]; then echo "$PORT_A"; else echo "$PORT_B"; fi; }
other() { if [[ "$1" == A ]]; then echo B; else echo A; fi; }
datadir() { echo "$DIR/$1"; }
url() { echo "postgres://postgres@127.0.0.1:$1/app"; }

# psql against a node: sql PORT SQL [DATABASE]; unaligned, tuples only.
sql() {
  "$BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U postgres -d "${3:-postgres}" -c "$2"
}

# wait_until DESCRIPTION COMMAND...: polls COMMAND until it succeeds, failing after TIMEOUT s.
wait_until() {
  local what="$1" deadline=$((SECONDS + TIMEOUT))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || die "timed out after ${TIMEOUT}s waiting for $what"
    sleep 0.1
  done
}

# role NODE: primary, standby or down.
role() {
  local r
  r="$(sql "$(port_of "$1")" 'select pg_is_in_recovery()' 2>/dev/null)" || r=""
  case "$r" in
    f) echo primary ;;
    t) echo standby ;;
    *) echo down ;;
  esac
}

# The node that answers as a primary; fails when none or both do.
current_primary() {
  local ra rb
  ra="$(role A)"
  rb="$(role B)"
  if [[ "$ra" == primary && "$rb" == primary ]]; then
    die "both nodes answer as primary (ports $PORT_A and $PORT_B)"
  elif [[ "$ra" == primary ]]; then
    echo A
  elif [[ "$rb" == primary ]]; then
    echo B
  else
    die "no node answers as primary (A on $PORT_A: $ra, B on $PORT_B: $rb)"
  fi
}

is_ready() { "$BIN/pg_isready" -q -h 127.0.0.1 -p "$1" -U postgres -d postgres -t 2; }
port_in_use() { (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Pids of the processes whose working directory is DIR: a postmaster and all its children
# chdir to the data directory, so this finds every process of a node, orphans included.
pids_in() {
  local pat="$1"
  pat="${pat//\\/\\\\}"
  pat="${pat//\*/\\*}"
  pat="${pat//\?/\\?}"
  pat="${pat//\[/\\[}"
  find /proc -mindepth 2 -maxdepth 2 -path '/proc/[0-9]*/cwd' -lname "$pat" -printf '%h\n' 2>/dev/null |
    sed 's|^/proc/||' || true
}
no_pids_in() { [[ -z "$(pids_in "$1")" ]]; }

# Removes the node's System V shared memory segment (key and id on line 7 of postmaster.pid)
# once nothing is attached to it: a postmaster killed with -9 leaves it behind.
remove_shmem() {
  local pidfile="$1" key id line
  [[ -f "$pidfile" ]] || return 0
  read -r key id <<<"$(sed -n 7p "$pidfile")" || true
  [[ "${key:-}" =~ ^[0-9]+$ && "${id:-}" =~ ^[0-9]+$ ]] || return 0
  line="$(ipcs -m 2>/dev/null | awk -v id="$id" '$2 == id { print $1, $6 }')" || true
  if [[ "$line" == "$(printf '0x%08x' "$key") 0" ]]; then ipcrm -m "$id" 2>/dev/null || true; fi
}

# kill_node NODE: kill -9 every process of the node (postmaster stopped first, so it forks no
# more backends), then waits until none is left. Prints nothing; sets KILLED_MS.
KILLED_MS=""
kill_node() {
  local dir pm pids
  dir="$(datadir "$1")"
  pm="$(head -n 1 "$dir/postmaster.pid" 2>/dev/null)" || pm=""
  if [[ "$pm" =~ ^[0-9]+$ && "$(readlink "/proc/$pm/cwd" 2>/dev/null)" == "$dir" ]]; then
    kill -STOP "$pm" 2>/dev/null || true
  fi
  pids="$(pids_in "$dir")"
  # shellcheck disable=SC2086 # one pid per word
  if [[ -n "$pids" ]]; then kill -9 $pids 2>/dev/null || true; fi
  KILLED_MS="$(now_ms)"
  wait_until "the processes of node $1 (port $(port_of "$1")) to exit" no_pids_in "$dir"
  remove_shmem "$dir/postmaster.pid"
}

# stop_node NODE: pg_ctl stop -m immediate when it runs, then kills whatever is left.
stop_node() {
  local dir
  dir="$(datadir "$1")"
  if [[ -f "$dir/postmaster.pid" ]]; then
    as_pg "$BIN/pg_ctl" stop -D "$dir" -m immediate -w -t "$TIMEOUT" >/dev/null 2>&1 || true
  fi
  if [[ -d "$dir" ]]; then kill_node "$1"; fi
}

# write_conf NODE: the node's own settings (the port differs between the two).
write_conf() {
  local node="$1" dir
  dir="$(datadir "$node")"
  cat >"$dir/topology.conf" <<EOF
# Written by scripts/pg-topology.sh for node $node.
listen_addresses = '127.0.0.1'
port = $(port_of "$node")
unix_socket_directories = '$RUN_DIR'
cluster_name = 'pgtopo_${node}_$(port_of "$node")'
max_connections = 100
shared_buffers = 16MB
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = 256MB
hot_standby = on
synchronous_commit = on
fsync = on
logging_collector = off
log_line_prefix = '%m [%p] node_$node '
EOF
  own "$dir/topology.conf"
}

start_node() {
  local node="$1" port
  port="$(port_of "$node")"
  ! port_in_use "$port" || die "port $port (node $node) is already in use"
  log "starting node $node on port $port"
  as_pg "$BIN/pg_ctl" start -D "$(datadir "$node")" -l "$LOG_DIR/$node.log" -w -t "$TIMEOUT" >/dev/null ||
    die "node $node (port $port) did not start within ${TIMEOUT}s; see $LOG_DIR/$node.log"
  wait_until "node $node (port $port) to accept connections" is_ready "$port"
}

# make_standby NODE PRIMARY: a fresh copy of PRIMARY, streaming from it as application node_NODE.
make_standby() {
  local node="$1" primary="$2" dir
  dir="$(datadir "$node")"
  rm -rf "$dir"
  log "pg_basebackup of node $node from node $primary (port $(port_of "$primary"))"
  as_pg "$BIN/pg_basebackup" -D "$dir" -R -X stream -c fast --no-sync \
    -d "host=127.0.0.1 port=$(port_of "$primary") user=postgres application_name=node_$node" ||
    die "pg_basebackup of node $node from node $primary failed"
  write_conf "$node"
  start_node "$node"
}

repl_state() { # repl_state PRIMARY STANDBY: "state sync_state" of STANDBY in PRIMARY's view
  sql "$(port_of "$1")" \
    "select state || ' ' || sync_state from pg_stat_replication where application_name = 'node_$2'" \
    2>/dev/null || true
}
is_streaming() { [[ "$(repl_state "$1" "$2")" == "streaming "* ]]; }
is_sync() { [[ "$(repl_state "$1" "$2")" == "streaming sync" ]]; }

set_sync_names() { # set_sync_names NODE VALUE
  local port
  port="$(port_of "$1")"
  sql "$port" "alter system set synchronous_standby_names = '$2'" >/dev/null
  sql "$port" 'select pg_reload_conf()' >/dev/null
  wait_until "synchronous_standby_names = '$2' on node $1 (port $port)" \
    sync_names_are "$port" "$2"
}
sync_names_are() { [[ "$(sql "$1" 'show synchronous_standby_names' 2>/dev/null)" == "$2" ]]; }

# attach_sync PRIMARY STANDBY: waits until STANDBY streams, makes it synchronous, waits for that.
attach_sync() {
  local primary="$1" standby="$2"
  wait_until "node $standby to stream from node $primary (pg_stat_replication on port $(port_of "$primary"))" \
    is_streaming "$primary" "$standby"
  set_sync_names "$primary" '*'
  wait_until "node $standby to be the synchronous standby of node $primary (sync_state 'sync')" \
    is_sync "$primary" "$standby"
  log "node $standby streams synchronously from node $primary"
}

bouncer_pid() {
  local pid
  pid="$(cat "$BOUNCER_PID" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ && "$(cat "/proc/$pid/comm" 2>/dev/null)" == pgbouncer ]] || return 1
  echo "$pid"
}
bouncer_gone() { ! bouncer_pid >/dev/null; }
pooler_answers() {
  [[ "$(sql "$PORT_POOLER" 'select 1' app 2>/dev/null)" == 1 ]]
}

start_bouncer() {
  ! port_in_use "$PORT_POOLER" || die "port $PORT_POOLER (pgbouncer) is already in use"
  [[ -x "$PGBOUNCER" ]] || die "pgbouncer not found ($PGBOUNCER); apt-get install -y pgbouncer"
  mkdir -p "$BOUNCER_DIR"
  echo '"postgres" ""' >"$BOUNCER_DIR/userlist.txt"
  cat >"$BOUNCER_DIR/pgbouncer.ini" <<EOF
[databases]
app = host=127.0.0.1 port=$PORT_A dbname=app user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PORT_POOLER
unix_socket_dir = $RUN_DIR
auth_type = trust
auth_file = $BOUNCER_DIR/userlist.txt
admin_users = postgres
pool_mode = transaction
default_pool_size = 20
max_client_conn = 500
server_reset_query =
ignore_startup_parameters = extra_float_digits
pidfile = $BOUNCER_PID
logfile = $BOUNCER_DIR/pgbouncer.log
EOF
  own "$BOUNCER_DIR"
  log "starting pgbouncer on port $PORT_POOLER (transaction pooling, app -> port $PORT_A)"
  as_pg "$PGBOUNCER" -d -q "$BOUNCER_DIR/pgbouncer.ini" ||
    die "pgbouncer did not start; see $BOUNCER_DIR/pgbouncer.log"
  wait_until "pgbouncer (port $PORT_POOLER) to answer select 1 on app" pooler_answers
}

stop_bouncer() {
  local pid
  if pid="$(bouncer_pid)"; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while ! bouncer_gone && ((SECONDS < deadline)); do sleep 0.1; done
    if pid="$(bouncer_pid)"; then kill -9 "$pid" 2>/dev/null || true; fi
    wait_until "pgbouncer (pid $pid) to exit" bouncer_gone
  fi
}

dump_logs() {
  local f
  for f in "$LOG_DIR"/*.log "$BOUNCER_DIR/pgbouncer.log"; do
    [[ -f "$f" ]] || continue
    printf -- '--- last lines of %s\n' "$f" >&2
    tail -n 20 "$f" >&2 || true
  done
}

cmd_up() {
  if [[ -d "$DIR" && -n "$(ls -A "$DIR")" ]]; then
    die "$DIR is not empty (already up? run: PGTOPO_DIR=$DIR $0 down)"
  fi
  for p in "$PORT_A" "$PORT_B" "$PORT_POOLER"; do
    ! port_in_use "$p" || die "port $p is already in use"
  done
  [[ -x "$PGBOUNCER" ]] || die "pgbouncer not found ($PGBOUNCER); apt-get install -y pgbouncer"
  mkdir -p "$DIR"
  touch "$MARKER"
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  chmod 0755 "$DIR"
  own "$DIR"
  # A failed `up` leaves nothing running (the logs go to stderr first).
  trap 'rc=$?; if ((rc != 0)); then dump_logs; cmd_down || true; fi' EXIT

  log "initdb node A in $DIR/A"
  as_pg "$BIN/initdb" -D "$(datadir A)" -U postgres -A trust -E UTF8 --locale=C --no-sync >/dev/null ||
    die "initdb of node A failed"
  echo "include_if_exists = 'topology.conf'" >>"$(datadir A)/postgresql.conf"
  cat >"$(datadir A)/pg_hba.conf" <<'EOF'
# Written by scripts/pg-topology.sh: trust on the socket and on 127.0.0.1, replication included.
local   all          all                 trust
local   replication  all                 trust
host    all          all   127.0.0.1/32  trust
host    replication  all   127.0.0.1/32  trust
EOF
  own "$(datadir A)/pg_hba.conf"
  write_conf A
  start_node A
  sql "$PORT_A" 'create database app owner postgres' >/dev/null
  make_standby B A
  attach_sync A B
  start_bouncer
  trap - EXIT

  echo "PRIMARY_URL=$(url "$PORT_A")"
  echo "STANDBY_URL=$(url "$PORT_B")"
  echo "MULTIHOST_URL=postgres://postgres@127.0.0.1:$PORT_A,127.0.0.1:$PORT_B/app?target_session_attrs=read-write"
  echo "POOLER_URL=$(url "$PORT_POOLER")"
}

cmd_down() {
  if [[ ! -d "$DIR" ]]; then
    log "$DIR does not exist: nothing to stop"
    return 0
  fi
  if [[ ! -e "$MARKER" && -n "$(ls -A "$DIR")" ]]; then
    die "$DIR was not made by this script (no .pg-topology in it); not removing it"
  fi
  stop_bouncer
  stop_node A
  stop_node B
  rm -rf "$DIR"
  log "down: $DIR removed"
}

cmd_status() {
  if [[ ! -e "$MARKER" ]]; then
    echo "not up ($DIR)"
    return 0
  fi
  local node r primary="" standby="" pid
  for node in A B; do
    r="$(role "$node")"
    if [[ "$r" == primary ]]; then primary="$node"; fi
    if [[ "$r" == standby ]]; then standby="$node"; fi
    echo "node_$node port=$(port_of "$node") role=$r"
  done
  if [[ -n "$primary" && -n "$standby" ]]; then
    echo "replication node_$standby from node_$primary: $(repl_state "$primary" "$standby")"
  fi
  if pid="$(bouncer_pid)"; then
    echo "pgbouncer port=$PORT_POOLER state=running pid=$pid"
  else
    echo "pgbouncer port=$PORT_POOLER state=stopped"
  fi
  echo "PRIMARY_PORT=${primary:+$(port_of "$primary")}"
  echo "STANDBY_PORT=${standby:+$(port_of "$standby")}"
}

cmd_failover() {
  local delay="${1:-1}" old new port killed_at promoted_at
  [[ "$delay" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "failover delay must be a number of seconds: '$delay'"
  old="$(current_primary)"
  new="$(other "$old")"
  port="$(port_of "$new")"
  [[ "$(role "$new")" == standby ]] || die "node $new (port $port) is not a running standby; run rebuild"
  log "killing node $old (port $(port_of "$old")) with kill -9"
  kill_node "$old"
  killed_at="$KILLED_MS"
  ! is_ready "$(port_of "$old")" || die "node $old still answers on port $(port_of "$old") after kill -9"
  log "old primary gone; promoting node $new in ${delay}s"
  sleep "$delay" # the operator's reaction time, deliberately
  # No synchronous candidate is left: writes on the new primary must not wait for one. Set on the
  # standby already (ALTER SYSTEM works in recovery), so the promoted node never blocks a commit.
  set_sync_names "$new" ''
  as_pg "$BIN/pg_ctl" promote -D "$(datadir "$new")" -w -t "$TIMEOUT" >/dev/null ||
    die "pg_ctl promote of node $new (port $port) failed or timed out"
  wait_until "node $new (port $port) to answer select not pg_is_in_recovery()" \
    is_primary_port "$port"
  promoted_at="$(now_ms)"
  # The stale primary_conninfo (-R) would be copied into the next standby by pg_basebackup.
  sql "$port" 'alter system reset primary_conninfo' >/dev/null
  sql "$port" 'select pg_reload_conf()' >/dev/null
  log "node $new (port $port) is the primary"
  echo "KILLED_AT=$killed_at"
  echo "PROMOTED_AT=$promoted_at"
  echo "PRIMARY_PORT=$port"
}
is_primary_port() { [[ "$(sql "$1" 'select not pg_is_in_recovery()' 2>/dev/null)" == t ]]; }

cmd_rebuild() {
  local primary node
  primary="$(current_primary)"
  node="$(other "$primary")"
  log "rebuilding node $node (port $(port_of "$node")) as a standby of node $primary"
  stop_node "$node"
  make_standby "$node" "$primary"
  attach_sync "$primary" "$node"
}

usage() {
  echo "usage: $0 up | down | status | failover [delay-seconds] | rebuild" >&2
  exit 2
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  failover) cmd_failover "${2:-1}" ;;
  rebuild) cmd_rebuild ;;
  *) usage ;;
esac
