#!/usr/bin/env bash
# CTest fixture: makes the models and images the integration tests use, under $1 (the build's
# test_fixtures/). Without the shared data (tokenizer files) it makes nothing and says so; the
# tests that need the fixtures then skip with that message.
set -euo pipefail
out=$1
repo=$(cd "$(dirname "$0")/../.." && pwd)
shared=${RETRACE_SHARED_DATA:-$repo/../shared/data}
python=${PYTHON:-/usr/bin/python3}
if [ ! -d "$shared" ]; then
  echo "make_fixtures: shared data not found at $shared (set RETRACE_SHARED_DATA); no fixtures made"
  rm -rf "$out"
  exit 0
fi
rm -rf "$out.tmp"
mkdir -p "$out.tmp"
"$python" "$repo/tools/fixtures/make_models.py" --kind oracle --out "$out.tmp/oracle" --shared-data "$shared"
"$python" "$repo/tools/fixtures/make_models.py" --kind demo --out "$out.tmp/demo" --shared-data "$shared"
"$python" "$repo/tools/fixtures/make_models.py" --kind demo --dtype int8-dynamic --out "$out.tmp/demo-int8" --shared-data "$shared"
"$python" "$repo/tools/fixtures/make_models.py" --kind rules --out "$out.tmp/rules" --shared-data "$shared"
"$python" "$repo/tools/fixtures/make_models.py" --kind lm --out "$out.tmp/lm" --shared-data "$shared"
"$python" "$repo/tools/fixtures/make_images.py" --out "$out.tmp/images" --per-class 3 --seed 7
rm -rf "$out"
mv "$out.tmp" "$out"
echo "make_fixtures: fixtures in $out"
