#!/usr/bin/env bash
# cluster.sh — issue 15's figures (sharded cluster), side by side in one run, over one collection
# of CLUSTER_ITEMS random items in PostgreSQL, on the demo models:
#   1. catch-up: a fresh shard server holding every shard (a 1-group map) from the store to
#      SERVING, alone: items/s; then the 2- and 3-group servers starting together;
#   2. QPS: `retrace bench --mix search-embedding=1` against one `--role all` process and against a
#      frontend over 1, 2 and 3 shard groups (one replica each), every server up for the whole
#      run and the configurations taken in turn, rotated each round, for each search mode;
#   3. failover: a frontend over 3 groups x 2 replicas: Search p50/p99 over CLUSTER_FAIL_SECONDS
#      without a kill, against a run where one replica is SIGKILLed a third of the way in.
# The collection has CLUSTER_SHARDS shards (12: an even split over 1, 2 and 3 groups). Where the
# machine has a core per server, CLUSTER_PIN=1 pins each shard server of a map to its own core.
# A benchmark, not a test; the PostgreSQL server is started here on loopback.
#
# Usage: bench/cluster.sh   (after `make build models` and the benchmarks' build:
#          cmake -S . -B build-bench -DRETRACE_BUILD_BENCHMARKS=ON && cmake --build build-bench)
# Environment: BUILD [build], BENCH_BUILD [build-bench], MODELS [$BUILD/models],
#   CLUSTER_ITEMS [1000000], CLUSTER_SHARDS [12], CLUSTER_ROUNDS [2], CLUSTER_SECONDS [15],
#   CLUSTER_CONCURRENCY [8], CLUSTER_MODES ["caption-match provenance"], CLUSTER_FAIL_SECONDS [30],
#   CLUSTER_PIN [0]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
BUILD=${BUILD:-build}
BENCH_BUILD=${BENCH_BUILD:-build-bench}
MODELS=${MODELS:-$BUILD/models}
CLUSTER_ITEMS=${CLUSTER_ITEMS:-1000000}
CLUSTER_SHARDS=${CLUSTER_SHARDS:-12}
CLUSTER_ROUNDS=${CLUSTER_ROUNDS:-2}
CLUSTER_SECONDS=${CLUSTER_SECONDS:-15}
CLUSTER_CONCURRENCY=${CLUSTER_CONCURRENCY:-8}
CLUSTER_MODES=${CLUSTER_MODES:-caption-match provenance}
CLUSTER_FAIL_SECONDS=${CLUSTER_FAIL_SECONDS:-30}
CLUSTER_PIN=${CLUSTER_PIN:-0}
. "$repo/bench/lib.sh"
for f in "$BUILD/retrace-server" "$cli" "$MODELS/clip/model.pt" "$BENCH_BUILD/bench/startup_bench" \
         "$pgbin/initdb"; do
  [ -e "$f" ] || { echo "cluster: $f not found (see the usage in $0)" >&2; exit 1; }
done
bench_init cluster
start_postgres
seconds_since() { "$python" -c "import time; print(round(time.time() - $1, 2))"; }
echo "cluster: $(nproc) cores; load $(load); models $MODELS; PostgreSQL 15 on 127.0.0.1:$pg_port"

# The collection, created by a server so that it names the demo models, then filled directly.
start_server create -- --store "$store" --replica-id create
"$cli" --server "$server" collections create big --shards "$CLUSTER_SHARDS" >/dev/null
stop_servers
"$BENCH_BUILD/bench/startup_bench" --store "$store" --collection big --items "$CLUSTER_ITEMS" 2>&1 |
  tr '\r' '\n' | grep -E '^filled' || true
echo "   load $(load)"

# shard_map NAME GROUPS REPLICAS: writes $work/NAME.map with fresh loopback addresses; sets
# $addresses to them, group by group.
shard_map() {
  addresses=()
  : >"$work/$1.map"
  for _ in $(seq 1 "$2"); do
    echo "groups {" >>"$work/$1.map"
    for _ in $(seq 1 "$3"); do
      addresses+=("127.0.0.1:$(free_port)")
      echo "  replicas: \"${addresses[-1]}\"" >>"$work/$1.map"
    done
    echo "}" >>"$work/$1.map"
  done
}
# shard_servers NAME: starts a shard server for every address of $work/NAME.map, without waiting;
# sets $shard_addresses and $shard_pids.
shard_servers() {
  shard_addresses=("${addresses[@]}")
  shard_pids=()
  local i=0 pin=()
  for address in "${shard_addresses[@]}"; do
    [ "$CLUSTER_PIN" = 1 ] && pin=(taskset "$((i % $(nproc)))")
    listen=$address NOWAIT=1 start_server "$1-$i" "${pin[@]}" -- --store "$store" \
      --replica-id "$1-$i" --role shard --shard-map "$work/$1.map"
    shard_pids+=("$server_pid")
    i=$((i + 1))
  done
}

