#!/usr/bin/env bash
# ingest.sh — issue 7's benchmark (e): Index throughput (items/s) of JPEG files with the demo
# models, dynamic batching on against off, side by side.
#
# Two servers run at once on the same models, one with batching (the default) and one with
# --no-batching, each on its own fresh data folder; the rounds alternate between them so a
# neighbour's load falls on both. Each round indexes the JPEG files of INGEST_IMAGES into a new
# collection in two client shapes:
#   bulk:    one `retrace index --batch 32` stream (an audit backend's import);
#   per-call: `retrace bench --mix index=1` at INGEST_CONCURRENCY, one image per call (renders
#            indexed as they are made), for INGEST_SECONDS.
# The server captions every item (none is given a caption), as it does for real ingest.
#
# Usage: bench/ingest.sh        (after `make build models`)
# Environment: BUILD [build], MODELS [$BUILD/models], INGEST_IMAGES [../shared/data/pacs-mini],
#   INGEST_ROUNDS [3], INGEST_CONCURRENCY [8], INGEST_SECONDS [15]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
BUILD=${BUILD:-build}
MODELS=${MODELS:-$BUILD/models}
INGEST_IMAGES=${INGEST_IMAGES:-${RETRACE_SHARED_DATA:-$repo/../shared/data}/pacs-mini}
INGEST_ROUNDS=${INGEST_ROUNDS:-3}
INGEST_CONCURRENCY=${INGEST_CONCURRENCY:-8}
INGEST_SECONDS=${INGEST_SECONDS:-15}
python=/usr/bin/python3
cli=$BUILD/retrace
for f in "$BUILD/retrace-server" "$cli" "$MODELS/clip/model.pt"; do
  [ -e "$f" ] || { echo "ingest: $f not found (run 'make build models' first)" >&2; exit 1; }
done
[ -d "$INGEST_IMAGES" ] || { echo "ingest: no images at $INGEST_IMAGES" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/retrace-ingest.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Only the JPEG files, in a folder of links (pacs-mini also holds PNGs).
mkdir -p "$work/jpeg"
find "$INGEST_IMAGES" -type f \( -iname '*.jpg' -o -iname '*.jpeg' \) | sort | while read -r f; do
  ln -s "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")" "$work/jpeg/$(echo "${f#"$INGEST_IMAGES"/}" | tr / _)"
done
count=$(ls "$work/jpeg" | wc -l)

start_server() {  # NAME ARGS...: starts a server, sets $server to its address
  local name=$1; shift
  "$BUILD/retrace-server" --models "$MODELS" --data-dir "$work/$name-data" --listen 127.0.0.1:0 \
    --port-file "$work/$name.port" --log-level warn "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 240); do
    [ -s "$work/$name.port" ] && "$cli" --server "127.0.0.1:$(cat "$work/$name.port")" \
      collections list >/dev/null 2>&1 && break
    sleep 0.5
  done
  server="127.0.0.1:$(cat "$work/$name.port")"
}
start_server on
on=$server
start_server off --no-batching
off=$server

field() { "$python" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {"d": d}))' "$@"; }

# bulk SERVER COLLECTION: items/s of one stream over every JPEG file.
bulk() {
  "$cli" --server "$1" collections create "$2" >/dev/null
  local t0 t1
  t0=$(date +%s.%N)
  "$cli" --server "$1" index --collection "$2" --batch 32 "$work/jpeg" >/dev/null
  t1=$(date +%s.%N)
  "$python" -c "print(round($count / ($t1 - $t0), 2))"
}
# per_call SERVER COLLECTION: items/s of single-image Index calls at INGEST_CONCURRENCY.
per_call() {
  "$cli" --server "$1" collections create "$2" >/dev/null
  "$cli" --server "$1" --json --timeout 60 bench --collection "$2" --images "$work/jpeg" \
    --mix index=1 --concurrency "$INGEST_CONCURRENCY" --duration "$INGEST_SECONDS" --warmup 2 \
    --keep-indexed >"$work/$2.json"
  [ "$(field "$work/$2.json" 'd["total"]["errors"]')" = 0 ] || { echo "ingest: errors, see $work/$2.json" >&2; exit 1; }
  field "$work/$2.json" 'round(d["total"]["qps"], 2)'
}

echo "ingest: $count JPEG files from $INGEST_IMAGES; models $MODELS; $(nproc) cores; $INGEST_ROUNDS rounds"
printf '%-6s %-22s %10s %10s %7s\n' round shape "on items/s" "off items/s" ratio
for round in $(seq 1 "$INGEST_ROUNDS"); do
  for shape in bulk per_call; do
    if [ $((round % 2)) = 1 ]; then
      a=$($shape "$on" "r$round-$shape"); b=$($shape "$off" "r$round-$shape")
    else
      b=$($shape "$off" "r$round-$shape"); a=$($shape "$on" "r$round-$shape")
    fi
    label=$shape
    [ "$shape" = per_call ] && label="per-call, c=$INGEST_CONCURRENCY"
    printf '%-6s %-22s %10s %10s %7s\n' "$round" "$label" "$a" "$b" \
      "$("$python" -c "print(f'{$a / $b:.2f}x')")"
  done
done
