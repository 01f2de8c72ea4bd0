#!/usr/bin/python3
"""Helpers of bench/model_path.sh: the eager-PyTorch side of the comparison, the server's
per-stage times from its /metrics, and the final table.

    model_path.py eager --clip DIR --images DIR --out FILE [--batches 1,8,16,32,64]
                        [--seconds S] [--threads cores,1]
    model_path.py stages BEFORE.prom AFTER.prom --out FILE
    model_path.py table DIR

`eager` times the CLIP image tower as a Python user would run it: the nn.Module itself
(tools/fixtures/clip_models.Clip, not TorchScript), with the weights read from DIR/model.pt, in
one process, torch.set_num_threads(each of --threads: the cores, then 1), under torch.inference_mode,
on images decoded and preprocessed beforehand (CLIP's: shortest side to the manifest's size,
bicubic, centre crop, mean/std) — so it measures the model alone, while the server's figure
also pays for JPEG decoding, preprocessing, the vector search and gRPC.
"""

import argparse
import json
import os
import re
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def image_files(folder, limit):
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(IMAGE_SUFFIXES):
                found.append(os.path.join(root, name))
    return found[:limit]


def clip_preprocess(path, spec):
    """f32 [3,S,S]: shortest side to S (bicubic), centre crop, (x/255 - mean) / std."""
    import numpy as np
    import torch
    from PIL import Image
    s = spec["size"]
    img = Image.open(path).convert("RGB")
    w, h = img.size
    scale = s / min(w, h)
    nw, nh = max(s, round(w * scale)), max(s, round(h * scale))
    img = img.resize((nw, nh), Image.BICUBIC)
    left, top = (nw - s) // 2, (nh - s) // 2
    x = np.asarray(img.crop((left, top, left + s, top + s)), dtype=np.float32) / 255.0
    x = (x - np.array(spec["mean"], np.float32)) / np.array(spec["std"], np.float32)
    return torch.from_numpy(x.transpose(2, 0, 1).copy())


def eager(a):
    import torch
    sys.path.insert(0, os.path.join(REPO, "tools", "fixtures"))
    import clip_models

    cores = os.cpu_count()
    thread_counts = list(dict.fromkeys(int(t) if t != "cores" else cores
                                       for t in a.threads.split(",")))
    with open(os.path.join(a.clip, "manifest.json")) as f:
        manifest = json.load(f)
    scripted = torch.jit.load(os.path.join(a.clip, "model.pt"))
    model = clip_models.Clip(**clip_models.VIT_B32)
    model.load_state_dict(scripted.state_dict())  # strict: every weight, the same values
    model.eval()
    batches = [int(b) for b in a.batches.split(",")]
    paths = image_files(a.images, max(batches))
    pixels = torch.stack([clip_preprocess(p, manifest["image"]) for p in paths])
    rates = {}
    with torch.inference_mode():
        # The same function as the server's: eager and TorchScript agree on two images.
        diff = float((model.encode_image(pixels[:2]) - scripted.encode_image(pixels[:2]))
                     .abs().max())
        del scripted
        for threads in thread_counts:
            torch.set_num_threads(threads)
            for b in batches:
                x = pixels[torch.arange(b) % len(paths)]
                model.encode_image(x)  # warm-up: first-call allocations and kernel choices
                done, start = 0, time.perf_counter()
                while True:
                    model.encode_image(x)
                    done += b
                    elapsed = time.perf_counter() - start
                    if elapsed >= a.seconds:
                        break
                rates["%d,%d" % (threads, b)] = done / elapsed
                print("eager: %d threads, batch %3d: %7.2f images/s (%d images in %.1f s)"
                      % (threads, b, done / elapsed, done, elapsed), flush=True)
    with open(a.out, "w") as f:
        json.dump({"cores": cores, "images": len(paths), "seconds": a.seconds,
                   "torch": torch.__version__, "images_per_s": rates,
                   "max_abs_diff_vs_torchscript": diff}, f, indent=1)


SAMPLE = re.compile(r'^(\w+)(?:\{(.*)\})? (\S+)$')


def prometheus(path):
    """{(metric, labels): value} of a /metrics text."""
    values = {}
    with open(path) as f:
        for line in f:
            m = SAMPLE.match(line.strip())
            if m:
                values[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return values


def stages(a):
    """Between two scrapes: per stage its calls and seconds ("stage:NAME") and its calls and items
    ("batch:NAME"), and per RPC its calls and seconds ("rpc:NAME")."""
    before, after = prometheus(a.before), prometheus(a.after)
    out = {}
    for (name, labels), value in after.items():
        for prefix, label in (("retrace_stage_duration_seconds", "stage"),
                              ("retrace_stage_batch_size", "batch"),
                              ("retrace_rpc_duration_seconds", "rpc")):
            if name in (prefix + "_sum", prefix + "_count"):
                key = re.search((label if label != "batch" else "stage") + r'="([^"]*)"', labels)
                if not key:
                    continue
                entry = out.setdefault(label + ":" + key.group(1), {})
                if name.endswith("_count"):
                    field = "count"
                else:
                    field = "items" if label == "batch" else "seconds"
                entry[field] = value - before.get((name, labels), 0.0)
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)


