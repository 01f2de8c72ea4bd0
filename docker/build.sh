#!/usr/bin/env bash
# docker/build.sh [BUILD-OPTION...] — builds the image of docker/Dockerfile (or $DOCKERFILE)
# from this checkout with `docker build` (or `podman build` when there is no docker, or $ENGINE),
# passing the options on, e.g.:
#   docker/build.sh -t retrace:0.1.0
#   DOCKERFILE=docker/Dockerfile.cuda docker/build.sh -t retrace-cuda:0.1.0
#
# The demo models baked into the image need the CLIP and OPT tokenizer files, which live beside
# the checkout in ../shared/data (or $RETRACE_SHARED_DATA), outside the build context: this copies
# them into .docker-shared/ (ignored by git) first. To build without this script, copy
# clip/bpe_simple_vocab_16e6.txt.gz, gpt2/opt_vocab.json and gpt2/merges.txt there yourself.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
shared=${RETRACE_SHARED_DATA:-$repo/../shared/data}
engine=${ENGINE:-$(command -v docker >/dev/null 2>&1 && echo docker || echo podman)}
files=(clip/bpe_simple_vocab_16e6.txt.gz gpt2/opt_vocab.json gpt2/merges.txt)

rm -rf "$repo/.docker-shared"
for f in "${files[@]}"; do
  [ -f "$shared/$f" ] || { echo "docker/build.sh: $shared/$f not found (set RETRACE_SHARED_DATA)" >&2; exit 1; }
  mkdir -p "$repo/.docker-shared/$(dirname "$f")"
  cp "$shared/$f" "$repo/.docker-shared/$f"
done
cd "$repo"
exec $engine build -f "${DOCKERFILE:-docker/Dockerfile}" "$@" .
