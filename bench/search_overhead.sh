#!/usr/bin/env bash
# search_overhead.sh — what the server adds to a search by embedding (issue 7, a): p50 latency
# and QPS of `retrace bench --mix search-embedding=1` (closed loop) against retrace-server, beside
# the same searches made in-process on the same index by bench/search_overhead_bench, at the
# same concurrency, in alternating rounds. Targets: server p50 <= 1.2x, QPS >= 0.8x in-process.
#
#   ROUNDS=2 SECONDS_PER_ROUND=30 nice bench/search_overhead.sh     # 1M x 1024, Flat
#   ITEMS=1000000 INDEX=HNSW32 nice bench/search_overhead.sh         # hours to build on 2 cores
#   ITEMS=20000 INDEX=HNSW32 ROUNDS=3 SECONDS_PER_ROUND=10 nice bench/search_overhead.sh
#
# Prints each round's QPS, mean/p50/p99 latency and CPU time per call of both sides, then a
# markdown table of medians and server / in-process ratios. CPU per call (the process's CPU
# time over its calls; for the server, from /proc over the run) is the figure that neighbours
# on a shared machine stretch least. Above the core count, p50 compares unlike things: FIFO
# queueing in the server's worker pool against the OS time-slicing C in-process threads (which
# leaves most calls fast and a few very slow); compare the mean latency (C / QPS) there.
#
# The first run for a shape (ITEMS, DIM, INDEX, SHARDS) builds its data dir under WORK and keeps
# it (about 2 x ITEMS x DIM x 4 bytes in the store and as much again in snapshots): demo models
# with a DIM-sized CLIP (make_models.py --clip-dim), a server to create the collection (so its
# model identities are the server's), then `search_overhead_bench fill` writes random unit
# vectors, builds the indexes (printing the build rate) and saves the snapshots the server loads.
# The image space is always Flat: a caption-match search never reads it.
# Both sides get one OpenMP thread per search (the server's default threads.faiss_omp); the
# server runs with its default workers (one per core). The server's calls add the gRPC round
# trip, request validation and normalisation, and reading the 10 hits' captions from SQLite.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$repo/build}
ITEMS=${ITEMS:-1000000}
DIM=${DIM:-1024}
INDEX=${INDEX:-Flat}
SHARDS=${SHARDS:-1}
CONCURRENCY=${CONCURRENCY:-"1 8"}
ROUNDS=${ROUNDS:-2}
SECONDS_PER_ROUND=${SECONDS_PER_ROUND:-20}
WARMUP=${WARMUP:-3}
WORK=${WORK:-/tmp/retrace-search-overhead}
MODELS=${MODELS:-$WORK/models-$DIM}
SERVER_ARGS=${SERVER_ARGS:-}
data=$WORK/data-$ITEMS-$DIM-$INDEX-$SHARDS
results=$(mktemp -d "${TMPDIR:-/tmp}/retrace-search-overhead.XXXXXX")
bench=$BUILD/bench/search_overhead_bench
server_pid=""

stop_server() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
cleanup() { stop_server; rm -rf "$results"; }
trap cleanup EXIT

for tool in "$BUILD/retrace-server" "$BUILD/retrace" "$bench"; do
  [ -x "$tool" ] || { echo "search_overhead: $tool is missing (build it)" >&2; exit 1; }
done
mkdir -p "$WORK"
if [ ! -f "$MODELS/clip/manifest.json" ]; then
  /usr/bin/python3 "$repo/tools/fixtures/make_models.py" --kind demo --clip-dim "$DIM" \
    --out "$MODELS" >/dev/null
fi

cli() { "$BUILD/retrace" --server "127.0.0.1:$(cat "$results/port")" "$@"; }
start_server() {  # waits until the collections are loaded (the server answers before that)
  rm -f "$results/port"
  # shellcheck disable=SC2086
  "$BUILD/retrace-server" --models "$MODELS" --data-dir "$data" --listen 127.0.0.1:0 \
    --port-file "$results/port" $SERVER_ARGS >/dev/null 2>>"$WORK/server.log" &
  server_pid=$!
  local t0=$SECONDS
  until [ -s "$results/port" ] && cli collections list >/dev/null 2>&1; do
    kill -0 "$server_pid" 2>/dev/null || { echo "search_overhead: the server died; see $WORK/server.log" >&2; exit 1; }
    sleep 1
  done
  echo "server ready in $((SECONDS - t0)) s" >&2
}

