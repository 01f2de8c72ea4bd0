#!/usr/bin/env python3
"""What a generation platform runs after each render: is the new image a copy of a licensed one?

Searches the collection of licensed images in PROVENANCE mode with the render as the query and
the prompt as its caption (Q_t), and decides by a threshold on the top hit's score S' (the base
image similarity S plus the caption re-ranking terms, at most 0.1 each with the defaults). Prints
one JSON verdict on stdout and exits by the decision:

  0  allow   no hit reaches the threshold
  1  review  the top hit reaches it: a possible copy (the verdict names it, with S, P, P', S')
  2  error   the search failed (unreachable server, unknown collection, unreadable image, ...)

  post_render_hook.py --server 127.0.0.1:50051 --collection licensed \\
      --image render.png --prompt "a watercolor of a lighthouse" --threshold 0.95

The token comes from $RETRACE_TOKEN (a flag would show in `ps`).
"""

import argparse
import json
import os
import sys

import retrace


def hit_json(hit):
    out = {"id": hit.id, "score": round(hit.score, 6), "caption": hit.caption,
           "attributes": hit.attributes}
    if hit.provenance is not None:
        p = hit.provenance
        out["provenance"] = {"S": round(p.base_score, 6), "P": p.caption_rank,
                             "P_prime": p.image_rank, "S_prime": round(p.score, 6)}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", default=os.environ.get("RETRACE_SERVER", "127.0.0.1:50051"))
    ap.add_argument("--tls", action="store_true", help="speak TLS (system roots, or --tls-ca)")
    ap.add_argument("--tls-ca", help="PEM file of the CA that signed the server's certificate")
    ap.add_argument("--collection", required=True, help="the collection of licensed images")
    ap.add_argument("--image", required=True, help="the render to check")
    ap.add_argument("--prompt", default="", help="the prompt that generated it (Q_t)")
    ap.add_argument("--threshold", type=float, default=0.95,
                    help="the top hit's S' at or above which the render is held for review")
    ap.add_argument("--top-k", type=int, default=5, help="hits reported in the verdict")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds")
    a = ap.parse_args()

    verdict = {"image": a.image, "collection": a.collection, "threshold": a.threshold}
    try:
        with retrace.Client(a.server, token=os.environ.get("RETRACE_TOKEN"), tls=a.tls,
                            root_certs=a.tls_ca, timeout=a.timeout) as client:
            result = client.search(a.collection, image=a.image, mode="provenance",
                                   caption=a.prompt or None, top_k=a.top_k)
    except retrace.RetraceError as e:
        verdict.update(decision="error", code=e.code.name, message=e.message)
        print(json.dumps(verdict))
        return 2
    top = result.hits[0] if result.hits else None
    flagged = top is not None and top.score >= a.threshold
    verdict.update(decision="review" if flagged else "allow",
                   score=round(top.score, 6) if top else None,
                   match=hit_json(top) if flagged else None,
                   query_caption=result.query_caption,
                   hits=[hit_json(h) for h in result.hits])
    print(json.dumps(verdict))
    return 1 if flagged else 0


if __name__ == "__main__":
    sys.exit(main())
