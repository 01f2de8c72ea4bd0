#!/usr/bin/env bash
# deploy/tools/shard_map.sh's test (CTest, label deploy): deploy/sharded/shard-map.txtpb is what
# the script makes for the StatefulSet it ships (2 groups x 2 replicas, namespace retrace); pod
# i serves group i mod GROUPS, so growing the replicas per group appends pods and moves none;
# bad arguments are refused.
set -euo pipefail
deploy=$(cd "$(dirname "$0")/.." && pwd)
map=$deploy/tools/shard_map.sh
fail() { echo "shard_map_test: FAILED: $*" >&2; exit 1; }

diff <("$map" 2 2 retrace) "$deploy/sharded/shard-map.txtpb" >/dev/null ||
  fail "deploy/sharded/shard-map.txtpb is not 'deploy/tools/shard_map.sh 2 2 retrace'; regenerate it"

groups_of() {  # the map as one line per group: its pods' ordinals
  "$map" "$@" | awk '/^groups/ {if (g) print g; g=""} /replicas:/ {
    split($2, a, "."); n = a[1]; sub(/.*-/, "", n); g = g (g ? " " : "") n } END {print g}'
}
[ "$(groups_of 3 2 ns)" = "$(printf '0 3\n1 4\n2 5')" ] || fail "3 x 2: $(groups_of 3 2 ns)"
# One more replica per group: every pod keeps its group; the new ones (6, 7, 8) are appended.
[ "$(groups_of 3 3 ns)" = "$(printf '0 3 6\n1 4 7\n2 5 8')" ] || fail "3 x 3: $(groups_of 3 3 ns)"
# Not grep -q: it exits at the first match, and under pipefail the writer's SIGPIPE fails the line.
"$map" 1 1 prod | grep -x '  replicas: "retrace-shard-0.retrace-shard.prod.svc:50051"' >/dev/null ||
  fail "the address form"
[ "$(env STATEFULSET=s SERVICE=h PORT=7 "$map" 1 1 n | grep "replicas:")" = '  replicas: "s-0.h.n.svc:7"' ] ||
  fail "STATEFULSET, SERVICE, PORT"
for bad in "0 2 ns" "2 0 ns" "x 2 ns" "2 2 Bad_Namespace" "2 2" "2 2 ns extra"; do
  set +e
  # shellcheck disable=SC2086
  "$map" $bad >/dev/null 2>&1
  status=$?
  set -e
  [ $status -eq 2 ] || fail "'$bad' exited $status, expected 2"
done
echo "shard_map_test: passed"
