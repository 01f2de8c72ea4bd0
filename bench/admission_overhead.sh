#!/usr/bin/env bash
# admission_overhead.sh — what the hardening costs per call: the same search load against two
# servers side by side, one plain and one with bearer tokens (a SHA-256 per call), Prometheus
# metrics scraped every second, and JSON access logs (one line per call). Search by embedding
# is the cheapest call, so the admission gate's share of it is the largest there is.
#
#   bench/admission_overhead.sh            # 4 alternating rounds of 15 s each per server
#   ROUNDS=2 SECONDS_PER_ROUND=10 bench/admission_overhead.sh
#
# Prints each round's QPS and p50 and the ratio hardened / plain of their medians.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$repo/build}
MODELS=${MODELS:-$BUILD/models}
ROUNDS=${ROUNDS:-4}
SECONDS_PER_ROUND=${SECONDS_PER_ROUND:-15}
CONCURRENCY=${CONCURRENCY:-4}
MIX=${MIX:-search-embedding=1}
shared=${RETRACE_SHARED_DATA:-$repo/../shared/data}
images=${IMAGES:-$shared/pacs-mini}
work=$(mktemp -d "${TMPDIR:-/tmp}/retrace-admission.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

[ -d "$images" ] || { echo "admission_overhead: no images at $images (set IMAGES)" >&2; exit 1; }
token="bench-token-$(date +%s%N)"
printf 'tokens { name: "bench" sha256: "%s" scopes: "admin" }\n' \
  "$(printf %s "$token" | sha256sum | cut -d' ' -f1)" >"$work/tokens.txtpb"

start() {  # start NAME EXTRA_ARGS...: starts a server; its port goes to $work/NAME.port
  local name=$1; shift
  "$BUILD/retrace-server" --models "$MODELS" --data-dir "$work/$name" --listen 127.0.0.1:0 \
    --port-file "$work/$name.port" --log-level info "$@" >/dev/null 2>"$work/$name.log" &
  pids+=($!)
  for _ in $(seq 1 240); do [ -s "$work/$name.port" ] && break; sleep 0.25; done
}
metrics_port=$(( (RANDOM % 20000) + 30000 ))
start plain
start hardened --auth-tokens "$work/tokens.txtpb" --access-log --log-format json \
  --metrics-listen "127.0.0.1:$metrics_port"
plain_port=$(cat "$work/plain.port")
hard_port=$(cat "$work/hardened.port")
export RETRACE_TOKEN=$token  # the plain server ignores it

cli() { "$BUILD/retrace" --server "127.0.0.1:$1" "${@:2}"; }
for port in "$plain_port" "$hard_port"; do
  for _ in $(seq 1 240); do cli "$port" collections list >/dev/null 2>&1 && break; sleep 0.25; done
  cli "$port" collections create bench >/dev/null
  cli "$port" index --collection bench "$images" >/dev/null
done
# Scrape like a Prometheus server would (every second) while the hardened server runs.
(while sleep 1; do curl -s "http://127.0.0.1:$metrics_port/metrics" >/dev/null || true; done) &
pids+=($!)

echo "round server   QPS     p50_ms"
for round in $(seq 1 "$ROUNDS"); do
  for pair in "plain:$plain_port" "hardened:$hard_port"; do
    name=${pair%%:*}; port=${pair#*:}
    cli "$port" --json bench --collection bench --concurrency "$CONCURRENCY" \
      --duration "$SECONDS_PER_ROUND" --warmup 2 --mix "$MIX" >"$work/$name.$round.json"
    /usr/bin/python3 - "$work/$name.$round.json" "$round" "$name" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))["total"]
print(f"{sys.argv[2]:>5} {sys.argv[3]:<8} {r['qps']:7.1f} {r['latency_ms']['p50']:8.2f}")
EOF
  done
done
/usr/bin/python3 - "$work" "$ROUNDS" <<'EOF'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
def med(name, key):
    vals = []
    for i in range(1, rounds + 1):
        t = json.load(open(f"{work}/{name}.{i}.json"))["total"]
        vals.append(t["qps"] if key == "qps" else t["latency_ms"]["p50"])
    return statistics.median(vals)
for key in ("qps", "p50"):
    p, h = med("plain", key), med("hardened", key)
    print(f"median {key}: plain {p:.2f}, hardened {h:.2f}, hardened/plain {h / p:.3f}")
EOF
