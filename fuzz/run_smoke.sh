#!/usr/bin/env bash
# fuzz/run_smoke.sh BUILD_DIR SECONDS — `make fuzz-smoke`: runs each libFuzzer target for SECONDS
# over its seed corpus (fuzz/corpus/<target>, only read) plus BUILD_DIR/fuzz-corpus/<target>,
# where new inputs go, so the repository is never modified. Fails on the first crash, leak,
# sanitizer report, timeout or out-of-memory, naming the saved input. The tokenizer targets
# need ../shared/data (or $RETRACE_SHARED_DATA); without it they are skipped with a message,
# as the tests that need it are.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-fuzz}
seconds=${2:-25}
shared=${RETRACE_SHARED_DATA:-$(cd .. && pwd)/shared/data}
export RETRACE_SHARED_DATA=$shared

for target in image_decode clip_tokenizer gpt2_decoder request_conversion; do
  binary=$build/fuzz/${target}_fuzzer
  case $target in
    clip_tokenizer|gpt2_decoder)
      if [ ! -d "$shared" ]; then
        echo "fuzz-smoke: SKIPPED ${target}_fuzzer: shared test data not found at $shared"
        continue
      fi;;
  esac
  corpus=$build/fuzz-corpus/$target
  artifacts=$build/fuzz-artifacts/$target
  mkdir -p "$corpus" "$artifacts"
  log=$build/fuzz-artifacts/$target.log
  # -timeout: one input taking 10 s is a hang; -malloc_limit_mb: one allocation over 1 GB from
  # a small input is a bug (a decompression bomb that got past the limits).
  if ! nice -n 10 "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2560 \
      -malloc_limit_mb=1024 -print_final_stats=1 -artifact_prefix="$artifacts/" \
      "$corpus" "fuzz/corpus/$target" >"$log" 2>&1; then
    echo "fuzz-smoke: FAILED ${target}_fuzzer; the end of $log:"
    tail -n 60 "$log"
    exit 1
  fi
  runs=$(grep -o '^stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  echo "fuzz-smoke: ok ${target}_fuzzer, $runs inputs in ${seconds} s"
done
