#!/usr/bin/env bash
# cs_slip_recipe.sh — a small-scale check of the CS-SLIP training recipe (tools/train) on this
# machine's CPU: a figure, not a test, and not the paper's result. It follows tools/train/
# README.md end to end on real images and reports R@1/5/10 of `retrace eval provenance` for
#   untrained  the ViT at its initial weights (--steps 0)
#   slip       trained without the conceptual-similar branch (--cs-weight 0)
#   cs-slip    trained with all three branches
# on a hand-crafted-similar set built by `retrace eval build-similar` from references that the
# training never saw.
#
#   bench/cs_slip_recipe.sh                       # pacs-mini, ~10 minutes per trained encoder
#   RECIPE_STEPS=50 RECIPE_MINUTES=2 bench/cs_slip_recipe.sh   # a quick look
#
# Data: $RETRACE_SHARED_DATA/pacs-mini (4 domains x 7 classes x 8 images), split per domain and
# class by sorted file name: the first RECIPE_TRAIN_PER_CLASS (4) train, the rest are the
# references; RECIPE_PER_REF (3) transformed copies of each reference are the queries.
# Models: the demo CLIP and captioner (random weights: tools/fixtures), so only the trained
# encoder carries knowledge; captions (RECIPE_CAPTIONS): "labels" gives each training image
# "a <domain> of a <class>" (index --captions: a stand-in for a good captioner, since the demo
# captioner's are word salad), "server" lets the demo captioner caption them.
#
# Environment (defaults in brackets):
#   RECIPE_MODEL [small]  RECIPE_STEPS [250]  RECIPE_BATCH [56]  RECIPE_LR [5e-4]
#   RECIPE_SSL_MLP ["512 128"]  the SimCLR head's hidden and output sizes (SLIP's 4096 and 256
#                         cost more than the small ViT itself)
#   RECIPE_MINUTES [10]   training stops there (with a checkpoint) even if steps remain
#   RECIPE_THREADS [1]    torch threads (on a shared 2-core machine 1 was fastest)
#   RECIPE_CAPTIONS [labels]  RECIPE_SEED [0]  RECIPE_TRAIN_PER_CLASS [4]  RECIPE_PER_REF [3]
#   RECIPE_OUT [build/cs-slip-recipe/YYYYmmdd-HHMMSS]   BUILD [build]
# Training runs under `nice`. Output: results.md (the table), each run's log.jsonl, eval folders.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$repo/build}
RECIPE_MODEL=${RECIPE_MODEL:-small}
RECIPE_STEPS=${RECIPE_STEPS:-250}
RECIPE_BATCH=${RECIPE_BATCH:-56}
RECIPE_LR=${RECIPE_LR:-5e-4}
RECIPE_SSL_MLP=${RECIPE_SSL_MLP:-512 128}
RECIPE_MINUTES=${RECIPE_MINUTES:-10}
RECIPE_THREADS=${RECIPE_THREADS:-1}
RECIPE_CAPTIONS=${RECIPE_CAPTIONS:-labels}
RECIPE_SEED=${RECIPE_SEED:-0}
RECIPE_TRAIN_PER_CLASS=${RECIPE_TRAIN_PER_CLASS:-4}
RECIPE_PER_REF=${RECIPE_PER_REF:-3}
RECIPE_OUT=${RECIPE_OUT:-$BUILD/cs-slip-recipe/$(date +%Y%m%d-%H%M%S)}
shared=${RETRACE_SHARED_DATA:-$repo/../shared/data}
python=/usr/bin/python3
cli=$BUILD/retrace
server_bin=$BUILD/retrace-server

say() { echo "cs_slip_recipe: $*"; }
fail() { echo "cs_slip_recipe: FAILED: $*" >&2; exit 1; }
for f in "$cli" "$server_bin"; do [ -x "$f" ] || fail "$f not found (build first)"; done
[ -d "$shared/pacs-mini" ] || fail "$shared/pacs-mini not found (set RETRACE_SHARED_DATA)"
case "$RECIPE_CAPTIONS" in labels|server) ;; *) fail "RECIPE_CAPTIONS: labels or server";; esac

mkdir -p "$RECIPE_OUT"
out=$(cd "$RECIPE_OUT" && pwd)
server_pid=""
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
trap stop_server EXIT
trap 'exit 130' INT TERM

# start_server MODELS NAME: a server on a free port with a fresh data folder; sets $server.
start_server() {
  rm -rf "$out/$2.data" "$out/$2.port"
  "$server_bin" --models "$1" --data-dir "$out/$2.data" --listen 127.0.0.1:0 \
    --port-file "$out/$2.port" --log-level warn 2>"$out/$2.server.log" &
  server_pid=$!
  for _ in $(seq 1 240); do
    [ -s "$out/$2.port" ] && break
    kill -0 "$server_pid" 2>/dev/null || fail "the server exited at start ($out/$2.server.log)"
    sleep 0.5
  done
  server=127.0.0.1:$(cat "$out/$2.port")
  for _ in $(seq 1 240); do "$cli" --server "$server" collections list >/dev/null 2>&1 && return; sleep 0.5; done
  fail "the server did not become ready ($out/$2.server.log)"
}
rc() { "$cli" --server "$server" "$@"; }

