#!/usr/bin/env bash
# cuda_configure_test.sh SOURCE_DIR — configuring with -DRETRACE_WITH_CUDA=ON against a LibTorch
# without CUDA (Debian's, on these machines) must stop at configure, naming Torch_DIR, instead
# of building a server that refuses every cuda:N at start. Configure only, into a temporary
# folder; it stops right after find_package(Torch/faiss), so it takes seconds.
set -euo pipefail
source_dir=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if cmake -S "$source_dir" -B "$tmp" -G Ninja -DRETRACE_WITH_CUDA=ON >"$tmp/log" 2>&1; then
  echo "FAILED: configure with RETRACE_WITH_CUDA=ON succeeded against a CPU-only LibTorch" >&2
  cat "$tmp/log" >&2
  exit 1
fi
for want in "RETRACE_WITH_CUDA=ON needs a LibTorch built with CUDA" "Torch_DIR="; do
  if ! tr '\n' ' ' <"$tmp/log" | tr -s ' ' | grep -qF "$want"; then
    echo "FAILED: the configure error does not say \"$want\":" >&2
    cat "$tmp/log" >&2
    exit 1
  fi
done
echo "ok: RETRACE_WITH_CUDA=ON stops at configure, naming Torch_DIR"
