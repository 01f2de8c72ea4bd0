#!/usr/bin/env bash
# bench/gpu/run.sh — retrace's model path against Hugging Face eager on one GPU, in one run
# (issue 20, part 5). For a machine with an H100-class GPU where PyTorch 2.x with CUDA and
# `transformers` are installed and nothing can be downloaded:
#   1. builds retrace's model runtime and gpu_model_bench (bench/gpu/CMakeLists.txt) against that
#      PyTorch's LibTorch (needs cmake, a C++17 compiler and abseil's CMake package);
#   2. makes random-initialised, real-size CLIP ViT-H/14 and BLIP-2 OPT-2.7b from their
#      configurations on the GPU, saves them as TorchScript (retrace's contract), and measures
#      Hugging Face eager images/s (get_image_features) and captions/s (generate) in bfloat16;
#   3. runs gpu_model_bench on the same files, device and dtype;
#   4. prints one markdown table (OUT/table.md) with both sides per batch size.
# About 6-10 minutes with the defaults (most of it the two 10 s points per batch and side).
#
#   bench/gpu/run.sh
#   BATCHES=1,8,32,64 SECONDS_PER_POINT=20 bench/gpu/run.sh
#   # the retrace side alone, on any models and device (how it was checked on a CPU):
#   RETRACE_ONLY=1 DEVICE=cpu DTYPE=float32 CLIP_PT=m/clip/model.pt \
#     CAPTIONER_PT=m/captioner/model.pt IMAGE_SIZE=32 VOCAB=50272 bench/gpu/run.sh
#
# Environment (defaults in brackets):
#   PYTHON [python3]            the Python that has torch 2.x (CUDA) and transformers
#   DEVICE [cuda:0]  DTYPE [bfloat16]  BATCHES [1,8,32]  TOKENS [30]  SECONDS_PER_POINT [10]
#   ATTN [sdpa]                 transformers attention for the HF side (and the traced towers)
#   OUT [bench/gpu/out/YYYYmmdd-HHMMSS]   models, CSVs, logs, table.md
#   TORCH_PREFIX [torch.utils.cmake_prefix_path]   where find_package(Torch) looks
#   CMAKE_ARGS []               extra configure arguments (e.g. -Dabsl_DIR=...)
#   RETRACE_ONLY [0]            1: skip the Python side; then CLIP_PT / CAPTIONER_PT (either may
#                               be empty), IMAGE_SIZE [224], VOCAB, BOS [2], EOS [50118] are used
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda:0}
DTYPE=${DTYPE:-bfloat16}
BATCHES=${BATCHES:-1,8,32}
TOKENS=${TOKENS:-30}
SECONDS_PER_POINT=${SECONDS_PER_POINT:-10}
ATTN=${ATTN:-sdpa}
OUT=${OUT:-$here/out/$(date +%Y%m%d-%H%M%S)}
CMAKE_ARGS=${CMAKE_ARGS:-}
RETRACE_ONLY=${RETRACE_ONLY:-0}

say() { echo "gpu/run.sh: $*"; }
fail() { echo "gpu/run.sh: FAILED: $*" >&2; exit 1; }

command -v cmake >/dev/null || fail "cmake is not installed"
command -v "$PYTHON" >/dev/null || fail "no $PYTHON (set PYTHON to the Python that has torch)"
"$PYTHON" -c 'import torch' 2>/dev/null || fail "$PYTHON has no torch (set PYTHON)"
# retrace's runtime links abseil, built with the C++11 string ABI (as every current distribution
# builds it); a LibTorch of the old ABI (PyTorch wheels before 2.7 on Linux) cannot link with it.
"$PYTHON" -c 'import sys, torch; sys.exit(0 if torch._C._GLIBCXX_USE_CXX11_ABI else 1)' ||
  fail "this PyTorch's LibTorch uses the pre-C++11 string ABI (torch._C._GLIBCXX_USE_CXX11_ABI is
  False), which cannot link with abseil; use PyTorch >= 2.7 or a cxx11-abi LibTorch (TORCH_PREFIX)"
if [[ $RETRACE_ONLY != 1 ]]; then
  "$PYTHON" -c 'import transformers' 2>/dev/null ||
    fail "$PYTHON has no transformers: the models' definitions and the Hugging Face baseline need
  it (nothing is downloaded here; install it where this runs)"
  if [[ $DEVICE == cuda* ]]; then
    "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' ||
      fail "torch.cuda.is_available() is false for $PYTHON: no usable GPU"
  fi
fi
TORCH_PREFIX=${TORCH_PREFIX:-$("$PYTHON" -c 'import torch; print(torch.utils.cmake_prefix_path)')}
mkdir -p "$OUT"
say "output in $OUT"

# 1. The runtime and the benchmark, against this PyTorch's LibTorch.
build=$OUT/build
say "building gpu_model_bench against $TORCH_PREFIX"
# shellcheck disable=SC2086  # CMAKE_ARGS is a list of arguments
cmake -S "$here" -B "$build" -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" $CMAKE_ARGS >"$OUT/configure.log" 2>&1 ||
  fail "configure failed (needs abseil's CMake package, e.g. Debian's libabsl-dev): $OUT/configure.log"
cmake --build "$build" -j "$(nproc)" >"$OUT/build.log" 2>&1 || fail "build failed: $OUT/build.log"

# 2. The models and the Hugging Face side.
if [[ $RETRACE_ONLY == 1 ]]; then
  CLIP_PT=${CLIP_PT:-}
  CAPTIONER_PT=${CAPTIONER_PT:-}
  IMAGE_SIZE=${IMAGE_SIZE:-224}
  VOCAB=${VOCAB:?set VOCAB, the captioner vocabulary size, with RETRACE_ONLY=1}
  BOS=${BOS:-2}
  EOS=${EOS:-50118}
else
  say "making the models and measuring Hugging Face eager ($DTYPE, $DEVICE)"
  "$PYTHON" "$here/gpu_bench.py" make-and-measure --out "$OUT" --device "$DEVICE" --dtype "$DTYPE" \
    --attn "$ATTN" --batches "$BATCHES" --tokens "$TOKENS" --seconds "$SECONDS_PER_POINT" \
    2>&1 | tee "$OUT/hf.log"
  CLIP_PT=$OUT/models/clip.pt
  CAPTIONER_PT=$OUT/models/captioner.pt
  # shellcheck disable=SC1091  # written by gpu_bench.py
  source "$OUT/models/info.env"
fi

# 3. The retrace side.
say "measuring retrace's model path"
"$build/gpu_model_bench" --clip "$CLIP_PT" --captioner "$CAPTIONER_PT" --device "$DEVICE" \
  --dtype "$DTYPE" --batches "$BATCHES" --image-size "$IMAGE_SIZE" --vocab "$VOCAB" --bos "$BOS" \
  --eos "$EOS" --tokens "$TOKENS" --seconds "$SECONDS_PER_POINT" | tee "$OUT/retrace.csv"

# 4. One table.
"$PYTHON" "$here/gpu_bench.py" report "$OUT/hf.csv" "$OUT/retrace.csv" --tokens "$TOKENS" \
  | tee "$OUT/table.md"
say "done: $OUT/table.md"
