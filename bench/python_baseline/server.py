#!/usr/bin/python3
"""BENCHMARK BASELINE — not part of retrace. What a competent user would write instead of
retrace for Caption-Matching search by image: Python grpcio + PyTorch + FAISS, serving the same
`retrace.v1.Retrace` API (Search for image queries in CAPTION_MATCH mode, and the
DescribeCollection that `retrace bench` calls at start), so the same load generator can drive
both servers. bench/python_baseline.sh runs it against retrace-server.

    server.py --clip MODELS/clip --gallery GALLERY.npz --collection NAME
              [--listen 127.0.0.1:0] [--port-file FILE] [--workers N] [--torch-threads N]

Choices, and why they make a fair baseline rather than a strawman:
- The model is the same TorchScript file the server loads (torch.jit.load of clip/model.pt), run
  once per request at batch 1 under torch.inference_mode — no batching, as one writes a first
  server. It is warmed up at start (TorchScript's profiling executor optimises on the first
  calls).
- Preprocessing follows the model's manifest, as CLIP's own code does it: PIL decode, RGB,
  shortest side to 224 (bicubic), centre crop, /255, CLIP mean/std (STRETCH for a manifest that
  says so), the last two as in-place tensor ops (profiled: numpy's temporaries cost 5x more).
- The gallery is the retrace collection's own items: ids, captions and the L2-normalised CLIP
  text embeddings of the captions, read with Get (bench/python_baseline/gallery.py), in one
  faiss.IndexFlatIP — the exact inner-product search retrace's "Flat" index does. Reading the
  embeddings rather than recomputing them leaves the offline indexing out (it is not measured)
  and needs no Python CLIP tokenizer.
- Threads: OpenBLAS's own pool is sized to --torch-threads before it loads (retrace sizes it to
  its intra-op threads); left at the cores, its spinning threads nearly doubled the CPU per call.
- Concurrency: grpc.server(ThreadPoolExecutor(max_workers=--workers)). PyTorch and PIL release
  the GIL in their kernels, so several workers overlap decoding, inference and the gRPC work.
  The defaults (--workers 8, --torch-threads 1: parallelism from requests, not inside one) were
  the best of a scan on the 2-core machine the figures come from (python_baseline.sh's header).
- A health service answers SERVING once the model is loaded, so the bench scripts wait on it
  as on retrace-server.
"""

import argparse
import io
import json
import os
import sys
from concurrent import futures


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clip", required=True, help="a retrace clip/ model folder")
    p.add_argument("--gallery", required=True, help="ids, captions, embeddings (gallery.py)")
    p.add_argument("--collection", required=True, help="the name Search requests give")
    p.add_argument("--listen", default="127.0.0.1:0")
    p.add_argument("--port-file", default=None, help="write the bound port here")
    p.add_argument("--workers", type=int, default=8, help="gRPC handler threads")
    p.add_argument("--torch-threads", type=int, default=1, help="0: the cores")
    return p.parse_args()


if __name__ == "__main__":
    ARGS = parse_args()
    # OpenBLAS (PyTorch's BLAS on Debian) sizes its own thread pool to the cores when it loads,
    # whatever torch.set_num_threads says, and its idle threads spin: 15 ms of CPU per call
    # instead of 9 on the 2-core machine. retrace sizes that pool to its intra-op threads; so does
    # the baseline, before numpy and torch load the library.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(ARGS.torch_threads or os.cpu_count()))

import faiss  # noqa: E402  (after the OpenBLAS setting above)
import grpc  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import grpc_py  # noqa: E402  (message classes generated with the system protoc)

pb, health_pb = grpc_py.generate()


