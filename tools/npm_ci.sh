#!/usr/bin/env bash
# tools/npm_ci.sh PACKAGE_DIR DEST — installs the npm packages of PACKAGE_DIR (deploy/validate,
# tests/web), exactly as its package-lock.json pins them, into DEST/node_modules (the build
# folder, not the source tree) with Debian's Node.js and npm: `npm ci`. Skipped when DEST already
# holds this lock's install. A CTest fixture; needs the npm registry the first time.
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 PACKAGE_DIR DEST" >&2; exit 2; }
here=$(cd "$1" && pwd)
dest=$2
echo "npm_ci: node $(node --version), npm $(npm --version)"
if [ -d "$dest/node_modules" ] && cmp -s "$here/package-lock.json" "$dest/installed-lock.json"; then
  echo "npm_ci: $dest/node_modules is this package-lock.json's install; nothing to do"
  exit 0
fi
mkdir -p "$dest"
rm -f "$dest/installed-lock.json"
cp "$here/package.json" "$here/package-lock.json" "$dest/"
cd "$dest"
for attempt in 1 2 3; do  # a registry hiccup should not fail the tests
  if npm ci --no-audit --no-fund --loglevel=error; then
    cp package-lock.json installed-lock.json
    exit 0
  fi
  echo "npm_ci: npm ci failed (attempt $attempt of 3)" >&2
  sleep $((attempt * 5))
done
exit 1
