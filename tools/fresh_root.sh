#!/usr/bin/env bash
# tools/fresh_root.sh TARGET... — runs `make TARGET...` in a fresh Debian 12 root, as a new user
# would on a fresh machine: CI (.ci/run) and `make test-fresh` use it.
#
# The root is made with `debootstrap --variant=minbase bookworm` plus make (the README's one
# prerequisite besides root). Only the checkout (its files and .git; no build folders) is copied
# in, and ../shared is bind-mounted read-only beside it, so `make` must install every package
# itself (tools/install_deps.sh). The host's /var/cache/apt/archives is bind-mounted so packages
# are downloaded once across runs. Each phase's time is printed: the root, then the packages
# (`make deps`), the build (`make build`) and each TARGET, in that order.
#
# Needs root on a Debian host with network access to the mirror. Everything is unmounted and the
# root removed on exit, also on failure or interrupt (FRESH_KEEP=1 keeps the root to look into;
# it is never removed while anything is still mounted under it).
#
# Environment: FRESH_MIRROR (default http://deb.debian.org/debian), FRESH_DIR (the parent of the
# root, default /var/tmp), FRESH_KEEP, RETRACE_SHARED_DATA (default ../shared/data), JOBS.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/debian_sources.sh
source "$repo/tools/debian_sources.sh"
shared_data=${RETRACE_SHARED_DATA:-$repo/../shared/data}
shared=$(cd "$(dirname "$shared_data")" 2>/dev/null && pwd || true)  # ../shared
mirror=${FRESH_MIRROR:-http://deb.debian.org/debian}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(test)

say() { echo "fresh-root: $*"; }
die() { echo "fresh-root: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot and mounts); run it with sudo"

# retry N COMMAND...: a mirror's hiccup should not fail CI.
retry() {
  local n=$1; shift
  for attempt in $(seq 1 "$n"); do
    "$@" && return 0
    say "failed (attempt $attempt of $n): $*"
    [ "$attempt" -lt "$n" ] && sleep $((attempt * 15))
  done
  return 1
}

clock() { date +%s; }
phase_start=0
declare -a phases=()
phase() {  # phase NAME: ends the running phase and starts NAME
  local now; now=$(clock)
  [ -n "${phase_name:-}" ] && phases+=("$phase_name $((now - phase_start))")
  phase_name=${1:-}; phase_start=$now
  [ -n "$phase_name" ] && say "=== $phase_name ($(date -u +%H:%M:%S))"
  return 0
}
report() {
  phase ""
  say "phase times:"
  local total=0
  for p in "${phases[@]}"; do
    set -- $p
    printf 'fresh-root:   %-12s %5d s\n' "$1" "$2"
    total=$((total + $2))
  done
  printf 'fresh-root:   %-12s %5d s\n' total "$total"
}

if ! command -v debootstrap >/dev/null; then
  say "installing debootstrap on the host"
  export DEBIAN_FRONTEND=noninteractive
  retry 3 apt-get -q -o Acquire::Retries=3 update >/dev/null
  retry 3 apt-get -q -o Acquire::Retries=3 install -y --no-install-recommends debootstrap >/dev/null
fi

mkdir -p "${FRESH_DIR:-/var/tmp}"
root=$(mktemp -d "${FRESH_DIR:-/var/tmp}/retrace-fresh.XXXXXX")
# mktemp makes it 0700; the root's / must be 0755 or no user but root (postgres, for one) can reach any file.
chmod 755 "$root"
mounts=()

# Processes still running in the root (a test's server, PostgreSQL) would keep it busy.
kill_root_processes() {
  local pid
  for pid in /proc/[0-9]*; do
    [ "$(readlink "$pid/root" 2>/dev/null)" = "$root" ] && kill -9 "${pid#/proc/}" 2>/dev/null
  done
  return 0
}
still_mounted() { grep -q " $root[/ ]" /proc/mounts; }
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  kill_root_processes
  sleep 1
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    umount -R "${mounts[i]}" 2>/dev/null || umount -R -l "${mounts[i]}" 2>/dev/null || true
  done
  if still_mounted; then
    echo "fresh-root: something is still mounted under $root; not removing it:" >&2
    grep " $root[/ ]" /proc/mounts >&2 || true
  elif [ "${FRESH_KEEP:-0}" = 1 ]; then
    say "kept the root at $root (FRESH_KEEP=1)"
  else
    rm -rf --one-file-system "$root"
  fi
  [ ${#phases[@]} -gt 0 ] && report
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

phase root
cache=/var/cache/apt/archives
mkdir -p "$cache"
make_root() {
  rm -rf --one-file-system "$root"/* 2>/dev/null || true
  debootstrap --variant=minbase --include=make --cache-dir="$cache" bookworm "$root" "$mirror" \
    >"$root.debootstrap.log" 2>&1 || { tail -n 20 "$root.debootstrap.log" >&2; return 1; }
}
retry 3 make_root
rm -f "$root.debootstrap.log"
write_debian_sources "$root" "$mirror"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# A network that intercepts TLS has its own CA, which the host's Node.js trusts through
# NODE_EXTRA_CA_CERTS: npm in the root (deploy/'s tests install their packages) needs it too.
node_ca=()
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f "$NODE_EXTRA_CA_CERTS" ]; then
  cp "$NODE_EXTRA_CA_CERTS" "$root/etc/host-extra-ca.crt"
  node_ca=(NODE_EXTRA_CA_CERTS=/etc/host-extra-ca.crt)
fi

bind() {  # bind SOURCE TARGET [ro]
  mkdir -p "$2"
  mounts+=("$2")
  mount --rbind "$1" "$2"
  mount --make-rslave "$2"
  [ "${3:-}" = ro ] && mount -o remount,bind,ro "$2"
  return 0
}
mounts+=("$root/proc"); mount -t proc proc "$root/proc"
mounts+=("$root/sys"); mount -t sysfs sysfs "$root/sys"
bind /dev "$root/dev"
bind "$cache" "$root/var/cache/apt/archives"
mkdir -p "$root/src/retrace"
if [ -n "$shared" ] && [ -d "$shared" ]; then
  bind "$shared" "$root/src/shared" ro
else
  say "no ../shared beside the checkout: the tests that need it will skip"
fi
# The checkout: tracked and untracked-but-not-ignored files, and .git (no build folders).
(cd "$repo" && { git ls-files -z -co --exclude-standard; printf '.git\0'; } |
   tar --null -T - -cf -) | tar -xf - -C "$root/src/retrace"
say "root $root: Debian $(cat "$root/etc/debian_version") minbase + make; checkout in /src/retrace"

in_root() {
  chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin JOBS="${JOBS:-$(nproc)}" \
    "${node_ca[@]}" bash -c "cd /src/retrace && $*"
}

phase packages
retry 3 in_root make deps
phase build
in_root make build JOBS='$JOBS'
for target in "${targets[@]}"; do
  phase "$target"
  in_root make "$target" JOBS='$JOBS'
done
say "all targets passed in the fresh root: ${targets[*]}"
