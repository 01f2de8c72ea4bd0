#!/usr/bin/env bash
# soak.sh — a bounded load test of retrace-server on loopback (issue 6): the maximum QPS of a
# mixed Index / Search / Delete load, measured in a closed loop, then an open loop at a fraction
# of it (default 80%) for SOAK_MINUTES, with the server's resident memory sampled every second.
# Fails (exit 1) on any call error, on RSS growth after warm-up of SOAK_MAX_GROWTH_PCT (default
# 5) % or more, or on more than SOAK_MAX_DROPPED_PCT (default 10) % of the calls dropped — the
# client's back-pressure when the server falls behind the rate. That bound is loose on purpose:
# on a small shared machine the capacity measured before the run need not hold during it, so
# after the run the script measures it again, and prints both with a per-30 s timeline.
#
#   make soak                               # 3 minutes, the default mix
#   SOAK_MINUTES=10 nice make soak          # longer, at low priority
#
# Environment (defaults in brackets):
#   SOAK_MINUTES [3]            length of the open-loop run
#   SOAK_SECONDS []             the same in seconds, overriding SOAK_MINUTES (a quick check)
#   SOAK_MIX [search-image=6,search-text=2,search-embedding=1,index=1,delete=1]
#   SOAK_MODE [caption-match]   search mode (caption-match, provenance, hybrid)
#   SOAK_LOAD [0.8]             the open loop's rate as a fraction of the measured maximum
#   SOAK_PROBE_CONCURRENCY ["4 8 16"]  closed-loop concurrencies tried; the best QPS wins
#   SOAK_PROBE_SECONDS [15]     length of each probe (after 3 s of warm-up)
#   SOAK_RATE []                skip the probes and run at this many calls/s
#   SOAK_MAX_GROWTH_PCT [5]     the RSS growth that fails the run
#   SOAK_MAX_DROPPED_PCT [10]   the share of dropped calls that fails the run
#   SOAK_IMAGES [$RETRACE_SHARED_DATA/pacs-mini, else images this script generates]
#   SOAK_OUT [build/soak/YYYYmmdd-HHMMSS]  where the CSV, the reports and the server log go
#   BUILD [build], MODELS [$BUILD/models]  the built programs and the (demo) models
#
# Warm-up is the first 20% of the run, at least 30 s (or the whole run when shorter); RSS at
# its end is the mean of the samples of its last 5 s, the final RSS the mean of the last 5 s,
# so one sample's noise does not decide. The server gets a fresh data folder, removed at exit.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$repo/build}
MODELS=${MODELS:-$BUILD/models}
SOAK_MINUTES=${SOAK_MINUTES:-3}
SOAK_MIX=${SOAK_MIX:-search-image=6,search-text=2,search-embedding=1,index=1,delete=1}
SOAK_MODE=${SOAK_MODE:-caption-match}
SOAK_LOAD=${SOAK_LOAD:-0.8}
SOAK_PROBE_CONCURRENCY=${SOAK_PROBE_CONCURRENCY:-4 8 16}
SOAK_PROBE_SECONDS=${SOAK_PROBE_SECONDS:-15}
SOAK_RATE=${SOAK_RATE:-}
SOAK_MAX_GROWTH_PCT=${SOAK_MAX_GROWTH_PCT:-5}
SOAK_MAX_DROPPED_PCT=${SOAK_MAX_DROPPED_PCT:-10}
SOAK_OUT=${SOAK_OUT:-$BUILD/soak/$(date +%Y%m%d-%H%M%S)}
shared=${RETRACE_SHARED_DATA:-$repo/../shared/data}
python=/usr/bin/python3

server_bin=$BUILD/retrace-server
cli=$BUILD/retrace
for f in "$server_bin" "$cli" "$MODELS/clip/model.pt"; do
  [ -e "$f" ] || { echo "soak: $f not found (run 'make build models' first)" >&2; exit 1; }
done

mkdir -p "$SOAK_OUT"
out=$(cd "$SOAK_OUT" && pwd)
data=$(mktemp -d "${TMPDIR:-/tmp}/retrace-soak.XXXXXX")
server_pid=""
sampler_pid=""

say() { echo "soak: $*"; }
fail() { echo "soak: FAILED: $*" >&2; exit 1; }