echo
echo "1. catch-up: fresh shard servers, no snapshot, from the store to SERVING ($CLUSTER_ITEMS items, $CLUSTER_SHARDS shards)"
shard_map g1 1 1
t0=$(date +%s.%N)
shard_servers g1
wait_healthy "${shard_addresses[0]}" 1200
s=$(seconds_since "$t0")
echo "   one server, every shard, alone: $s s, $("$python" -c "print(round($CLUSTER_ITEMS / $s))") items/s (model load included); load $(load)"
g1=("${shard_addresses[@]}")
shard_map g2 2 1; g2_addresses=("${addresses[@]}")
shard_map g3 3 1; g3_addresses=("${addresses[@]}")
shard_map f3 3 2; f3_addresses=("${addresses[@]}")
t0=$(date +%s.%N)
addresses=("${g2_addresses[@]}"); shard_servers g2
addresses=("${g3_addresses[@]}"); shard_servers g3
addresses=("${f3_addresses[@]}"); shard_servers f3
f3_pids=("${shard_pids[@]}")
for address in "${g2_addresses[@]}" "${g3_addresses[@]}" "${f3_addresses[@]}"; do
  wait_healthy "$address" 2400
done
s=$(seconds_since "$t0")
echo "   11 servers together (2 + 3 + 3 x 2 groups: 4 copies of the items): $s s, $("$python" -c "print(round(4 * $CLUSTER_ITEMS / $s))") items/s in all; load $(load)"

start_server all -- --store "$store" --replica-id all
all=$server
for g in g1 g2 g3 f3; do
  start_server "front-$g" -- --store "$store" --replica-id "front-$g" --role frontend \
    --shard-map "$work/$g.map"
  declare "front_$g=$server"
done

qps() {  # SERVER MODE: search-embedding QPS of the closed loop (and p50/p99 into $work/last.json)
  "$cli" --server "$1" --json --timeout 60 bench --collection big --mix search-embedding=1 \
    --mode "$2" --concurrency "$CLUSTER_CONCURRENCY" --duration "$CLUSTER_SECONDS" --warmup 2 \
    >"$work/last.json"
  [ "$(field "$work/last.json" 'd["total"]["errors"]')" = 0 ] || { echo "cluster: errors, see $work/last.json" >&2; cat "$work/last.json" >&2; exit 1; }
  field "$work/last.json" 'round(d["total"]["qps"], 2)'
}
echo
echo "2. search-embedding QPS, concurrency $CLUSTER_CONCURRENCY, ${CLUSTER_SECONDS} s each (pinned: $CLUSTER_PIN)"
printf '%-14s %-6s %10s %10s %10s %10s %22s   %s\n' mode round "all" "1 group" "2 groups" "3 groups" "groups / all" load
for mode in $CLUSTER_MODES; do
  for round in $(seq 1 "$CLUSTER_ROUNDS"); do
    declare -A q=()
    order=(all g1 g2 g3)
    [ $((round % 2)) = 0 ] && order=(g3 g2 g1 all)
    for c in "${order[@]}"; do
      if [ "$c" = all ]; then q[$c]=$(qps "$all" "$mode"); else v=front_$c; q[$c]=$(qps "${!v}" "$mode"); fi
    done
    printf '%-14s %-6s %10s %10s %10s %10s %22s   %s\n' "$mode" "$round" "${q[all]}" "${q[g1]}" \
      "${q[g2]}" "${q[g3]}" "$(ratio "${q[g1]}" "${q[all]}") $(ratio "${q[g2]}" "${q[all]}") $(ratio "${q[g3]}" "${q[all]}")" "$(load)"
  done
done

fail_run() {  # KILL(0|1): Search p50/p99 and errors over CLUSTER_FAIL_SECONDS, a replica killed or not
  local killer=""
  if [ "$1" = 1 ]; then
    (sleep "$(( CLUSTER_FAIL_SECONDS / 3 + 2 ))"; kill -KILL "${f3_pids[2]}") &
    killer=$!
  fi
  "$cli" --server "$front_f3" --json --timeout 10 bench --collection big --mix search-embedding=1 \
    --mode caption-match --concurrency "$CLUSTER_CONCURRENCY" --duration "$CLUSTER_FAIL_SECONDS" \
    --warmup 2 >"$work/fail.json"
  [ -n "$killer" ] && wait "$killer"
  field "$work/fail.json" '"%.1f %.1f %.1f %d %d" % (d["total"]["qps"], d["total"]["latency_ms"]["p50"], d["total"]["latency_ms"]["p99"], d["total"]["calls"], d["total"]["errors"])'
}
echo
echo "3. failover: frontend over 3 groups x 2 replicas, caption-match, concurrency $CLUSTER_CONCURRENCY, ${CLUSTER_FAIL_SECONDS} s"
printf '%-28s %8s %8s %8s %8s %8s   %s\n' run qps "p50 ms" "p99 ms" calls errors load
read -r q p50 p99 n e <<<"$(fail_run 0)"
printf '%-28s %8s %8s %8s %8s %8s   %s\n' "no kill" "$q" "$p50" "$p99" "$n" "$e" "$(load)"
read -r q p50 p99 n e <<<"$(fail_run 1)"
printf '%-28s %8s %8s %8s %8s %8s   %s\n' "a replica of group 1 killed" "$q" "$p50" "$p99" "$n" "$e" "$(load)"
