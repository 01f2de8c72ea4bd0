#!/usr/bin/env bash
# docker/runtime_packages.sh BINARY... — prints the Debian packages that own the shared libraries
# the binaries load (ldd), one per line: what the image's runtime stage installs. Fails when a
# library belongs to no package (it would be missing at run time). Run in the build stage.
#
# A library is looked up as ldd prints it and resolved (one reached through an alternatives link,
# such as libblas.so.3, belongs to the package of its target: OpenBLAS, not the reference BLAS),
# each with and without the /usr prefix (Debian 12's merged /usr registers files under either).
# RUNTIME_PACKAGES_SKIP: space-separated path prefixes of libraries the image copies itself
# (docker/Dockerfile.cuda's LibTorch and FAISS under /opt); they are left out.
set -euo pipefail

[ $# -gt 0 ] || { echo "usage: $0 BINARY..." >&2; exit 2; }
if ldd "$@" | grep 'not found' >&2; then exit 1; fi
libraries=()
for library in $(ldd "$@" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u); do
  for prefix in ${RUNTIME_PACKAGES_SKIP:-}; do
    [[ $library == "$prefix"* ]] && continue 2
  done
  libraries+=("$library")
done
# Every spelling of every library, asked of dpkg at once (one call: dpkg is slow to start).
declare -A owner=()
while IFS= read -r line; do
  [[ $line == "diversion by"* ]] && continue
  owner[${line#*: }]=${line%%: *}
done < <(for l in "${libraries[@]}"; do
           for p in "$l" "$(realpath "$l")"; do printf '%s\n' "$p" "${p#/usr}" "/usr$p"; done
         done | sort -u | xargs dpkg-query -S 2>/dev/null || true)
{
  status=0
  for l in "${libraries[@]}"; do
    found=
    for p in "$(realpath "$l")" "$l"; do  # the resolved file first: the package that ships it
      for q in "$p" "${p#/usr}" "/usr$p"; do
        [ -n "${owner[$q]:-}" ] && { found=${owner[$q]%%:*}; break 2; }
      done
    done
    if [ -n "$found" ]; then
      echo "$found"
    else
      echo "runtime_packages: $l belongs to no Debian package" >&2
      status=1
    fi
  done
  exit $status
} | sort -u
