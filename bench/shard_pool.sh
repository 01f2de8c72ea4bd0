#!/usr/bin/env bash
# shard_pool.sh — multi-shard search QPS, the shard-search pool against the std::async thread per
# shard per call it replaced (issue 20), measured side by side: bench/shard_search_bench built at
# two commits, run alternately (the order flips each round) on the same data. Prints each run's
# line with the load average at its end beside it, then a markdown table of the mean QPS and CPU
# milliseconds per search of each side and their new / old ratios.
#
# The old side is this bench linked with sharded_index.cc from before the pool (49ab596):
#   cmake -S . -B build -G Ninja -DRETRACE_BUILD_BENCHMARKS=ON
#   git show 49ab596:core/index/sharded_index.cc > core/index/sharded_index.cc
#   cmake --build build --target shard_search_bench && cp build/bench/shard_search_bench /tmp/old
#   git checkout core/index/sharded_index.cc && cmake --build build --target shard_search_bench
#   OLD=/tmp/old ROUNDS=2 bench/shard_pool.sh
#   OLD=/tmp/old ITEMS=20000 DIM=64 SECONDS_PER_RUN=3 ROUNDS=2 bench/shard_pool.sh
# The two binaries place FAISS's code at different addresses, which alone moves its scalar inner
# product loop's speed by about 20% here; the 1-shard rows, the same code on both sides, show it.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
OLD=${OLD:?set OLD to shard_search_bench built before the pool}
NEW=${NEW:-$repo/build/bench/shard_search_bench}
ITEMS=${ITEMS:-100000}
DIM=${DIM:-512}
SHARDS=${SHARDS:-"1 4 8"}
CALLERS=${CALLERS:-1,8}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-5}
ROUNDS=${ROUNDS:-2}

results=$(mktemp)
trap 'rm -f "$results"' EXIT
for round in $(seq 1 "$ROUNDS"); do
  for shards in $SHARDS; do
    order="old new"
    [ $((round % 2)) -eq 0 ] && order="new old"
    for side in $order; do
      bin=$OLD
      [ "$side" = new ] && bin=$NEW
      "$bin" --items "$ITEMS" --dim "$DIM" --shards "$shards" --callers "$CALLERS" \
        --seconds "$SECONDS_PER_RUN" | while read -r line; do
        echo "round $round $side load $(cut -d' ' -f1-3 /proc/loadavg) | $line"
      done | tee -a "$results"
    done
  done
done

echo
echo "| shards | callers | old QPS | new QPS | QPS new / old | old CPU ms/search | new CPU ms/search | CPU new / old | 1-min load at each run's end |"
echo "|---|---|---|---|---|---|---|---|---|"
# Fields: side ($3), load ($5), shards ($15), callers ($17), qps ($21), cpu ms ($23).
awk '{ key = $15 " " $17; qps[key, $3] += $21; cpu[key, $3] += $23; n[key, $3]++
       loads[key] = loads[key] " " $5
       if (!(key in seen)) { seen[key] = 1; keys[++k] = key } }
     END { for (i = 1; i <= k; i++) {
             key = keys[i]; split(key, sc, " ")
             oq = qps[key, "old"] / n[key, "old"]; nq = qps[key, "new"] / n[key, "new"]
             oc = cpu[key, "old"] / n[key, "old"]; nc = cpu[key, "new"] / n[key, "new"]
             printf "| %s | %s | %.1f | %.1f | %.2fx | %.3f | %.3f | %.2fx |%s |\n", sc[1], sc[2],
                    oq, nq, nq / oq, oc, nc, nc / oc, loads[key] } }' "$results"
