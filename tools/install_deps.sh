#!/usr/bin/env bash
# Installs the Debian 12 packages retrace builds, serves and tests with, when any is missing.
# Needs root (or passwordless sudo) only when something must be installed.
#
#   tools/install_deps.sh          install what is missing
#   tools/install_deps.sh --list   print the package list, one per line (for the dependency check
#                                  tools/check_install_deps.py and the container build)
#   tools/install_deps.sh --alternatives   "LISTED OTHER" lines: OTHER, when installed, stands
#                                  for LISTED (below, satisfied_by)
#
# This list is the one place packages are named: `make`, CI's fresh root (tools/fresh_root.sh)
# and the container image all install through this script. `make test` runs
# tools/check_install_deps.py, which fails when a Python module or a command the project uses
# comes from a package that is not here (directly or as a dependency).
set -euo pipefail

packages=(
  # the build
  cmake ninja-build g++ make pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libtorch-dev libfaiss-dev libopenblas-dev libopencv-dev
  libspdlog-dev libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev
  libsqlite3-dev nlohmann-json3-dev libicu-dev zlib1g-dev libssl-dev
  libcpp-httplib-dev  # the Prometheus /metrics endpoint
  libpq-dev postgresql  # the PostgreSQL store; the tests start servers of their own
  # the model and image fixtures (tools/fixtures), made by `make models` and the tests
  python3 python3-torch python3-numpy python3-pil
  python3-torchvision  # the open_clip exporter's preprocessing, and the image-encoder baselines
  # the Python client (client/python) and its pytest suite (tests/python); pip and setuptools
  # install it offline (pip install --no-build-isolation --no-deps ./client/python)
  python3-grpcio python3-protobuf python3-pytest python3-pip python3-setuptools
  # the tests: TLS certificates, the evaluation report rendered headless
  openssl chromium
  # deploy/'s checks: kustomize renders (kubectl 1.20) and the schema validator (Node.js 18 and
  # npm, which install its pinned packages: deploy/validate/package-lock.json)
  kubernetes-client nodejs npm
  # libFuzzer targets and the sanitizer builds: clang, its runtimes (libFuzzer, ASan, UBSan, TSan:
  # only recommended by clang, so not installed with it) and its OpenMP (the build links OpenMP)
  clang llvm libclang-rt-dev libomp-dev
  git  # the fresh-root CI copies the checkout's files (tools/fresh_root.sh)
  python3-faiss  # bench/python_baseline.sh: the Python server that benchmark (c) compares with
)

# Packages from other repositories that do the listed one's job and cannot be installed beside
# it: the Kubernetes project's apt repository ships `kubectl`, which owns /usr/bin/kubectl as
# Debian's kubernetes-client does (dpkg refuses to unpack the second), and renders kustomizations
# as well (deploy/validate/render.sh).
declare -A satisfied_by=([kubernetes-client]=kubectl)

if [ "${1:-}" = "--list" ]; then
  printf '%s\n' "${packages[@]}"
  exit 0
fi
if [ "${1:-}" = "--alternatives" ]; then
  for p in "${!satisfied_by[@]}"; do echo "$p ${satisfied_by[$p]}"; done
  exit 0
fi

# A package is there when dpkg has it installed, or when an installed package provides it: a
# machine whose Node.js comes from elsewhere (NodeSource's nodejs provides and conflicts with npm)
# has what npm is listed for, and installing Debian's npm would fight it.
provided=" $(dpkg-query -W -f='${db:Status-Abbrev} ${Provides}\n' 2>/dev/null |
  awk '/^ii/ {$1 = ""; print}' | tr ',' '\n' | sed 's/(.*)//; s/^ *//; s/ *$//' | tr '\n' ' ') "
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=()
for p in "${packages[@]}"; do
  installed "$p" || [[ $provided == *" $p "* ]] ||
    { [ -n "${satisfied_by[$p]:-}" ] && installed "${satisfied_by[$p]}"; } || missing+=("$p")
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
# Debian's postgresql package would create and start a system cluster; retrace needs only the
# programs (its tests start servers of their own, on loopback), so ask it not to.
if [[ " ${missing[*]} " == *" postgresql "* ]] && [ ! -d /etc/postgresql ]; then
  "${run[@]}" mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false  # retrace: no system cluster" |
    "${run[@]}" tee /etc/postgresql-common/createcluster.d/50-retrace.conf >/dev/null
fi
# A mirror's hiccup should not fail a build: apt retries each download, and the whole step is
# tried three times.
apt_get=("${run[@]}" apt-get -q -o Acquire::Retries=3)
for attempt in 1 2 3; do
  if "${apt_get[@]}" update >/dev/null &&
     "${apt_get[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null; then
    echo "retrace: packages installed" >&2
    exit 0
  fi
  echo "retrace: apt-get failed (attempt $attempt of 3)" >&2
  sleep $((attempt * 10))
done
exit 1
