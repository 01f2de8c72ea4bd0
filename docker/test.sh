#!/usr/bin/env bash
# docker/test.sh — `make docker-test`: builds the CPU image from docker/Dockerfile with podman
# and checks it for real: it runs as a non-root user with a read-only root (/tmp a tmpfs), no
# capabilities and no privilege escalation, as deploy/'s pods do, its data in a volume; the
# image's HEALTHCHECK and `retrace health` through the published port say SERVING; a caption,
# a collection, an index and a search through the published port with the host's CLI
# ($BUILD/retrace); a clean stop (exit 0, a snapshot) and a restart on the same volume that
# still has the collection; TLS in the server, probed by deploy/overlays/single-tls's command.
# Prints the time of each phase and the image's size.
#
# Minutes, and it needs root: not part of `make test`. It installs its own host tools when they
# are missing (podman, runc, the CNI plugins and iptables for the published port, debootstrap),
# saying so; tools/install_deps.sh does not list them because nothing else needs them.
#
# No registry is reachable here, so the base image `debian:12-slim` is made once from
# `debootstrap --variant=minbase bookworm` (with Debian's sources and the slim image's dpkg
# excludes of documentation) and imported. podman runs with runc and explicit ulimits: crun and
# the default limits fail on this machine's cgroups (v1).
#
# Environment: BUILD (default build), IMAGE (default retrace:docker-test), KEEP=1 keeps the
# container and volume, REBASE=1 remakes the base image, MIRROR (default http://deb.debian.org/debian).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/debian_sources.sh
source "$repo/tools/debian_sources.sh"
build=$(cd "$repo" && realpath -m "${BUILD:-build}")
image=${IMAGE:-retrace:docker-test}
mirror=${MIRROR:-http://deb.debian.org/debian}
name=retrace-docker-test-$$
volume=$name-data
limits=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
podman_=(podman --runtime /usr/sbin/runc)
# pm: podman as this machine needs it. Without systemd, podman logs an error for the
# HEALTHCHECK's timer on every start and stop (this script runs the check itself): dropped.
pm() { "${podman_[@]}" "$@" 2> >(grep -v 'unable to get systemd connection' >&2); }

say() { echo "docker-test: $*"; }
die() { echo "docker-test: FAILED: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (podman's rootful storage, debootstrap)"
cli=$build/retrace
[ -x "$cli" ] || die "$cli not found: run make build first"

start=$(date +%s)
phase_start=$start
declare -a phases=()
phase() {  # phase NAME: ends the running phase and starts NAME
  local now; now=$(date +%s)
  [ -n "${phase_name:-}" ] && phases+=("$phase_name $((now - phase_start))")
  phase_name=${1:-}; phase_start=$now
  [ -n "$phase_name" ] && say "=== $phase_name"
  return 0
}

cleanup() {
  local status=$?
  if [ "${KEEP:-0}" != 1 ]; then
    pm rm -f -t 5 "$name" >/dev/null 2>&1 || true
    pm volume rm -f "$volume" >/dev/null 2>&1 || true
  else
    say "kept container $name and volume $volume (KEEP=1)"
  fi
  rm -rf "${work:-}"
  [ $status -eq 0 ] || { say "server log (last 40 lines):"; cat "${log:-/dev/null}" 2>/dev/null | tail -n 40; }
  exit $status
}
trap cleanup EXIT
work=$(mktemp -d /var/tmp/retrace-docker-test.XXXXXX)
log=$work/server.log

phase tools
missing=()
command -v podman >/dev/null || missing+=(podman)
[ -x /usr/sbin/runc ] || missing+=(runc)
[ -x /usr/lib/cni/portmap ] || missing+=(containernetworking-plugins)
command -v iptables >/dev/null || missing+=(iptables)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing host tools: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get -q -o Acquire::Retries=3 update >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get -q -o Acquire::Retries=3 install -y \
    --no-install-recommends "${missing[@]}" >/dev/null
fi

phase base-image
if [ "${REBASE:-0}" = 1 ] || ! pm image exists debian:12-slim; then
  root=$work/root
  say "making debian:12-slim from debootstrap --variant=minbase bookworm"
  debootstrap --variant=minbase --cache-dir=/var/cache/apt/archives bookworm "$root" "$mirror" \
    >"$work/debootstrap.log" 2>&1 || { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap"; }
  write_debian_sources "$root" "$mirror"
  # As the official slim image: no documentation, manual pages or translations from packages
  # installed later (copyright files stay).
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'SLIM'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
SLIM
  find "$root/usr/share/doc" -mindepth 2 -not -name copyright -not -type d -delete
  rm -rf "$root"/usr/share/{info,linda,lintian/overrides,locale,man,groff}/* "$root"/var/lib/apt/lists/* \
         "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log
  tar -C "$root" -c . | pm import --quiet --change 'CMD ["bash"]' - debian:12-slim >/dev/null
  rm -rf "$root"
fi

phase image-build
# The host's apt cache is mounted as an overlay (:O): packages it has are not downloaded again,
# and nothing the build does (apt-get clean) reaches the host's copy.
pm image rm -f "$image" >/dev/null 2>&1 || true
ENGINE="${podman_[*]}" "$repo/docker/build.sh" --format docker --network host --pull=never \
  "${limits[@]}" -v /var/cache/apt/archives:/var/cache/apt/archives:O -t "$image" \
  >"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log" >&2; die "image build (log above)"; }
size=$(pm image inspect "$image" --format '{{.Size}}')
say "image $image: $((size / 1000000)) MB"

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
grpc_port=$(free_port)
metrics_port=$(free_port)
run() {  # the container as deploy/'s pods run it
  pm run -d --name "$name" "${limits[@]}" --read-only --tmpfs /tmp \
    --cap-drop ALL --security-opt no-new-privileges \
    -v "$volume:/var/lib/retrace" \
    -p "127.0.0.1:$grpc_port:50051" -p "127.0.0.1:$metrics_port:9464" "$image" >/dev/null
}
wait_serving() {  # the host's CLI through the published port
  for _ in $(seq 1 120); do
    if "$cli" --timeout 2 health --server "127.0.0.1:$grpc_port" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  pm logs "$name" >"$log" 2>&1 || true
  die "not SERVING within 120 s"
}
retrace() { "$cli" --server "127.0.0.1:$grpc_port" "$@"; }

phase first-start
pm volume create "$volume" >/dev/null
run
wait_serving
say "health through port $grpc_port: $(retrace health)"
[ "$(pm exec "$name" id -u)" = 10001 ] || die "the server does not run as uid 10001"
pm healthcheck run "$name" || die "the image's HEALTHCHECK failed"
say "the image's HEALTHCHECK (retrace health in the container) passed"
/usr/bin/python3 - "$metrics_port" <<'PY' || die "/readyz or /metrics"
import sys, urllib.request
base = "http://127.0.0.1:%s" % sys.argv[1]
assert urllib.request.urlopen(base + "/readyz", timeout=5).status == 200
text = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
assert "retrace_ready 1" in text, text[:500]
PY
say "metrics through port $metrics_port: /readyz 200, retrace_ready 1"

phase calls
images=$build/test_fixtures/images
if [ ! -d "$images" ]; then
  images=$work/images
  /usr/bin/python3 "$repo/tools/fixtures/make_images.py" --out "$images" --per-class 2 --seed 7 >/dev/null
fi
query=$(find "$images" -type f -name '*.png' | sort | head -n 1)
count=$(find "$images" -type f -name '*.png' | wc -l)
caption=$(retrace caption "$query") || die "caption"
echo "$caption"
[ "$(echo "$caption" | wc -l)" -eq 2 ] || die "caption: expected a header and one line"
retrace collections create docker-test --shards 2 || die "collections create"
retrace index --collection docker-test "$images" || die "index"
# The query image itself is stored: it is the nearest in the image space.
top=$(retrace --json search --collection docker-test --image "$query" --mode provenance --no-rerank --top-k 3) ||
  die "search"
echo "$top" | head -n 12
want=${query#"$images"/}
/usr/bin/python3 -c 'import json,sys; h=json.loads(sys.argv[1])["hits"]; sys.exit(h[0]["id"] != sys.argv[2])' \
  "$top" "$want" || die "search: the query image '$want' is not the first hit"
say "caption, create, index ($count images), search (the query is the first hit): ok"

phase restart
pm stop -t 60 "$name" >/dev/null
pm logs "$name" >"$log" 2>&1
exit_code=$(pm inspect "$name" --format '{{.State.ExitCode}}')
[ "$exit_code" = 0 ] || die "the server exited $exit_code on SIGTERM"
grep -q "stopped" "$log" || die "no clean stop in the log"
pm rm "$name" >/dev/null
run
wait_serving
items=$(retrace --json collections describe docker-test |
  /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin).get("item_count", 0))')
[ "$items" = "$count" ] || die "after a restart on the same volume: $items items, expected $count"
say "clean stop (exit 0), restart on the volume: $items items still there"

phase tls
# TLS served by the server itself, probed as deploy/overlays/single-tls probes it: that overlay's
# exec command, run in the container, says SERVING over TLS; a plaintext health call (what the
# kubelet's gRPC probe makes) fails. The certificate is its own CA and names localhost.
pm rm -f -t 30 "$name" >/dev/null
tls=$work/tls
mkdir -p "$tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$tls/tls.key" -out "$tls/tls.crt" \
  2>/dev/null || die "openssl"
cp "$tls/tls.crt" "$tls/ca.crt"
chmod 0755 "$tls" && chmod 0644 "$tls"/*  # a throwaway key, readable by the container's user
pm run -d --name "$name" "${limits[@]}" --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges \
  -v "$volume:/var/lib/retrace" -v "$tls:/etc/retrace/tls:ro" -p "127.0.0.1:$grpc_port:50051" \
  "$image" --tls-cert=/etc/retrace/tls/tls.crt --tls-key=/etc/retrace/tls/tls.key >/dev/null
probe=$(grep -m 1 'command: \[retrace' "$repo/deploy/overlays/single-tls/tls.yaml" |
        sed 's/.*command: \[//; s/\].*//; s/, / /g')
for _ in $(seq 1 120); do
  # shellcheck disable=SC2086
  pm exec "$name" $probe >/dev/null 2>&1 && break
  sleep 1
done
# shellcheck disable=SC2086
pm exec "$name" $probe || die "the TLS probe of overlays/single-tls: $probe"
if "$cli" --timeout 2 health --server "127.0.0.1:$grpc_port" >/dev/null 2>&1; then
  die "a plaintext health call succeeded against the TLS server"
fi
say "TLS: the single-tls overlay's probe ($probe) says SERVING; plaintext is refused"

phase ""
say "phase times:"
for p in "${phases[@]}"; do
  set -- $p
  printf 'docker-test:   %-12s %5d s\n' "$1" "$2"
done
say "total $(( $(date +%s) - start )) s; image $image $((size / 1000000)) MB"
say "passed"