def median(values):
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def table(a):
    d = a.dir
    rounds = sorted(int(m.group(1)) for m in
                    (re.match(r"eager-r(\d+)\.json$", n) for n in os.listdir(d)) if m)
    eager_runs = [json.load(open(os.path.join(d, "eager-r%d.json" % r))) for r in rounds]
    cores = eager_runs[0]["cores"]
    per_round = [dict((tuple(int(v) for v in k.split(",")), x)
                      for k, x in e["images_per_s"].items()) for e in eager_runs]
    rates = dict((k, median([pr[k] for pr in per_round])) for k in per_round[0])
    # The reference is the issue's: eager at its best batch size with threads = cores. Where
    # another thread count did better, the ratio to that is given too. Without a run at that
    # count (EAGER_THREADS=1), the best count scanned is the reference. Medians over the rounds.
    best_key = max(rates, key=rates.get)
    ref_threads = cores if any(t == cores for t, _ in rates) else best_key[0]
    at_ref = dict((b, r) for (t, b), r in rates.items() if t == ref_threads)
    ref_batch = max(at_ref, key=at_ref.get)
    ref_key = (ref_threads, ref_batch)
    other = best_key[0] != ref_threads
    points = sorted({int(m.group(1)) for m in
                     (re.match(r"server-c(\d+)-r\d+\.json$", n) for n in os.listdir(d)) if m})

    def server(c, r):
        return json.load(open(os.path.join(d, "server-c%d-r%d.json" % (c, r))))["total"]

    print("%d round(s), each the server points then eager, so a slow spell falls on both sides; "
          "medians over the rounds, and the median of each round's own ratio." % len(rounds))
    print()
    # The ratio is each round's server rate over the same round's eager rate, then the median: a
    # ratio of medians would pair a quiet round's server with a loaded round's eager.
    head = ("| load | images/s per round | median images/s | p50 ms | p99 ms | errors "
            "| / eager, threads %d, batch %d, per round | median ratio |" % ref_key)
    if other:
        head += " / best eager (threads %d, batch %d) |" % best_key
    print(head)
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |" + (" ---: |" if other else ""))
    for c in points:
        ts = [server(c, r) for r in rounds]
        qps = [t["qps"] for t in ts]
        ratios = [q / pr[ref_key] for q, pr in zip(qps, per_round)]
        print("| retrace-server, `retrace bench` concurrency %d | %s | %.2f | %.0f | %.0f | %d "
              "| %s | **%.2f×** |"
              % (c, " / ".join("%.2f" % q for q in qps), median(qps),
                 median([t["latency_ms"]["p50"] for t in ts]),
                 median([t["latency_ms"]["p99"] for t in ts]), sum(t["errors"] for t in ts),
                 " / ".join("%.2f×" % x for x in ratios), median(ratios))
              + (" %.2f× |" % median([q / pr[best_key] for q, pr in zip(qps, per_round)])
                 if other else ""))
    for k in sorted(rates):
        print("| Python eager, threads %d, batch %d | %s | %.2f | | | | | %.2f× |"
              % (k[0], k[1], " / ".join("%.2f" % pr[k] for pr in per_round), rates[k],
                 median([pr[k] / pr[ref_key] for pr in per_round]))
              + (" %.2f× |" % median([pr[k] / pr[best_key] for pr in per_round])
                 if other else ""))
    print()
    print("eager: torch %s, %d cores, max |eager - TorchScript| on 2 images: %.2g"
          % (eager_runs[0]["torch"], cores, eager_runs[0]["max_abs_diff_vs_torchscript"]))
    print()
    print("Where the server's time went (per Search call, from its /metrics; server CPU from /proc):")
    print("| concurrency | round | decode ms | embed_image ms (preprocess + CLIP) | search ms |"
          " rest of the call ms | embed_image share | Search latency ms | images per model call |"
          " server CPU cores |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for c in points:
        for r in rounds:
            s = json.load(open(os.path.join(d, "stages-c%d-r%d.json" % (c, r))))
            cpu = json.load(open(os.path.join(d, "cpu-c%d-r%d.json" % (c, r))))
            # Per Search call (warm-up included): a batched model call's time is shared by its
            # images.
            rpc = s.get("rpc:Search", {"count": 0, "seconds": 0.0})
            calls = max(1.0, rpc["count"])
            batch = s.get("batch:embed_image", {"count": 0, "items": 0.0})

            def ms(key):
                return 1000 * s.get(key, {}).get("seconds", 0.0) / calls
            work = ms("stage:decode") + ms("stage:embed_image") + ms("stage:search")
            latency = 1000 * rpc["seconds"] / calls
            # The call's latency minus its stages: waiting for a worker (or a batch), gRPC,
            # conversion.
            print("| %d | %d | %.2f | %.1f | %.3f | %.1f | %.1f%% | %.0f | %.1f | %.2f |"
                  % (c, r, ms("stage:decode"), ms("stage:embed_image"), ms("stage:search"),
                     latency - work, 100 * ms("stage:embed_image") / work if work else 0,
                     latency, batch["items"] / batch["count"] if batch["count"] else 0,
                     cpu["cpu_s"] / cpu["wall_s"]))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("eager")
    e.add_argument("--clip", required=True, help="the clip/ model folder")
    e.add_argument("--images", required=True)
    e.add_argument("--out", required=True)
    e.add_argument("--batches", default="1,8,16,32,64")
    e.add_argument("--seconds", type=float, default=20, help="per batch size, after a warm-up")
    e.add_argument("--threads", default="cores,1",
                   help="torch.set_num_threads values to scan, comma-separated; 'cores' = nproc")
    s = sub.add_parser("stages")
    s.add_argument("before")
    s.add_argument("after")
    s.add_argument("--out", required=True)
    t = sub.add_parser("table")
    t.add_argument("dir")
    a = p.parse_args()
    {"eager": eager, "stages": stages, "table": table}[a.command](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
