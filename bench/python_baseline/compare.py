#!/usr/bin/python3
"""Helpers of bench/python_baseline.sh.

    compare.py parity --retrace ADDR --baseline ADDR --collection NAME --images DIR [--queries N]
    compare.py table DIR

`parity` sends the same image queries to both servers and says how far their answers are apart
(the top-10 ids they share, the largest score difference): the two should compute the same
thing, up to resampling (retrace resizes with OpenCV, the baseline with PIL). It checks the
baseline is doing the same work; it is not a retrieval-quality figure.
`table` prints QPS, latency and CPU per call per round and the medians' ratios, from
DIR/<set>-<server>-c<C>-r<R>.json (retrace bench --json) and .cpu.json (the server's CPU seconds).
"""

import argparse
import json
import os
import re
import statistics
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parity(a):
    import grpc
    import grpc_py
    pb, _ = grpc_py.generate()
    paths = []
    for root, dirs, files in os.walk(a.images):
        dirs.sort()
        paths += [os.path.join(root, f) for f in sorted(files)
                  if f.lower().endswith((".jpg", ".jpeg", ".png"))]
    step = max(1, len(paths) // a.queries)
    paths = paths[::step][:a.queries]
    shared, worst = [], 0.0
    with grpc.insecure_channel(a.retrace) as r, grpc.insecure_channel(a.baseline) as b:
        for path in paths:
            with open(path, "rb") as f:
                request = pb.SearchRequest(collection=a.collection, image=f.read(), top_k=10)
            hits = [dict((h.id, h.score) for h in grpc_py.unary(
                c, "retrace.v1.Retrace", "Search", request, pb.SearchResponse, timeout=120).hits)
                for c in (r, b)]
            common = set(hits[0]) & set(hits[1])
            shared.append(len(common))
            worst = max([worst] + [abs(hits[0][i] - hits[1][i]) for i in common])
    print("parity: %d queries: top-10 ids shared %.1f of 10 on average (min %d); largest score "
          "difference on a shared hit %.4f" % (len(paths), statistics.mean(shared), min(shared),
                                              worst))


def table(a):
    runs = defaultdict(list)  # (set, concurrency, server) -> [total]
    for name in os.listdir(a.dir):
        m = re.match(r"(.+?)-(retrace-before|retrace|baseline)-c(\d+)-r(\d+)\.json$", name)
        if m:
            report = json.load(open(os.path.join(a.dir, name)))
            total = report["total"]
            cpu_path = os.path.join(a.dir, name[:-len(".json")] + ".cpu.json")
            if os.path.exists(cpu_path):  # CPU per call, warm-up calls included
                cpu = json.load(open(cpu_path))
                total["cpu_ms_per_call"] = 1000 * cpu["cpu_s"] / max(
                    1, total["calls"] + report["warmup_calls"])
                total["cores"] = cpu["cpu_s"] / cpu["wall_s"]
                if "machine_cores" in cpu:  # older runs have neither
                    total["machine_cores"] = cpu["machine_cores"]
                    total["load"] = cpu["load"]
            runs[(m.group(1), int(m.group(3)), m.group(2))].append((int(m.group(4)), total))
    sets = sorted(set(k[0] for k in runs))
    for model_set in sets:
        print("models: %s" % model_set)
        print("| concurrency | server | QPS per round | median QPS | median p50 ms | median p99 ms |"
              " errors | median CPU ms per call | median cores used | machine busy cores,"
              " load (per round) |")
        print("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        summary = []
        for c in sorted(set(k[1] for k in runs if k[0] == model_set)):
            med = {}
            for server in ("retrace", "retrace-before", "baseline"):
                rounds = sorted(runs.get((model_set, c, server), []), key=lambda r: r[0])
                if not rounds:
                    continue
                qps = [t["qps"] for _, t in rounds]
                p50 = [t["latency_ms"]["p50"] for _, t in rounds]
                p99 = [t["latency_ms"]["p99"] for _, t in rounds]
                cpu = [t["cpu_ms_per_call"] for _, t in rounds if "cpu_ms_per_call" in t]
                cores = [t["cores"] for _, t in rounds if "cores" in t]
                med[server] = (statistics.median(qps), statistics.median(p50),
                               statistics.median(p99),
                               statistics.median(cpu) if cpu else float("nan"))
                busy = " / ".join("%.2f, %.2f" % (t["machine_cores"], t["load"])
                                  for _, t in rounds if "machine_cores" in t)
                print("| %d | %s | %s | %.1f | %.1f | %.1f | %d | %.2f | %.2f | %s |"
                      % (c, server, " / ".join("%.1f" % q for q in qps), med[server][0],
                         med[server][1], med[server][2], sum(t["errors"] for _, t in rounds),
                         med[server][3], statistics.median(cores) if cores else float("nan"),
                         busy))
            for server in ("retrace", "retrace-before"):
                if server in med and "baseline" in med:
                    summary.append((c, server, med[server][0] / med["baseline"][0],
                                    med[server][2] / med["baseline"][2],
                                    med[server][1] / med["baseline"][1],
                                    med[server][3] / med["baseline"][3]))
        print()
        if not summary:  # BASELINE=0
            continue
        print("| concurrency | server | QPS / baseline's (target >= 3) | p99 / baseline's"
              " (target <= 0.5) | p50 ratio | CPU per call ratio |")
        print("| ---: | --- | ---: | ---: | ---: | ---: |")
        for c, server, q, p99, p50, cpu in summary:
            print("| %d | %s | **%.2f×** | **%.2f×** | %.2f× | %.2f× |"
                  % (c, server, q, p99, p50, cpu))
        print()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    q = sub.add_parser("parity")
    q.add_argument("--retrace", required=True)
    q.add_argument("--baseline", required=True)
    q.add_argument("--collection", required=True)
    q.add_argument("--images", required=True)
    q.add_argument("--queries", type=int, default=10)
    t = sub.add_parser("table")
    t.add_argument("dir")
    a = p.parse_args()
    {"parity": parity, "table": table}[a.command](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
