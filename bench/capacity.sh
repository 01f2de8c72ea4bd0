#!/usr/bin/env bash
# capacity.sh — the figures of BENCHMARKS.md "Capacity at 1M x 768": capacity_bench once per
# index type, one process each, `uptime` before each. HNSW32 runs at HNSW_ITEMS (its graph build
# does not fit the time of a run on 2 cores at 1M; raise it on a bigger machine).
#
#   bench/capacity.sh                           # Flat, SQfp16, SQ8, IVF1024,PQ96 at 1M; HNSW32
#   ITEMS=100000 HNSW_ITEMS=50000 bench/capacity.sh
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$repo/build}
ITEMS=${ITEMS:-1000000}
HNSW_ITEMS=${HNSW_ITEMS:-200000}
DIM=${DIM:-768}
DIR=${DIR:-/tmp/retrace_capacity_bench}
# OpenMP threads that spin while waiting cost 3-4x in k-means on a shared, loaded machine.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

run() {
  echo "== $1 ($2 items) -- $(uptime)"
  "$BUILD/bench/capacity_bench" --factory "$1" --items "$2" --dim "$DIM" --dir "$DIR" "${@:3}" \
    2> >(grep -v '^WARNING clustering' >&2)
}
run Flat "$ITEMS"
run SQfp16 "$ITEMS"
run SQ8 "$ITEMS"
run IVF1024,PQ96 "$ITEMS"
run HNSW32 "$HNSW_ITEMS"
