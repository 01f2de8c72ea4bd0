#!/usr/bin/python3
"""Exports a retrace collection's items for the baseline server: ids, captions and caption
embeddings (the L2-normalised CLIP text embeddings retrace stored), read with Get.

    gallery.py --server HOST:PORT --collection NAME --images DIR --out GALLERY.npz

The ids are those `retrace index DIR` gives: image paths relative to DIR. Ids the collection
does not hold are skipped.
"""

import argparse
import os
import sys

import grpc
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import grpc_py  # noqa: E402

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
GET_BATCH = 64  # the server's default max_items_per_call


def item_ids(folder):
    ids = []
    for root, dirs, files in os.walk(folder):
        for name in files:
            if name.lower().endswith(IMAGE_SUFFIXES):
                ids.append(os.path.relpath(os.path.join(root, name), folder))
    return sorted(ids)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", required=True)
    p.add_argument("--collection", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    pb, _ = grpc_py.generate()
    ids, captions, vectors = [], [], []
    wanted = item_ids(a.images)
    with grpc.insecure_channel(a.server) as channel:
        for start in range(0, len(wanted), GET_BATCH):
            request = pb.GetRequest(collection=a.collection, ids=wanted[start:start + GET_BATCH],
                                    include_embeddings=True)
            reply = grpc_py.unary(channel, "retrace.v1.Retrace", "Get", request, pb.GetResponse,
                                  timeout=60)
            for result in reply.results:
                if result.status.code != 0:
                    continue
                ids.append(result.item.id)
                captions.append(result.item.caption)
                vectors.append(list(result.item.caption_text.values))
    if not ids:
        sys.stderr.write("gallery: collection '%s' holds none of the %d images under %s\n"
                         % (a.collection, len(wanted), a.images))
        return 1
    np.savez(a.out, ids=np.array(ids), captions=np.array(captions),
             embeddings=np.array(vectors, dtype=np.float32))
    print("gallery: %d items, dimension %d -> %s" % (len(ids), len(vectors[0]), a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
