"""Shared parts of the exporters: version guard, library imports, manifests, save + verify.

Every exporter ends the same way: save the TorchScript module, load the file back with
torch.jit.load, run every contract method on random inputs (with batch sizes and lengths other
than the ones used for tracing, so shapes baked in by tracing are caught) and compare with the
eager model the outputs came from. Any difference beyond the tolerance raises ExportError and the
exporter exits non-zero: a folder is only reported as written once it has passed.
"""

import os
import shutil
import sys

import torch

# Shared constants and manifest writing live with the fixture makers (same manifest schema).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "fixtures"))
import fixture_common as fc  # noqa: E402

# The LibTorch the server links (Debian 12's libtorch-dev 1.13.1). A TorchScript file records
# the operator schemas of the torch that wrote it; an older runtime cannot load operators or
# schema versions it has never seen, while 1.13 does upgrade files written by older versions.
SERVER_LIBTORCH = (1, 13)

CLIP_START, CLIP_END = fc.CLIP_START, fc.CLIP_END
CLIP_MEAN, CLIP_STD = fc.CLIP_MEAN, fc.CLIP_STD
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class ExportError(Exception):
    """A problem the user must fix (bad input file, mismatch, failed verification)."""


def require(module_name, pip_name):
    """Imports module_name, or raises ExportError naming the pip package to install."""
    try:
        return __import__(module_name)
    except ImportError as e:
        raise ExportError("this exporter needs the Python package '%s' (import %s failed: %s).\n"
                          "Install it on the export machine: pip install %s   "
                          "(see tools/export/README.md for versions)"
                          % (pip_name, module_name, e, pip_name))


def torch_minor():
    parts = torch.__version__.split("+")[0].split(".")
    return int(parts[0]), int(parts[1])


def check_torch_version(allow_newer):
    """Raises ExportError when this torch is newer than the server's LibTorch (see README)."""
    have = torch_minor()
    if have > SERVER_LIBTORCH and not allow_newer:
        raise ExportError(
            "torch %s is newer than the server's LibTorch %d.%d: its TorchScript files may use "
            "operators LibTorch %d.%d cannot load. Export with torch %d.%d (or older), or pass "
            "--allow-newer-torch if the server image carries a matching LibTorch."
            % ((torch.__version__,) + SERVER_LIBTORCH * 3))


def add_common_flags(parser):
    parser.add_argument("--out", required=True, help="model folder to write (created)")
    parser.add_argument("--name", default=None, help="manifest name (default: from the source)")
    parser.add_argument("--version", default=None,
                        help="manifest version, part of the model's identity (default: from the "
                             "source file name)")
    parser.add_argument("--allow-newer-torch", action="store_true",
                        help="export even if torch is newer than the server's LibTorch 1.13")
    parser.add_argument("--atol", type=float, default=1e-4,
                        help="verification tolerance, absolute (default 1e-4)")
    parser.add_argument("--rtol", type=float, default=1e-4,
                        help="verification tolerance, relative to the largest reference value "
                             "(default 1e-4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the verification inputs")


def require_file(path, what):
    if not os.path.isfile(path):
        raise ExportError("%s not found: %s" % (what, path))
    return path


def require_dir(path, what):
    if not os.path.isdir(path):
        raise ExportError("%s not found (expected a directory): %s" % (what, path))
    return path


def prepare_folder(out):
    """Creates out; refuses a non-empty folder that is not a model folder (protects user data)."""
    if os.path.isdir(out) and os.listdir(out) and not os.path.isfile(
            os.path.join(out, "manifest.json")):
        raise ExportError("--out %s exists, is not empty and holds no manifest.json; "
                          "refusing to write into it" % out)
    os.makedirs(out, exist_ok=True)
    return out


def copy_into(src, folder, name=None):
    """Copies a tokenizer file into the model folder; returns its name relative to the folder."""
    require_file(src, "tokenizer file")
    name = name or os.path.basename(src)
    shutil.copyfile(src, os.path.join(folder, name))
    return name


