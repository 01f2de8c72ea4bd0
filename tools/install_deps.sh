#!/usr/bin/env bash
# Installs the Debian 12 packages retrace builds and runs with, when any is missing.
# Needs root (or passwordless sudo) only when something must be installed.
set -euo pipefail

packages=(
  cmake ninja-build g++ make pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libtorch-dev python3-torch python3-numpy libfaiss-dev libopenblas-dev libopencv-dev
  libspdlog-dev libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev
  libsqlite3-dev nlohmann-json3-dev libicu-dev zlib1g-dev libssl-dev openssl
  libcpp-httplib-dev  # the Prometheus /metrics endpoint
  clang llvm  # libFuzzer targets and the sanitizer builds
  chromium  # headless, for the test that renders the evaluation report
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "retrace: installing missing Debian packages: ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
  run=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  run=(sudo -n)
else
  echo "retrace: these packages are missing and installing them needs root:" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${run[@]}" apt-get update -q >/dev/null
"${run[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
echo "retrace: packages installed" >&2
