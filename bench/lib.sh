# lib.sh — what the multi-server benchmark scripts share (bench/replication.sh, bench/cluster.sh):
# a scratch folder cleaned up on exit, Debian's PostgreSQL started on loopback in it (as the tests
# start theirs), servers started on the demo models and waited for until healthy, JSON fields and
# ratios. Sourced, not run; the script sets BUILD and MODELS first.
#
#   . "$repo/bench/lib.sh"; bench_init cluster; start_postgres; start_server a -- --store "$store"
python=/usr/bin/python3
cli=$BUILD/retrace
pgbin=/usr/lib/postgresql/15/bin
pids=()
as_pg=()
[ "$(id -u)" = 0 ] && as_pg=(runuser -u postgres --)  # PostgreSQL refuses to run as root

# bench_init NAME: makes $work, removed (with every server and PostgreSQL stopped) on exit.
bench_init() {
  work=$(mktemp -d "${TMPDIR:-/tmp}/retrace-$1.XXXXXX")
  chmod 755 "$work"
  trap bench_cleanup EXIT
}
stop_servers() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
bench_cleanup() {
  stop_servers
  [ -d "$work/pg" ] && "${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pg" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$work"
}

free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
field() { "$python" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {"d": d}))' "$@"; }
ratio() { "$python" -c "print(f'{$1 / $2:.2f}x')"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

# start_postgres: PostgreSQL on loopback, trust auth for user retrace (nothing but this host can
# reach it); sets $store to its URI and $pg_port.
start_postgres() {
  pg_port=$(free_port)
  mkdir -p "$work/pg" "$work/pg-socket"
  [ ${#as_pg[@]} -gt 0 ] && chown postgres: "$work/pg" "$work/pg-socket"
  "${as_pg[@]}" "$pgbin/initdb" -D "$work/pg" -A trust -U retrace >"$work/initdb.log" 2>&1
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/pg" -w -l "$work/pg-socket/log" \
    -o "-p $pg_port -k $work/pg-socket -c listen_addresses=127.0.0.1" start >/dev/null
  store="postgresql://retrace@127.0.0.1:$pg_port/postgres"
}

# wait_healthy ADDRESS [TRIES]: until the server's health answers SERVING (0.5 s apart).
wait_healthy() {
  for _ in $(seq 1 "${2:-240}"); do
    "$cli" --server "$1" health >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "bench: $1 did not become healthy" >&2
  return 1
}

# start_server NAME [taskset CPU] -- ARGS...: starts a server on the demo models (listening on
# $listen, default a free loopback port) and sets $server to its address and $server_pid. With
# NOWAIT=1 it returns once the process listens, without waiting for health.
start_server() {
  local name=$1; shift
  local pin=()
  if [ "$1" = taskset ]; then pin=(taskset -c "$2"); shift 2; fi
  [ "$1" = -- ] && shift
  rm -f "$work/$name.port"
  "${pin[@]}" "$BUILD/retrace-server" --models "$MODELS" --data-dir "$work/$name-data" \
    --listen "${listen:-127.0.0.1:0}" --port-file "$work/$name.port" --log-level warn "$@" \
    >"$work/$name.log" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
  for _ in $(seq 1 240); do [ -s "$work/$name.port" ] && break; sleep 0.25; done
  server="127.0.0.1:$(cat "$work/$name.port")"
  [ "${NOWAIT:-0}" = 1 ] || wait_healthy "$server"
}
