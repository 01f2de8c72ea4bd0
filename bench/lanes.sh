#!/usr/bin/env bash
# lanes.sh — does a search wait behind ingest? Interactive searches (open loop, RATE per second,
# text queries) against one server, alone and while a saturating bulk load of Index streams
# (CONCURRENCY_INDEX streams, the server captioning every image) runs beside them, in
# alternating rounds. Prints each round's search p50/p99 and the Index calls done, then the
# ratio of the medians: p99 under ingest / p99 alone (issue 20 aims at <= 1.5x).
#
#   bench/lanes.sh                     # 3 rounds of 15 s per condition, demo models
#   ROUNDS=2 SECONDS_PER_ROUND=10 bench/lanes.sh
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$repo/build}
MODELS=${MODELS:-$BUILD/models}
ROUNDS=${ROUNDS:-3}
SECONDS_PER_ROUND=${SECONDS_PER_ROUND:-15}
RATE=${RATE:-20}
CONCURRENCY_INDEX=${CONCURRENCY_INDEX:-64}
SERVER_ARGS=${SERVER_ARGS:-}
shared=${RETRACE_SHARED_DATA:-$repo/../shared/data}
images=${IMAGES:-$shared/pacs-mini}
work=$(mktemp -d "${TMPDIR:-/tmp}/retrace-lanes.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
[ -d "$images" ] || { echo "lanes: no images at $images (set IMAGES)" >&2; exit 1; }

# shellcheck disable=SC2086  # SERVER_ARGS is a list of flags
"$BUILD/retrace-server" --models "$MODELS" --data-dir "$work/data" --listen 127.0.0.1:0 \
  --http-listen off --port-file "$work/port" --log-level warn $SERVER_ARGS \
  >/dev/null 2>"$work/server.log" &
pids+=($!)
for _ in $(seq 1 240); do [ -s "$work/port" ] && break; sleep 0.25; done
cli() { "$BUILD/retrace" --server "127.0.0.1:$(cat "$work/port")" "$@"; }
for _ in $(seq 1 240); do cli health >/dev/null 2>&1 && break; sleep 0.25; done
cli collections create bench >/dev/null
cli index --collection bench "$images" >/dev/null

search() {  # search OUT: the interactive load for one round
  cli --json bench --collection bench --rate "$RATE" --duration "$SECONDS_PER_ROUND" --warmup 2 \
    --mix search-text=1 >"$1"
}
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "round condition     search_p50_ms search_p99_ms index_calls"
for round in $(seq 1 "$ROUNDS"); do
  search "$work/alone.$round.json"
  cli --json bench --collection bench --concurrency "$CONCURRENCY_INDEX" \
    --duration $((SECONDS_PER_ROUND + 4)) --mix index=1 --images "$images" \
    >"$work/ingest.$round.json" 2>/dev/null &
  ingest=$!
  sleep 2  # the Index streams fill the bulk lane first
  search "$work/under.$round.json"
  wait "$ingest" || true
  /usr/bin/python3 - "$work" "$round" <<'PY'
import json, sys
work, r = sys.argv[1], sys.argv[2]
for cond in ("alone", "under"):
    t = json.load(open(f"{work}/{cond}.{r}.json"))["total"]
    done = ""
    if cond == "under":
        done = json.load(open(f"{work}/ingest.{r}.json"))["total"]["calls"]
    name = "alone" if cond == "alone" else "under ingest"
    print(f"{r:>5} {name:<13} {t['latency_ms']['p50']:13.2f} {t['latency_ms']['p99']:13.2f} {done:>11}")
PY
done
/usr/bin/python3 - "$work" "$ROUNDS" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
def med(cond, key):
    return statistics.median(json.load(open(f"{work}/{cond}.{i}.json"))["total"]["latency_ms"][key]
                             for i in range(1, rounds + 1))
for key in ("p50", "p99"):
    print(f"search {key} under ingest / alone (medians): {med('under', key) / med('alone', key):.2f}x")
PY
echo "load $(cut -d' ' -f1-3 /proc/loadavg) at the end"
