#!/usr/bin/env bash
# python_baseline.sh — issue 7 (c): retrace-server against what a user would otherwise write, a
# Python grpcio + PyTorch + FAISS server (bench/python_baseline/server.py; its header gives its
# choices), both serving Caption-Matching search by image over the same gallery with the same
# TorchScript CLIP. Both servers run at once on loopback; `retrace bench --json --mix
# search-image=1` drives one at a time, in alternating rounds (retrace, baseline, retrace, ...)
# at each concurrency, so a slow spell of the shared machine falls on both. Prints each run's QPS
# and the medians' ratios retrace / baseline of QPS, p50 and p99, and each server's CPU time per
# call (from /proc; warm-up calls included): on a shared machine a server with more runnable
# threads takes a larger share of the cores, which QPS alone does not show.
#
#   bench/python_baseline.sh                          # demo models, concurrency 8 and 32, 3 rounds
#   MODEL_SETS="demo vitb32" bench/python_baseline.sh # also the ViT-B/32-sized CLIP
#   ROUNDS=1 SECONDS_PER_RUN=5 bench/python_baseline.sh   # a quick look
#   PERF=1 bench/python_baseline.sh                   # also perf record -g each server in round 1
#                                                     # at the highest concurrency (reports in OUT)
#   BEFORE_BUILD=../main/build bench/python_baseline.sh   # also another build's retrace-server
#                                                     # ("retrace-before"), in the same rounds
#
# Environment (defaults in brackets):
#   MODEL_SETS [demo]             demo (build/models, made when missing) and/or vitb32
#                                 (make_models.py --kind clip-vitb32, made when missing)
#   CONCURRENCY ["8 32"]          closed-loop client concurrencies
#   ROUNDS [3]                    alternating rounds per concurrency
#   SECONDS_PER_RUN [15]          measured seconds per run, after WARMUP_SECONDS [3]
#   GALLERY_ITEMS_DEMO [all]      gallery images (the first N of IMAGES, relative ids kept)
#   GALLERY_ITEMS_VITB32 [32]     fewer: indexing runs the big CLIP once per image
#   BASELINE_WORKERS [8]          the baseline's ThreadPoolExecutor max_workers
#   BASELINE_TORCH_THREADS [1]    the baseline's torch.set_num_threads (0: the cores)
#   BEFORE_BUILD []               a second build whose retrace-server runs as "retrace-before"
#                                 beside BUILD's, on the same gallery (before/after a change)
#   BASELINE [1]                  0: no Python baseline (retrace and retrace-before only; needs
#                                 neither PyTorch nor FAISS in Python)
#   RETRACE_ARGS []               extra flags for the retrace servers, e.g. --config FILE
#   SERVER_ENV []                 environment for both servers, e.g. OPENBLAS_NUM_THREADS=1
#                                 (neither LibTorch's nor PyTorch's thread setting bounds OpenBLAS's
#                                 own pool, whose idle threads yield-spin on a busy machine)
#   IMAGES [$RETRACE_SHARED_DATA/pacs-mini]   gallery and query images
#   OUT [$BUILD/python-baseline/YYYYmmdd-HHMMSS]   JSON reports, logs, table.md
#   BUILD [build]
#
# The baseline's defaults were chosen by a scan on the 2-core machine of BENCHMARKS.md (demo
# models, one 8 s run at concurrency 8 and 32 per setting, with BASELINE_WORKERS and
# BASELINE_TORCH_THREADS): workers 1, 2, 4, 8 x torch threads 1, 2. 8 x 1 served the most
# (151 and 152 QPS; the others 75-148), though 4 x 2 and 2 x 2 were within the machine's noise.
#
# Needs build/retrace-server and build/retrace (cmake --build build) and, in /usr/bin/python3:
#   tools/install_deps.sh (python3-torch python3-pil python3-numpy python3-grpcio python3-protobuf python3-faiss)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$repo/build}
MODEL_SETS=${MODEL_SETS:-demo}
CONCURRENCY=${CONCURRENCY:-8 32}
ROUNDS=${ROUNDS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-15}
WARMUP_SECONDS=${WARMUP_SECONDS:-3}
GALLERY_ITEMS_DEMO=${GALLERY_ITEMS_DEMO:-100000}
GALLERY_ITEMS_VITB32=${GALLERY_ITEMS_VITB32:-32}
BASELINE_WORKERS=${BASELINE_WORKERS:-8}
BASELINE_TORCH_THREADS=${BASELINE_TORCH_THREADS:-1}
SERVER_ENV=${SERVER_ENV:-}
BEFORE_BUILD=${BEFORE_BUILD:-}
BASELINE=${BASELINE:-1}
RETRACE_ARGS=${RETRACE_ARGS:-}
shared=${RETRACE_SHARED_DATA:-$repo/../shared/data}
IMAGES=${IMAGES:-$shared/pacs-mini}
OUT=${OUT:-$BUILD/python-baseline/$(date +%Y%m%d-%H%M%S)}
python=/usr/bin/python3

