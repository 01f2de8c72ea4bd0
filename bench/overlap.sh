#!/usr/bin/env bash
# overlap.sh — issue 20's "a request's independent model calls overlap; an image is preprocessed
# once per geometry": PROVENANCE image-search latency at each CONCURRENCY and Index throughput,
# this build against another (BEFORE_BUILD, e.g. main's), side by side in one run.
#
# Both servers run at once on the same models, each on its own fresh data folder, and every
# measurement alternates between them (who goes first swaps each round), so a neighbour's load
# falls on both. Each round:
#   index:  one `retrace index --batch 32` stream of the JPEG files of IMAGES into a new
#           collection (items/s; every item captioned by the server, as in real ingest);
#   search: `retrace bench --mix search-image=1 --mode provenance` on that collection, closed
#           loop at each CONCURRENCY for RUN_SECONDS (p50/p99 ms and QPS; each query is captioned
#           for re-ranking, so CLIP image, the image encoder and the captioner all run).
# `uptime` is printed before and after: the machine may be shared.
#
#   BEFORE_BUILD=/work/main/build bench/overlap.sh          (after `make build models`)
# Environment: BUILD [build], BEFORE_BUILD (required), MODELS [$BUILD/models],
#   IMAGES [../shared/data/pacs-mini], ROUNDS [2], CONCURRENCY ["1 8"], RUN_SECONDS [10],
#   CLI [$BUILD/retrace]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
BUILD=${BUILD:-build}
BEFORE_BUILD=${BEFORE_BUILD:?set BEFORE_BUILD to the build folder to compare against}
MODELS=${MODELS:-$BUILD/models}
IMAGES=${IMAGES:-${RETRACE_SHARED_DATA:-$repo/../shared/data}/pacs-mini}
ROUNDS=${ROUNDS:-2}
CONCURRENCY=${CONCURRENCY:-"1 8"}
RUN_SECONDS=${RUN_SECONDS:-10}
. "$repo/bench/lib.sh"
cli=${CLI:-$cli}  # the client is the same on both sides; CLI picks another build's
for f in "$BUILD/retrace-server" "$BEFORE_BUILD/retrace-server" "$cli" "$MODELS/clip/model.pt"; do
  [ -e "$f" ] || { echo "overlap: $f not found (run 'make build models' first)" >&2; exit 1; }
done
[ -d "$IMAGES" ] || { echo "overlap: no images at $IMAGES" >&2; exit 1; }
bench_init overlap

# Both servers are copied, so a rebuild of either folder during the run cannot swap one.
mkdir -p "$work/after" "$work/before" "$work/jpeg"
cp "$BUILD/retrace-server" "$work/after/retrace-server"
cp "$BEFORE_BUILD/retrace-server" "$work/before/retrace-server"
find "$IMAGES" -type f \( -iname '*.jpg' -o -iname '*.jpeg' \) | sort | while read -r f; do
  ln -s "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")" "$work/jpeg/$(echo "${f#"$IMAGES"/}" | tr / _)"
done
count=$(ls "$work/jpeg" | wc -l)

BUILD=$work/after start_server after --
after=$server
BUILD=$work/before start_server before --
before=$server

# index SERVER COLLECTION: items/s of one Index stream over every JPEG file.
index() {
  "$cli" --server "$1" collections create "$2" >/dev/null
  local t0 t1
  t0=$(date +%s.%N)
  "$cli" --server "$1" index --collection "$2" --batch 32 "$work/jpeg" >/dev/null
  t1=$(date +%s.%N)
  "$python" -c "print(round($count / ($t1 - $t0), 2))"
}
# search SERVER COLLECTION C: "p50 p99 qps" of PROVENANCE image searches at concurrency C.
search() {
  "$cli" --server "$1" --json --timeout 60 bench --collection "$2" --images "$work/jpeg" \
    --mix search-image=1 --mode provenance --concurrency "$3" --duration "$RUN_SECONDS" \
    --warmup 2 >"$work/search.json"
  [ "$(field "$work/search.json" 'd["total"]["errors"]')" = 0 ] ||
    { echo "overlap: errors, see $work/search.json" >&2; cat "$work/search.json" >&2; exit 1; }
  field "$work/search.json" \
    '"%.1f %.1f %.1f" % (d["total"]["latency_ms"]["p50"], d["total"]["latency_ms"]["p99"], d["total"]["qps"])'
}
# pair FUNCTION ARGS...: runs it on both servers, the first one swapping each round; sets $a
# (this build) and $b (BEFORE_BUILD).
pair() {
  local fn=$1; shift
  if [ $((round % 2)) = 1 ]; then
    a=$($fn "$after" "$@"); b=$($fn "$before" "$@")
  else
    b=$($fn "$before" "$@"); a=$($fn "$after" "$@")
  fi
}

echo "overlap: $count JPEG files from $IMAGES; models $MODELS; $(nproc) cores; $ROUNDS rounds"
echo "uptime before: $(uptime)"
printf '%-6s %-26s %-22s %-22s %s\n' round measure "this build" "before" "ratio (this/before)"
for round in $(seq 1 "$ROUNDS"); do
  pair index "r$round"
  printf '%-6s %-26s %-22s %-22s %s\n' "$round" "Index items/s" "$a" "$b" "$(ratio "$a" "$b")"
  for c in $CONCURRENCY; do
    pair search "r$round" "$c"
    read -r a50 a99 aq <<<"$a"
    read -r b50 b99 bq <<<"$b"
    printf '%-6s %-26s %-22s %-22s %s\n' "$round" "search c=$c p50/p99 ms, QPS" \
      "$a50 / $a99, $aq" "$b50 / $b99, $bq" "p50 $(ratio "$a50" "$b50"), QPS $(ratio "$aq" "$bq")"
  done
done
echo "uptime after: $(uptime)"
