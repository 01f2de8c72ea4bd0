#!/usr/bin/env bash
# replication.sh — issue 14's figures ("the store is the log"), side by side in one run:
#   1. ingest: items/s of one `retrace index --batch 32` stream over pacs-mini's JPEG files into a
#      server on a PostgreSQL store against one on its SQLite store (rounds alternate);
#   2. freshness: replica A acknowledges an Index, replica B answers a Get at its position
#      (bench/freshness_bench.cc): p50/p99 against B's plain round trip;
#   3. scale-out: Search QPS (`retrace bench --mix search-image=1`) of two replicas each pinned to
#      one core (taskset) through `--server A,B` against one replica on one core, same client;
#   4. joining: a new replica of a REPL_JOIN_ITEMS collection on the PostgreSQL store, from a
#      snapshot against from the items (bench/startup_bench.cc --store).
# The PostgreSQL server is Debian's, started here on loopback in a temporary folder (as the
# tests do); every server uses the demo models. A benchmark, not a test.
#
# Usage: bench/replication.sh   (after `make build models` and the benchmarks' build:
#          cmake -S . -B build-bench -DRETRACE_BUILD_BENCHMARKS=ON && cmake --build build-bench)
# Environment: BUILD [build], BENCH_BUILD [build-bench], MODELS [$BUILD/models],
#   REPL_IMAGES [../shared/data/pacs-mini], REPL_ROUNDS [3], REPL_WRITES [200],
#   REPL_SECONDS [15], REPL_CONCURRENCY [8], REPL_JOIN_ITEMS [1000000], REPL_JOIN_DIM [64]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
BUILD=${BUILD:-build}
BENCH_BUILD=${BENCH_BUILD:-build-bench}
MODELS=${MODELS:-$BUILD/models}
REPL_IMAGES=${REPL_IMAGES:-${RETRACE_SHARED_DATA:-$repo/../shared/data}/pacs-mini}
REPL_ROUNDS=${REPL_ROUNDS:-3}
REPL_WRITES=${REPL_WRITES:-200}
REPL_SECONDS=${REPL_SECONDS:-15}
REPL_CONCURRENCY=${REPL_CONCURRENCY:-8}
REPL_JOIN_ITEMS=${REPL_JOIN_ITEMS:-1000000}
REPL_JOIN_DIM=${REPL_JOIN_DIM:-64}
. "$repo/bench/lib.sh"
for f in "$BUILD/retrace-server" "$cli" "$MODELS/clip/model.pt" "$BENCH_BUILD/bench/freshness_bench" \
         "$BENCH_BUILD/bench/startup_bench" "$pgbin/initdb"; do
  [ -e "$f" ] || { echo "replication: $f not found (see the usage in $0)" >&2; exit 1; }
done
[ -d "$REPL_IMAGES" ] || { echo "replication: no images at $REPL_IMAGES" >&2; exit 1; }

bench_init replication
start_postgres

# Only the JPEG files, in a folder of links (pacs-mini also holds PNGs).
mkdir -p "$work/jpeg"
find "$REPL_IMAGES" -type f \( -iname '*.jpg' -o -iname '*.jpeg' \) | sort | while read -r f; do
  ln -s "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")" "$work/jpeg/$(echo "${f#"$REPL_IMAGES"/}" | tr / _)"
done
count=$(ls "$work/jpeg" | wc -l)
probe=$(ls "$work/jpeg" | sed -n 1p)  # sed reads to the end: no SIGPIPE under pipefail

echo "replication: $(nproc) cores; load $(load); models $MODELS; PostgreSQL 15 on 127.0.0.1:$pg_port"

# 1. Ingest.
start_server pg -- --store "$store" --replica-id ingest
pg=$server
start_server sqlite --
sqlite=$server
bulk() {  # SERVER COLLECTION: items/s of one stream over every JPEG file
  "$cli" --server "$1" collections create "$2" >/dev/null
  local t0 t1
  t0=$(date +%s.%N)
  "$cli" --server "$1" index --collection "$2" --batch 32 "$work/jpeg" >/dev/null
  t1=$(date +%s.%N)
  "$python" -c "print(round($count / ($t1 - $t0), 2))"
}
echo
echo "1. ingest: $count JPEG files, one 'retrace index --batch 32' stream, server captions each"
printf '%-6s %14s %14s %7s   %s\n' round "PG items/s" "SQLite items/s" ratio load
for round in $(seq 1 "$REPL_ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then p=$(bulk "$pg" "ingest$round"); s=$(bulk "$sqlite" "ingest$round")
  else s=$(bulk "$sqlite" "ingest$round"); p=$(bulk "$pg" "ingest$round"); fi
  printf '%-6s %14s %14s %7s   %s\n' "$round" "$p" "$s" "$(ratio "$p" "$s")" "$(load)"
done
stop_servers

# 2. Freshness: A and B share the store; A writes, B reads.
start_server a -- --store "$store" --replica-id a
a=$server
start_server b -- --store "$store" --replica-id b
b=$server
"$cli" --server "$a" collections create fresh >/dev/null
echo
echo "2. freshness: $REPL_WRITES single-item writes through A, each read back through B at its position"
"$BENCH_BUILD/bench/freshness_bench" --writer "$a" --reader "$b" --collection fresh \
  --image "$work/jpeg/$probe" --writes "$REPL_WRITES"
echo "   load $(load)"
stop_servers

# 3. Scale-out: one replica on core 0 against two on cores 0 and 1; the client is not pinned.
start_server a -- --store "$store" --replica-id a
"$cli" --server "$server" collections create scale >/dev/null
"$cli" --server "$server" index --collection scale --batch 32 "$work/jpeg" >/dev/null
stop_servers
qps() {  # SERVERS: search-image QPS of the closed loop
  "$cli" --server "$1" --json --timeout 60 bench --collection scale --images "$work/jpeg" \
    --mix search-image=1 --concurrency "$REPL_CONCURRENCY" --duration "$REPL_SECONDS" --warmup 3 \
    >"$work/qps.json"
  [ "$(field "$work/qps.json" 'd["total"]["errors"]')" = 0 ] || { echo "replication: errors, see $work/qps.json" >&2; exit 1; }
  field "$work/qps.json" 'round(d["total"]["qps"], 2)'
}
echo
echo "3. scale-out: search-image QPS, concurrency $REPL_CONCURRENCY, ${REPL_SECONDS} s; each replica pinned to one core"
printf '%-6s %14s %14s %7s   %s\n' round "2 replicas" "1 replica" ratio load
start_server a taskset 0 -- --store "$store" --replica-id a
a=$server
start_server b taskset 1 -- --store "$store" --replica-id b
b=$server
for round in $(seq 1 "$REPL_ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then two=$(qps "$a,$b"); one=$(qps "$a")
  else one=$(qps "$a"); two=$(qps "$a,$b"); fi
  printf '%-6s %14s %14s %7s   %s\n' "$round" "$two" "$one" "$(ratio "$two" "$one")" "$(load)"
done
stop_servers

# 4. Joining a large collection (startup_bench fills the store itself).
echo
echo "4. a replica joining a $REPL_JOIN_ITEMS-item collection (dim $REPL_JOIN_DIM) on the PostgreSQL store"
"$BENCH_BUILD/bench/startup_bench" --store "$store" --dir "$work/join" --items "$REPL_JOIN_ITEMS" \
  --dim "$REPL_JOIN_DIM" 2>&1 | grep -v '^filling' || true
echo "   load $(load)"