cleanup() {
  local status=$?
  if [ -n "$sampler_pid" ]; then kill "$sampler_pid" 2>/dev/null || true; fi
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true  # drains in-flight calls, exits 0
    for _ in $(seq 1 60); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$server_pid" 2>/dev/null; then
      echo "soak: the server did not stop in 30 s after SIGTERM; killing it" >&2
      kill -KILL "$server_pid" 2>/dev/null || true
    fi
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$data"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the server ---------------------------------------------------------------------------
"$server_bin" --models "$MODELS" --data-dir "$data" --listen 127.0.0.1:0 \
  --port-file "$out/port" --log-level warn 2>"$out/server.log" &
server_pid=$!
for _ in $(seq 1 240); do
  [ -s "$out/port" ] && break
  kill -0 "$server_pid" 2>/dev/null || { tail -20 "$out/server.log" >&2; fail "the server exited at start"; }
  sleep 0.5
done
[ -s "$out/port" ] || fail "the server wrote no port file in 120 s"
server=127.0.0.1:$(cat "$out/port")
rc() { "$cli" --server "$server" "$@"; }
for _ in $(seq 1 120); do rc collections list >/dev/null 2>&1 && break; sleep 0.5; done
say "server pid $server_pid on $server, models $MODELS, output in $out"

# --- the seed collection --------------------------------------------------------------------
images=${SOAK_IMAGES:-}
if [ -z "$images" ]; then
  if [ -d "$shared/pacs-mini" ]; then
    images=$shared/pacs-mini
  else
    images=$out/images
    "$python" "$repo/tools/fixtures/make_images.py" --out "$images" --per-class 6 --seed 11 >/dev/null
  fi
fi
rc collections create soak >/dev/null
rc index --collection soak "$images" | sed 's/^/soak: seed: /'

# --- the maximum: closed loops --------------------------------------------------------------
bench() { rc --json --timeout 30 bench --collection soak --images "$images" --mix "$SOAK_MIX" \
            --mode "$SOAK_MODE" "$@"; }
field() { "$python" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {"d": d}))' "$@"; }

# probe NAME C: a closed loop at concurrency C into $out/NAME.json; sets qps.
probe() {
  bench --concurrency "$2" --duration "$SOAK_PROBE_SECONDS" --warmup 3 >"$out/$1.json" \
    || fail "the probe at concurrency $2 failed (see $out/$1.json)"
  qps=$(field "$out/$1.json" 'round(d["total"]["qps"], 1)')
  local p99 errors
  p99=$(field "$out/$1.json" 'round(d["total"]["latency_ms"]["p99"], 1)')
  errors=$(field "$out/$1.json" 'd["total"]["errors"]')
  say "probe: concurrency $2: $qps calls/s, p99 $p99 ms, $errors errors"
  [ "$errors" = 0 ] || fail "the probe at concurrency $2 had $errors errors (see $out/$1.json)"
}

best_c=""
if [ -n "$SOAK_RATE" ]; then
  rate=$SOAK_RATE
  say "rate given: $rate calls/s (no probe)"
else
  best=0
  for c in $SOAK_PROBE_CONCURRENCY; do
    probe "probe-c$c" "$c"
    if "$python" -c "import sys; sys.exit(0 if $qps > $best else 1)"; then best=$qps; best_c=$c; fi
  done
  rate=$("$python" -c "print(round($best * $SOAK_LOAD, 1))")
  say "maximum $best calls/s (concurrency $best_c); the soak runs at $SOAK_LOAD of it: $rate calls/s"
fi

# --- the soak: an open loop, RSS sampled every second ---------------------------------------
seconds=${SOAK_SECONDS:-$((SOAK_MINUTES * 60))}
echo "elapsed_s,rss_kb" >"$out/rss.csv"
(
  start=$(date +%s.%N)
  while kill -0 "$server_pid" 2>/dev/null; do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status" 2>/dev/null || true)
    now=$(date +%s.%N)
    [ -n "$rss" ] && awk -v a="$now" -v b="$start" -v r="$rss" 'BEGIN {printf "%.1f,%d\n", a - b, r}'
    sleep 1
  done
) >>"$out/rss.csv" &
sampler_pid=$!
say "open loop at $rate calls/s for $seconds s ($SOAK_MIX, mode $SOAK_MODE)"
# CPU seconds (user + system) of a process so far, from /proc/PID/stat.
cpu_seconds() {
  awk -v tck="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / tck }' "/proc/$1/stat"
}
server_cpu_before=$(cpu_seconds "$server_pid")
bench_status=0
TIMEFORMAT='%U %S'
{ time bench --rate "$rate" --duration "$seconds" --max-outstanding 64 >"$out/soak.json" \
    2>"$out/bench.err" || bench_status=$?; } 2>"$out/bench.time"