if [ ! -f "$data/bench-queries.f32" ]; then
  rm -rf "$data"
  start_server
  cli collections create bench --shards "$SHARDS" --index "$INDEX" --image-index Flat >/dev/null
  stop_server
  echo "filling $data ($ITEMS x $DIM, $INDEX); this takes a while" >&2
  "$bench" fill --data_dir "$data" --collection bench --items "$ITEMS" | tee "$data.fill.log"
fi
start_server

inproc() {  # inproc C OUT
  "$bench" search --data_dir "$data" --collection bench --dim "$DIM" --shards "$SHARDS" \
    --index "$INDEX" --concurrency "$1" --duration "$SECONDS_PER_ROUND" --warmup "$WARMUP" \
    2>/dev/null >"$2"
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$server_pid/stat"; }  # utime + stime
served() {  # served C OUT; the server's CPU time over the run goes to OUT.cpu (ticks, hz)
  local before
  before=$(cpu_ticks)
  cli --json bench --collection bench --concurrency "$1" --duration "$SECONDS_PER_ROUND" \
    --warmup "$WARMUP" --mix search-embedding=1 >"$2"
  echo $(( $(cpu_ticks) - before )) "$(getconf CLK_TCK)" >"$2.cpu"
}
echo "round  C  side            QPS    mean_ms     p50_ms     p99_ms  cpu_ms/call  calls"
for round in $(seq 1 "$ROUNDS"); do
  for c in $CONCURRENCY; do
    inproc "$c" "$results/inproc.$c.$round.json"
    served "$c" "$results/server.$c.$round.json"
    /usr/bin/python3 - "$results" "$c" "$round" <<'EOF'
import json, sys
d, c, r = sys.argv[1:]
i = json.load(open(f"{d}/inproc.{c}.{r}.json"))
s = json.load(open(f"{d}/server.{c}.{r}.json"))["total"]
print(f"{r:>5} {c:>2}  in-process {i['qps']:10.2f} {i['mean_ms']:10.2f} {i['p50_ms']:10.2f}"
      f" {i['p99_ms']:10.2f} {i['cpu_ms_per_call']:12.2f} {i['calls']:6}")
# The server's CPU per call: its CPU time over the run / (calls + warm-up calls + 1), the 1
# being the text search retrace bench makes first, to find stored embeddings to query with.
def server_cpu_ms(path):
    r = json.load(open(path))
    ticks, hz = map(int, open(path + ".cpu").read().split())
    return ticks * 1000.0 / hz / (r["total"]["calls"] + r["warmup_calls"] + 1)
cpu = server_cpu_ms(f"{d}/server.{c}.{r}.json")
open(f"{d}/server.{c}.{r}.cpu_ms", "w").write(str(cpu))
l = s['latency_ms']
print(f"{r:>5} {c:>2}  server     {s['qps']:10.2f} {l['mean']:10.2f} {l['p50']:10.2f}"
      f" {l['p99']:10.2f} {cpu:12.2f} {s['calls']:6}  errors {s['errors']}")
EOF
  done
done
/usr/bin/python3 - "$results" "$ROUNDS" "$CONCURRENCY" "$ITEMS" "$DIM" "$INDEX" <<'EOF'
import json, statistics, sys
d, rounds, cs, items, dim, index = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), *sys.argv[4:]
print(f"\n{items} x {dim}, {index}: medians over {rounds} rounds; ratio = server / in-process")
print("| C | in-process QPS | server QPS | QPS ratio (>= 0.8) | in-process p50 ms | server p50 ms "
      "| p50 ratio (<= 1.2) | mean ratio | CPU/call ratio |")
print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for c in cs:
    iq, sq, ip, sp, im, sm, ic, sc = [], [], [], [], [], [], [], []
    for r in range(1, rounds + 1):
        i = json.load(open(f"{d}/inproc.{c}.{r}.json"))
        s = json.load(open(f"{d}/server.{c}.{r}.json"))["total"]
        iq.append(i["qps"]); ip.append(i["p50_ms"]); im.append(i["mean_ms"])
        sq.append(s["qps"]); sp.append(s["latency_ms"]["p50"]); sm.append(s["latency_ms"]["mean"])
        ic.append(i["cpu_ms_per_call"])
        sc.append(float(open(f"{d}/server.{c}.{r}.cpu_ms").read()))
    m = statistics.median
    print(f"| {c} | {m(iq):.2f} | {m(sq):.2f} | {m(sq) / m(iq):.2f} | {m(ip):.2f} | {m(sp):.2f} | "
          f"{m(sp) / m(ip):.2f} | {m(sm) / m(im):.2f} | {m(sc) / m(ic):.2f} |")
EOF