say() { echo "python_baseline: $*"; }
fail() { echo "python_baseline: FAILED: $*" >&2; exit 1; }

missing=""
python_modules="grpc google.protobuf"
[ "$BASELINE" = 1 ] && python_modules="torch PIL numpy $python_modules faiss"
for m in $python_modules; do
  "$python" -c "import $m" 2>/dev/null || missing="$missing $m"
done
[ -z "$missing" ] || fail "python modules missing:$missing (apt-get install -y python3-torch python3-pil python3-numpy python3-grpcio python3-protobuf python3-faiss)"
for f in "$BUILD/retrace-server" "$BUILD/retrace"; do
  [ -x "$f" ] || fail "$f not found (cmake --build build)"
done
if [ -n "$BEFORE_BUILD" ]; then
  [ -x "$BEFORE_BUILD/retrace-server" ] || fail "$BEFORE_BUILD/retrace-server not found (BEFORE_BUILD)"
fi
[ -d "$IMAGES" ] || fail "no images at $IMAGES (set IMAGES or RETRACE_SHARED_DATA)"
if [ "${PERF:-0}" = 1 ] && ! command -v perf >/dev/null; then fail "PERF=1 but perf is not installed"; fi

mkdir -p "$OUT"
out=$(cd "$OUT" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/retrace-python-baseline.XXXXXX")
pids=()
stop_servers() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
cleanup() {
  local status=$?
  stop_servers
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# CPU seconds (user + system) of a process so far, from /proc/PID/stat.
cpu_seconds() {
  awk -v tck="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / tck }' "/proc/$1/stat"
}

# How busy the machine was, for every run line: the 1-minute load average, and the busy CPU
# seconds of every process so far (from /proc/stat), whose difference over a run, less the
# server's and its client's, is what the rest of the machine took.
load_average() { cut -d' ' -f1 /proc/loadavg; }
machine_busy_seconds() {
  awk -v tck="$(getconf CLK_TCK)" '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / tck }' /proc/stat
}

# wait_port NAME PID: waits for $work/NAME.port; prints the port.
wait_port() {
  for _ in $(seq 1 480); do
    [ -s "$work/$1.port" ] && { cat "$work/$1.port"; return 0; }
    kill -0 "$2" 2>/dev/null || { tail -20 "$out/$1.log" >&2; fail "$1 exited at start"; }
    sleep 0.25
  done
  fail "$1 wrote no port file in 120 s"
}

# start_retrace BUILD NAME MODELS_DIR GALLERY: starts BUILD's retrace-server and indexes the
# gallery into collection "bench"; sets started_pid and started_addr.
start_retrace() {
  local build=$1 name=$2 models=$3 gallery=$4
  # shellcheck disable=SC2086  # SERVER_ENV is a list of NAME=VALUE, RETRACE_ARGS of flags
  env $SERVER_ENV "$build/retrace-server" --models "$models" --data-dir "$work/data-$name" --listen 127.0.0.1:0 \
    --port-file "$work/$name.port" --log-level warn $RETRACE_ARGS 2>"$out/$name.log" &
  pids+=($!)
  started_pid=$!
  started_addr=127.0.0.1:$(wait_port "$name" "$started_pid")
  "$python" "$repo/bench/grpc_py.py" wait-serving "$started_addr" --timeout 300 \
    || fail "$name never became SERVING (see $out/$name.log)"
  local cli=("$BUILD/retrace" --server "$started_addr" --timeout 300)
  "${cli[@]}" collections create bench >/dev/null
  "${cli[@]}" index --collection bench "$gallery" | sed "s/^/python_baseline: $name: /"
}

run_set() {  # run_set NAME MODELS_DIR GALLERY_ITEMS
  local set=$1 models=$2 items=$3
  say "== models $set ($models)${SERVER_ENV:+, servers run with $SERVER_ENV}"
  # The gallery: the first $items images of IMAGES, under their paths relative to it (the ids).
  local gallery=$work/gallery-$set
  mkdir -p "$gallery"
  # awk, not head: head would stop reading, and sort's SIGPIPE would fail the pipeline (pipefail).
  (cd "$IMAGES" && find . -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) | sort \
     | awk -v n="$items" 'NR <= n') | while read -r rel; do
    mkdir -p "$gallery/$(dirname "$rel")"
    ln -s "$IMAGES/$rel" "$gallery/$rel"
  done

  local retrace_pid baseline_pid="" retrace_addr baseline_addr before_pid="" before_addr=""
  start_retrace "$BUILD" "retrace-$set" "$models" "$gallery"
  retrace_pid=$started_pid; retrace_addr=$started_addr
  if [ -n "$BEFORE_BUILD" ]; then
    start_retrace "$BEFORE_BUILD" "retrace-before-$set" "$models" "$gallery"
    before_pid=$started_pid; before_addr=$started_addr
  fi
  if [ "$BASELINE" = 1 ]; then
    "$python" "$repo/bench/python_baseline/gallery.py" --server "$retrace_addr" --collection bench \
      --images "$gallery" --out "$work/gallery-$set.npz" | sed "s/^/python_baseline: $set: /"
    # shellcheck disable=SC2086
    env $SERVER_ENV "$python" "$repo/bench/python_baseline/server.py" --clip "$models/clip" \
      --gallery "$work/gallery-$set.npz" --collection bench --port-file "$work/baseline-$set.port" \
      --workers "$BASELINE_WORKERS" --torch-threads "$BASELINE_TORCH_THREADS" \
      >"$out/baseline-$set.log" 2>&1 &
    pids+=($!)
    baseline_pid=$!
    baseline_addr=127.0.0.1:$(wait_port "baseline-$set" $!)
    "$python" "$repo/bench/grpc_py.py" wait-serving "$baseline_addr" --timeout 300 \
      || fail "the baseline never became SERVING (see $out/baseline-$set.log)"
    say "$set: retrace-server on $retrace_addr, baseline on $baseline_addr ($(head -1 "$out/baseline-$set.log"))"
    "$python" "$repo/bench/python_baseline/compare.py" parity --retrace "$retrace_addr" \
      --baseline "$baseline_addr" --collection bench --images "$IMAGES" | sed "s/^/python_baseline: $set: /"
  fi

  local round c server addr pid cpu0 busy0 t0 run perf_pid last_c=${CONCURRENCY##* }
  for round in $(seq 1 "$ROUNDS"); do
    for c in $CONCURRENCY; do
      for server in retrace ${before_pid:+retrace-before} ${baseline_pid:+baseline}; do
        case $server in
          retrace) addr=$retrace_addr; pid=$retrace_pid ;;
          retrace-before) addr=$before_addr; pid=$before_pid ;;
          baseline) addr=$baseline_addr; pid=$baseline_pid ;;
        esac
        run=$out/$set-$server-c$c-r$round
        cpu0=$(cpu_seconds "$pid"); busy0=$(machine_busy_seconds); t0=$(date +%s.%N)
        perf_pid=""
        if [ "${PERF:-0}" = 1 ] && [ "$round" = 1 ] && [ "$c" = "$last_c" ]; then
          perf record -F 199 -g -p "$pid" -o "$run.perf.data" -- sleep "$((WARMUP_SECONDS + SECONDS_PER_RUN))" \
            >/dev/null 2>"$run.perf.err" &
          perf_pid=$!
        fi
        "$BUILD/retrace" --server "$addr" --timeout 300 --json bench --collection bench \
          --images "$IMAGES" --mix search-image=1 --concurrency "$c" --duration "$SECONDS_PER_RUN" \
          --warmup "$WARMUP_SECONDS" >"$run.json" \
          || fail "retrace bench against $server at concurrency $c failed (see $run.json)"
        if [ -n "$perf_pid" ]; then
          wait "$perf_pid" || true
          perf report -i "$run.perf.data" --no-children -g none --sort dso --stdio >"$run.perf-dso.txt" 2>/dev/null || true
          perf report -i "$run.perf.data" --no-children -g none --sort dso,sym --percent-limit 0.5 --stdio \
            >"$run.perf-sym.txt" 2>/dev/null || true
        fi
        "$python" -c 'import json,sys; w = float(sys.argv[4]) - float(sys.argv[5]); json.dump({"cpu_s": float(sys.argv[2]) - float(sys.argv[3]), "wall_s": w, "load": float(sys.argv[6]), "machine_cores": (float(sys.argv[7]) - float(sys.argv[8])) / w}, open(sys.argv[1], "w"))' \
          "$run.cpu.json" "$(cpu_seconds "$pid")" "$cpu0" "$(date +%s.%N)" "$t0" "$(load_average)" \
          "$(machine_busy_seconds)" "$busy0"
        "$python" -c 'import json,sys; r = json.load(open(sys.argv[1] + ".json")); t = r["total"]; u = json.load(open(sys.argv[1] + ".cpu.json")); print("python_baseline: %s round %s concurrency %s %-14s %7.1f QPS  p50 %6.1f ms  p99 %6.1f ms  %d errors  CPU %.1f ms/call, %.2f cores (machine %.2f busy, load %.2f)" % (*sys.argv[2:], t["qps"], t["latency_ms"]["p50"], t["latency_ms"]["p99"], t["errors"], 1000 * u["cpu_s"] / (t["calls"] + r["warmup_calls"]), u["cpu_s"] / u["wall_s"], u["machine_cores"], u["load"]))' \
          "$run" "$set" "$round" "$c" "$server"
      done
    done
  done
  stop_servers
}

for set in $MODEL_SETS; do
  case $set in
    demo)
      if [ ! -s "$BUILD/models/clip/model.pt" ]; then
        "$python" "$repo/tools/fixtures/make_models.py" --kind demo --out "$BUILD/models" >/dev/null
      fi
      run_set demo "$BUILD/models" "$GALLERY_ITEMS_DEMO" ;;
    vitb32)
      if [ ! -s "$BUILD/models-vitb32/clip/model.pt" ]; then
        "$python" "$repo/tools/fixtures/make_models.py" --kind clip-vitb32 --out "$BUILD/models-vitb32" >/dev/null
      fi
      run_set vitb32 "$BUILD/models-vitb32" "$GALLERY_ITEMS_VITB32" ;;
    *) fail "unknown model set '$set' (demo, vitb32)" ;;
  esac
done

echo
"$python" "$repo/bench/python_baseline/compare.py" table "$out" | tee "$out/table.md"