def preprocess(image_bytes, spec):
    """f32 [1,3,S,S] from encoded bytes, per the manifest's `image` message."""
    s = spec["size"]
    img = Image.open(io.BytesIO(image_bytes)).convert("RGB")
    resample = Image.BICUBIC if spec.get("interpolation", "BICUBIC") == "BICUBIC" else Image.BILINEAR
    if spec.get("resize_mode") == "STRETCH":
        img = img.resize((s, s), resample)
    else:
        w, h = img.size
        scale = s / min(w, h)
        nw, nh = max(s, round(w * scale)), max(s, round(h * scale))
        img = img.resize((nw, nh), resample)
        left, top = (nw - s) // 2, (nh - s) // 2
        img = img.crop((left, top, left + s, top + s))
    # torchvision's ToTensor + Normalize (CLIP's own transform), written as in-place tensor ops:
    # the same floats (checked: bit for bit) for a third of the CPU (1.3 against 4.3 ms an
    # image here); numpy's temporaries cost 6.7 ms.
    x = torch.from_numpy(np.array(img)).permute(2, 0, 1).float().div_(255)
    mean = torch.tensor(spec["mean"], dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(spec["std"], dtype=torch.float32).view(3, 1, 1)
    return x.sub_(mean).div_(std).unsqueeze(0)


class Baseline:
    def __init__(self, clip_dir, gallery_path, collection):
        with open(os.path.join(clip_dir, "manifest.json")) as f:
            self.manifest = json.load(f)
        self.model = torch.jit.load(os.path.join(clip_dir, "model.pt")).eval()
        g = np.load(gallery_path)
        self.ids = [str(i) for i in g["ids"]]
        self.captions = [str(c) for c in g["captions"]]
        vectors = np.ascontiguousarray(g["embeddings"], dtype=np.float32)
        faiss.normalize_L2(vectors)  # already unit-length from retrace; cheap to be sure
        self.index = faiss.IndexFlatIP(vectors.shape[1])
        self.index.add(vectors)
        self.collection = collection
        size = self.manifest["image"]["size"]
        with torch.inference_mode():
            for _ in range(3):
                self.model.encode_image(torch.zeros(1, 3, size, size))

    def search(self, request, context):
        if request.collection != self.collection:
            context.abort(grpc.StatusCode.NOT_FOUND, "no collection '%s'" % request.collection)
        if request.WhichOneof("query") != "image" or request.mode not in (
                pb.SEARCH_MODE_UNSPECIFIED, pb.CAPTION_MATCH):
            context.abort(grpc.StatusCode.UNIMPLEMENTED,
                          "the baseline serves CAPTION_MATCH image queries only")
        try:
            x = preprocess(request.image, self.manifest["image"])
        except Exception as e:  # PIL raises many types for a bad image
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "image: %s" % e)
        with torch.inference_mode():
            q = torch.nn.functional.normalize(self.model.encode_image(x), dim=1).numpy()
        scores, rows = self.index.search(q, min(request.top_k or 10, self.index.ntotal))
        response = pb.SearchResponse()
        for score, row in zip(scores[0], rows[0]):
            if row >= 0:
                response.hits.add(id=self.ids[row], score=float(score), caption=self.captions[row])
        return response

    def describe(self, request, context):
        if request.name != self.collection:
            context.abort(grpc.StatusCode.NOT_FOUND, "no collection '%s'" % request.name)
        return pb.Collection(name=self.collection, shards=1, caption_index="Flat",
                             item_count=self.index.ntotal, caption_dim=self.index.d,
                             clip_model=self.manifest.get("name", ""))


def serve_health(request, context):
    return health_pb.HealthCheckResponse(status=health_pb.HealthCheckResponse.SERVING)


def main():
    a = ARGS
    torch.set_num_threads(a.torch_threads or os.cpu_count())
    baseline = Baseline(a.clip, a.gallery, a.collection)

    def unary(fn, request_class, response_class):
        return grpc.unary_unary_rpc_method_handler(
            fn, request_deserializer=request_class.FromString,
            response_serializer=response_class.SerializeToString)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=a.workers))
    server.add_generic_rpc_handlers((
        grpc.method_handlers_generic_handler("retrace.v1.Retrace", {
            "Search": unary(baseline.search, pb.SearchRequest, pb.SearchResponse),
            "DescribeCollection": unary(baseline.describe, pb.DescribeCollectionRequest,
                                        pb.Collection),
        }),
        grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
            "Check": unary(serve_health, health_pb.HealthCheckRequest,
                           health_pb.HealthCheckResponse),
        }),
    ))
    port = server.add_insecure_port(a.listen)
    server.start()
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write("%d\n" % port)
        os.replace(a.port_file + ".tmp", a.port_file)
    print("baseline: serving '%s' (%d items) on port %d, %d workers, %d torch threads"
          % (a.collection, baseline.index.ntotal, port, a.workers, torch.get_num_threads()),
          flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    sys.exit(main())