# --- data: split, captions, queries ---------------------------------------------------------
say "output in $out; load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$python" - "$shared/pacs-mini" "$out" "$RECIPE_TRAIN_PER_CLASS" <<'EOF'
import json, os, shutil, sys
src, out, keep = sys.argv[1], sys.argv[2], int(sys.argv[3])
captions = []
for domain in sorted(os.listdir(src)):
    if not os.path.isdir(os.path.join(src, domain)):
        continue
    for label in sorted(os.listdir(os.path.join(src, domain))):
        files = sorted(os.listdir(os.path.join(src, domain, label)))
        for i, name in enumerate(files):
            part = "train" if i < keep else "refs"
            dest = os.path.join(out, part, domain, label)
            os.makedirs(dest, exist_ok=True)
            shutil.copyfile(os.path.join(src, domain, label, name), os.path.join(dest, name))
            if part == "train":
                captions.append({"id": "%s/%s/%s" % (domain, label, name),
                                 "caption": "a %s of a %s" % (domain.replace("_", " "), label)})
with open(os.path.join(out, "train-captions.jsonl"), "w") as f:
    f.writelines(json.dumps(c) + "\n" for c in captions)
EOF
"$cli" eval build-similar --refs "$out/refs" --out "$out/similar" --seed 1 \
  --per-ref "$RECIPE_PER_REF" | tail -1
models=$out/demo-models
[ -f "$models/clip/model.pt" ] ||
  "$python" "$repo/tools/fixtures/make_models.py" --kind demo --out "$models" --shared-data "$shared" >/dev/null

# --- index the training images, mine the pairs ------------------------------------------------
start_server "$models" mine
rc collections create corpus >/dev/null
captions_flag=()
[ "$RECIPE_CAPTIONS" = labels ] && captions_flag=(--captions "$out/train-captions.jsonl")
rc index --collection corpus "${captions_flag[@]}" "$out/train" | head -1
rc mine-pairs --collection corpus --images "$out/train" --out "$out/pairs.jsonl" \
  --embeddings-out "$out/captions.emb"
stop_server

# --- train (untrained, without CS, with CS) and evaluate each encoder --------------------------
train() {  # train NAME FLAGS...
  local name=$1; shift
  local began=$SECONDS
  nice -n 10 "$python" "$repo/tools/train/train_cs_slip.py" --images "$out/train" \
    --pairs "$out/pairs.jsonl" --embeddings "$out/captions.emb" --out "$out/run-$name" \
    --model "$RECIPE_MODEL" --batch-size "$RECIPE_BATCH" --lr "$RECIPE_LR" --seed "$RECIPE_SEED" \
    --ssl-mlp-dim "${RECIPE_SSL_MLP% *}" --ssl-emb-dim "${RECIPE_SSL_MLP#* }" \
    --threads "$RECIPE_THREADS" --max-minutes "$RECIPE_MINUTES" --log-every 50 "$@" \
    | sed "s/^/cs_slip_recipe: $name: /"
  say "$name: trained in $((SECONDS - began)) s; load: $(cut -d' ' -f1-3 /proc/loadavg)"
}
evaluate() {  # evaluate NAME
  local name=$1
  rm -rf "$out/models-$name"
  mkdir -p "$out/models-$name"
  ln -s "$models/clip" "$out/models-$name/clip"
  ln -s "$models/captioner" "$out/models-$name/captioner"
  "$python" "$repo/tools/export/export_slip.py" --checkpoint "$out/run-$name/checkpoint.pt" \
    --out "$out/models-$name/image_encoder" --version "$name" | tail -1
  start_server "$out/models-$name" "eval-$name"
  rc eval provenance --data "$out/similar" --refs "$out/refs" --k 1,5,10 \
    --out "$out/eval-$name" 2>/dev/null | sed "s/^/cs_slip_recipe: $name: /"
  stop_server
}
train untrained --steps 0
evaluate untrained
train slip --steps "$RECIPE_STEPS" --cs-weight 0
evaluate slip
train cs-slip --steps "$RECIPE_STEPS"
evaluate cs-slip

# --- the table ----------------------------------------------------------------------------------
"$python" - "$out" <<'EOF' | tee "$out/results.md"
import json, os, sys
out = sys.argv[1]
print("| encoder | steps | minutes | R@1 | R@5 | R@10 | concatenated R@1 | R@5 | R@10 |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for name in ("untrained", "slip", "cs-slip"):
    results = json.load(open(os.path.join(out, "eval-" + name, "results.json")))["results"]
    log = os.path.join(out, "run-" + name, "log.jsonl")
    lines = [json.loads(l) for l in open(log)] if os.path.exists(log) else []
    steps = lines[-1]["step"] if lines else 0
    minutes = lines[-1]["seconds"] / 60 if lines else 0
    cells = ["%.1f" % (100 * results[v]["R@%d" % k]) for v in ("image_encoder", "concatenated")
             for k in (1, 5, 10)]
    print("| %s | %d | %.1f | %s |" % (name, steps, minutes, " | ".join(cells)))
q = json.load(open(os.path.join(out, "eval-untrained", "results.json")))
print("\n%d queries; CLIP alone (random demo weights): R@1 %.1f" % (
    q["queries"], 100 * q["results"]["clip"]["R@1"]))
EOF
say "done; load: $(cut -d' ' -f1-3 /proc/loadavg)"