def image_spec(size, resize_mode, interpolation, mean, std):
    """ImagePreprocessing in the manifest's JSON form (enum names of model_manifest.proto)."""
    assert resize_mode in ("SHORTEST_SIDE_CENTER_CROP", "LETTERBOX", "STRETCH")
    assert interpolation in ("BICUBIC", "BILINEAR")
    return {"size": int(size), "resize_mode": resize_mode, "interpolation": interpolation,
            "mean": [float(v) for v in mean], "std": [float(v) for v in std]}


def write_manifest(folder, manifest):
    fc.write_manifest(folder, manifest)


def _outputs(value):
    return list(value) if isinstance(value, (tuple, list)) else [value]


def compare(method, got, want, atol, rtol):
    """Raises ExportError unless got and want (tensors or tuples of them) agree."""
    got, want = _outputs(got), _outputs(want)
    if len(got) != len(want):
        raise ExportError("%s: %d outputs, expected %d" % (method, len(got), len(want)))
    worst = 0.0
    for i, (g, w) in enumerate(zip(got, want)):
        if tuple(g.shape) != tuple(w.shape):
            raise ExportError("%s output %d: shape %s, the eager model gives %s"
                              % (method, i, tuple(g.shape), tuple(w.shape)))
        if g.dtype != torch.float32:
            raise ExportError("%s output %d: dtype %s, the contract needs float32"
                              % (method, i, g.dtype))
        # -inf is allowed where the reference has it (masked logits); nothing else non-finite.
        inf = torch.isinf(w)
        if not torch.equal(torch.isinf(g), inf) or not torch.equal(g[inf], w[inf]):
            raise ExportError("%s output %d: infinities differ from the eager model" % (method, i))
        g, w = g.masked_fill(inf, 0.0), w.masked_fill(inf, 0.0)
        if not torch.isfinite(g).all():
            raise ExportError("%s output %d has non-finite values" % (method, i))
        scale = w.abs().max().item() if w.numel() else 0.0
        diff = (g - w).abs().max().item() if w.numel() else 0.0
        if diff > atol + rtol * scale:
            raise ExportError("%s output %d differs from the eager model: max |diff| %.3g > "
                              "%.3g (atol) + %.3g (rtol) x %.3g (max |reference|)"
                              % (method, i, diff, atol, rtol, scale))
        worst = max(worst, diff)
    return worst


def save_and_verify(module, folder, cases, atol, rtol, log=print):
    """Saves module as folder/model.pt, reloads it and checks every case.

    cases: list of (method name, tuple of inputs, reference outputs computed by the eager model).
    Returns the loaded module (for extra checks). Raises ExportError on any mismatch.
    """
    path = os.path.join(folder, "model.pt")
    torch.jit.save(module, path)
    loaded = torch.jit.load(path, map_location="cpu")
    loaded.eval()
    with torch.no_grad():
        for method, inputs, want in cases:
            if not hasattr(loaded, method):
                raise ExportError("the saved model has no method %s" % method)
            got = getattr(loaded, method)(*inputs)
            worst = compare(method, got, want, atol, rtol)
            shapes = ", ".join(str(list(t.shape)) for t in inputs)
            log("verified %s(%s): max |diff| %.2e" % (method, shapes, worst))
    return loaded


def random_clip_tokens(batch, context, vocab_size, generator, pad=0):
    """CLIP-layout rows: start, random word ids, end, then `pad` (retrace's C++ tokenizer pads 0)."""
    rows = torch.full((batch, context), pad, dtype=torch.long)
    for b in range(batch):
        n = int(torch.randint(1, context - 1, (1,), generator=generator))
        rows[b, 0] = CLIP_START
        rows[b, 1:n] = torch.randint(1, min(vocab_size, CLIP_START), (n - 1,), generator=generator)
        rows[b, n] = CLIP_END
    return rows


def folder_size_mb(folder):
    return fc.folder_size(folder) / 1e6


def run_main(main):
    """Runs an exporter's main(); ExportError becomes one 'error:' line and exit status 1."""
    try:
        sys.exit(main())
    except ExportError as e:
        sys.stderr.write("error: %s\n" % e)
        sys.exit(1)
