#!/usr/bin/env bash
# deploy/validate/render.sh OUT — renders every kustomization under deploy/ with
# `kubectl kustomize` (Debian 12's kubectl 1.20, kustomize v2.0.3, in CI), into OUT/<folder>.yaml
# (deploy/overlays/replicas-demo -> OUT/overlays/replicas-demo.yaml). A CTest case (label deploy);
# validate.js then checks what it wrote. Fails naming the folder that does not render.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 OUT" >&2; exit 2; }
deploy=$(cd "$(dirname "$0")/.." && pwd)
out=$1
rm -rf "$out"
mkdir -p "$out"
kubectl version --client 2>/dev/null | head -n 1 || true
count=0
while IFS= read -r file; do
  dir=$(dirname "$file")
  name=${dir#"$deploy"/}
  mkdir -p "$out/$(dirname "$name")"
  if ! kubectl kustomize "$dir" >"$out/$name.yaml" 2>"$out/$name.err"; then
    echo "render: deploy/$name does not render:" >&2
    cat "$out/$name.err" >&2
    exit 1
  fi
  rm -f "$out/$name.err"
  count=$((count + 1))
done < <(find "$deploy" -name kustomization.yaml -not -path '*/node_modules/*' | sort)
echo "render: $count kustomizations rendered into $out"