server_cpu=$("$python" -c "print(round($(cpu_seconds "$server_pid") - $server_cpu_before, 1))")
client_cpu=$(awk '{ printf "%.1f", $1 + $2 }' "$out/bench.time")
kill "$sampler_pid" 2>/dev/null || true
wait "$sampler_pid" 2>/dev/null || true
sampler_pid=""
[ "$bench_status" = 0 ] || fail "retrace bench exited $bench_status (see $out/bench.err)"
kill -0 "$server_pid" 2>/dev/null || fail "the server died during the soak (see $out/server.log)"
say "CPU during the soak: server $server_cpu s, client (retrace bench) $client_cpu s, on $(nproc) cores over $seconds s"
capacity_after=""
if [ -n "$best_c" ]; then
  probe probe-after "$best_c"
  capacity_after=$qps
fi

# --- the verdict ----------------------------------------------------------------------------
"$python" - "$out" "$seconds" "$SOAK_MAX_GROWTH_PCT" "$SOAK_MAX_DROPPED_PCT" "${best:-}" \
  "$capacity_after" "$server_cpu" "$client_cpu" <<'PY' | tee "$out/summary.txt"
import csv, json, sys
out, seconds, max_growth, max_dropped = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
capacity_before, capacity_after, server_cpu, client_cpu = sys.argv[5:9]
report = json.load(open(f"{out}/soak.json"))
samples = [(float(r["elapsed_s"]), int(r["rss_kb"])) for r in csv.DictReader(open(f"{out}/rss.csv"))]
warmup = min(max(0.2 * seconds, 30.0), seconds)
def mean(values):
    return sum(values) / len(values) if values else float("nan")
at_warmup = mean([r for t, r in samples if warmup - 5 < t <= warmup])
last = samples[-1][0] if samples else 0
final = mean([r for t, r in samples if t > last - 5])
after = [r for t, r in samples if t > warmup]
peak = max(after) if after else float("nan")
growth = 100 * (final - at_warmup) / at_warmup
peak_growth = 100 * (peak - at_warmup) / at_warmup
total = report["total"]
print(f"rate {report['load']['rate']} calls/s for {report['duration_s']:.0f} s, mix {report['mix']}, mode {report['mode']}")
if capacity_before:
    print(f"capacity (closed loop): {capacity_before} calls/s before the soak"
          + (f", {capacity_after} calls/s after it" if capacity_after else ""))
print(f"CPU: server {server_cpu} s, client {client_cpu} s in {seconds:.0f} s")
print(f"{'kind':<17}{'calls':>8}{'qps':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}{'dropped':>9}{'skipped':>9}")
for name, k in list(report["kinds"].items()) + [("total", total)]:
    l = k["latency_ms"]
    print(f"{name:<17}{k['calls']:>8}{k['qps']:>8.1f}{l['p50']:>9.1f}{l['p99']:>9.1f}{l['max']:>9.1f}"
          f"{k['errors']:>8}{k['dropped']:>9}{k['skipped']:>9}")
print("timeline (30 s windows): calls/s, dropped, mean and max latency (ms)")
timeline = report["timeline"]
for start in range(0, len(timeline), 30):
    w = timeline[start:start + 30]
    calls = sum(s["calls"] for s in w)
    mean = sum(s["mean_ms"] * s["calls"] for s in w) / calls if calls else 0
    print(f"  {start:>4}-{start + len(w):<4} s {calls / len(w):>7.1f} {sum(s['dropped'] for s in w):>6}"
          f" {mean:>8.1f} {max((s['max_ms'] for s in w), default=0):>8.1f}")
for e in total["errors_by_code"]:
    print(f"error {e['code']}: {e['count']} calls, first: {e['first_message']}")
print(f"RSS (MiB): {samples[0][1] / 1024:.1f} at the start, {at_warmup / 1024:.1f} after the "
      f"{warmup:.0f} s warm-up, max {peak / 1024:.1f} (+{peak_growth:.2f}%), final "
      f"{final / 1024:.1f}: growth after warm-up {growth:+.2f}% ({len(samples)} samples)")
problems = []
if total["errors"] > 0:
    problems.append(f"{total['errors']} calls failed")
dropped_pct = 100 * total["dropped"] / max(1, total["calls"] + total["dropped"])
if dropped_pct > max_dropped:
    problems.append(f"{dropped_pct:.1f}% of calls dropped (limit {max_dropped:g}%): the server "
                    "fell behind the rate")
elif total["dropped"] > 0:
    print(f"soak: warning: {total['dropped']} calls ({dropped_pct:.1f}%) dropped: the server fell "
          "behind the rate at times")
if not growth < max_growth:
    problems.append(f"RSS grew {growth:.2f}% after warm-up (limit {max_growth:g}%)")
print("soak: " + ("FAILED: " + "; ".join(problems) if problems else "passed"))
sys.exit(1 if problems else 0)
PY
