#!/usr/bin/env bash
# capacity.sh — the figures of BENCHMARKS.md "Capacity at 1M x 768": capacity_bench once per
# index type, one process each, `uptime` before each. HNSW32 runs at HNSW_ITEMS: Debian's FAISS
# computes its 768-d distances without SIMD, and its graph build did not get through 50,000
# items in 10 minutes on 2 shared cores; raise it on a bigger machine. The SQ types
# measure recall on SQ_QUERIES queries: Debian's FAISS decodes them without SIMD, so 1,000
# exhaustive queries over 1M items take over 10 minutes on 2 cores.
#
#   bench/capacity.sh                           # Flat, SQfp16, SQ8, IVF1024,PQ96 at 1M; HNSW32
#   TYPES="SQ8 HNSW32" ITEMS=100000 HNSW_ITEMS=50000 bench/capacity.sh
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$repo/build}
TYPES=${TYPES:-Flat SQfp16 SQ8 IVF1024,PQ96 HNSW32}
ITEMS=${ITEMS:-1000000}
HNSW_ITEMS=${HNSW_ITEMS:-20000}
SQ_QUERIES=${SQ_QUERIES:-100}
DIM=${DIM:-768}
DIR=${DIR:-/tmp/retrace_capacity_bench}
# OpenMP threads that spin while waiting cost 3-4x in k-means on a shared, loaded machine.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

for factory in $TYPES; do
  args=(--factory "$factory" --items "$ITEMS" --dim "$DIM" --dir "$DIR")
  case "$factory" in
    HNSW*) args+=(--items "$HNSW_ITEMS") ;;
    SQ*) args+=(--queries "$SQ_QUERIES") ;;
  esac
  echo "== ${args[*]} -- $(uptime)"
  "$BUILD/bench/capacity_bench" "${args[@]}" 2> >(grep -v '^WARNING clustering' >&2)
done
