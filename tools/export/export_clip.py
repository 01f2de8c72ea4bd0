#!/usr/bin/python3
"""Exports a CLIP model (open_clip or Hugging Face) as a CLIP model folder.

    export_clip.py --open-clip ViT-H-14 --pretrained open_clip_pytorch_model.bin --out models/clip
    export_clip.py --hf-dir clip-vit-large-patch14 --out models/clip

open_clip: --open-clip is a name for open_clip.create_model_and_transforms (e.g. ViT-H-14),
--pretrained a local weights file (e.g. laion/CLIP-ViT-H-14-laion2B-s32B-b79K's
open_clip_pytorch_model.bin) or a tag open_clip may download. Hugging Face: --hf-dir is a local
CLIPModel directory (config.json, weights, preprocessor_config.json, merges.txt, vocab.json).

encode_image(f32[B,3,S,S]) -> f32[B,D] and encode_text(i64[B,77]) -> f32[B,D] are traced
(not normalised: the service L2-normalises). retrace's tokenizer writes start, ids, end (49407),
then pads with 0; both libraries pool the text at the end token under a causal mask, and the
export checks it: text features must not change when the ids after the end token do.
Preprocessing is read from the library's own transform / preprocessor_config.json.
"""

import argparse
import json
import os
import sys
import warnings

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_common as ec  # noqa: E402

CONTEXT = 77
CLIP_MERGES = 49152 - 256 - 2  # merges CLIP's tokenizer uses (the rest of the file is unused)
RESAMPLE = {2: "BILINEAR", 3: "BICUBIC"}


class ClipMethods(nn.Module):
    """The two contract methods over a library model (held as a submodule, so tracing keeps its
    weights as parameters). style: "open_clip" (encode_image/encode_text, also fixtures' DemoClip)
    or "hf" (CLIPModel.get_image_features/get_text_features)."""

    def __init__(self, model, style):
        super().__init__()
        self.model = model
        self.style = style

    def encode_image(self, images):
        if self.style == "hf":
            return as_tensor(self.model.get_image_features(pixel_values=images),
                             "get_image_features")
        return self.model.encode_image(images)

    def encode_text(self, tokens):
        if self.style == "hf":
            return as_tensor(self.model.get_text_features(input_ids=tokens), "get_text_features")
        return self.model.encode_text(tokens)


def as_tensor(value, what):
    if torch.is_tensor(value):
        return value
    raise ec.ExportError("%s returned %s, not a tensor: this library version is not supported"
                         % (what, type(value).__name__))


# --- open_clip -------------------------------------------------------------------------------

def open_clip_preprocessing(preprocess):
    """Manifest image spec from open_clip's torchvision Compose (Resize, CenterCrop, Normalize)."""
    from torchvision import transforms as T
    resize = crop = norm = None
    for t in getattr(preprocess, "transforms", []):
        if isinstance(t, T.Resize):
            resize = t
        elif isinstance(t, T.CenterCrop):
            crop = t
        elif isinstance(t, T.Normalize):
            norm = t
    if resize is None or norm is None:
        raise ec.ExportError("open_clip's transform has no Resize/Normalize: %s" % preprocess)
    interp = str(getattr(resize.interpolation, "value", resize.interpolation)).upper()
    interp = "BICUBIC" if "BICUBIC" in interp else "BILINEAR" if "BILINEAR" in interp else None
    if interp is None:
        raise ec.ExportError("unsupported resize interpolation %s" % resize.interpolation)
    size = resize.size
    if isinstance(size, int) or (isinstance(size, (list, tuple)) and len(size) == 1):
        side = size if isinstance(size, int) else size[0]
        if crop is None or tuple(crop.size) != (side, side):
            raise ec.ExportError("open_clip resizes the shortest side to %s without a matching "
                                 "centre crop (%s)" % (side, crop))
        mode = "SHORTEST_SIDE_CENTER_CROP"
    elif size[0] == size[1]:
        side, mode = size[0], "STRETCH"  # open_clip's resize_mode='squash'
    else:
        raise ec.ExportError("non-square resize %s is not supported" % (size,))
    return ec.image_spec(side, mode, interp, norm.mean, norm.std)


def load_open_clip(name, pretrained):
    open_clip = ec.require("open_clip", "open_clip_torch")
    looks_like_file = os.sep in pretrained or pretrained.endswith((".bin", ".pt", ".pth",
                                                                   ".safetensors"))
    if looks_like_file:
        ec.require_file(pretrained, "--pretrained weights file")
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained)
    except RuntimeError as e:
        raise ec.ExportError("open_clip could not build %s with %s: %s" % (name, pretrained, e))
    model = model.float().eval()
    bpe = open_clip.tokenizer.default_bpe()
    context = getattr(model, "context_length", CONTEXT)
    methods = ClipMethods(model, "open_clip")
    image = open_clip_preprocessing(preprocess)
    return methods, image, bpe, context, "CLIP %s %s" % (name, os.path.basename(pretrained))


# --- Hugging Face ----------------------------------------------------------------------------

def check_hf_merges(merges_path, vocab_path):
    """merges.txt must be CLIP's merge list: id(a+b) = 512 + rank, as retrace's tokenizer assumes."""
    with open(merges_path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if not lines[0].startswith("#version") or len(lines) < CLIP_MERGES + 1:
        raise ec.ExportError("%s is not CLIP's merge list (a '#version' line and %d merges)"
                             % (merges_path, CLIP_MERGES))
    if os.path.isfile(vocab_path):
        with open(vocab_path, encoding="utf-8") as f:
            vocab = json.load(f)
        for rank in list(range(50)) + list(range(CLIP_MERGES - 50, CLIP_MERGES)):
            token = "".join(lines[rank + 1].split())
            if vocab.get(token) != 512 + rank:
                raise ec.ExportError("%s: merge %d (%r) has id %s in vocab.json, not %d; this is "
                                     "not CLIP's vocabulary" % (merges_path, rank, token,
                                                                vocab.get(token), 512 + rank))


def hf_preprocessing(hf_dir, image_size):
    path = ec.require_file(os.path.join(hf_dir, "preprocessor_config.json"),
                           "preprocessor_config.json")
    with open(path) as f:
        cfg = json.load(f)
    crop = cfg.get("crop_size", image_size)
    crop = crop.get("height", crop.get("shortest_edge")) if isinstance(crop, dict) else crop
    size = cfg.get("size", crop)
    size = size.get("shortest_edge", size.get("height")) if isinstance(size, dict) else size
    if not cfg.get("do_center_crop", True) or size != crop or crop != image_size:
        raise ec.ExportError("%s: expected CLIP's shortest side %d + centre crop; got size %s, "
                             "crop %s, do_center_crop %s" % (path, image_size, size, crop,
                                                             cfg.get("do_center_crop")))
    resample = cfg.get("resample", 3)
    if resample not in RESAMPLE:
        raise ec.ExportError("%s: resample %s is neither bilinear nor bicubic" % (path, resample))
    return ec.image_spec(crop, "SHORTEST_SIDE_CENTER_CROP", RESAMPLE[resample],
                         cfg.get("image_mean", ec.CLIP_MEAN), cfg.get("image_std", ec.CLIP_STD))


def load_hf(hf_dir, bpe_file):
    transformers = ec.require("transformers", "transformers")
    ec.require_dir(hf_dir, "--hf-dir")
    ec.require_file(os.path.join(hf_dir, "config.json"), "config.json of the checkpoint")
    kwargs = {"torch_dtype": torch.float32, "local_files_only": True}
    try:
        model = transformers.CLIPModel.from_pretrained(hf_dir, attn_implementation="eager",
                                                       **kwargs)
    except (TypeError, ValueError):
        model = transformers.CLIPModel.from_pretrained(hf_dir, **kwargs)
    model = model.float().eval()
    if not bpe_file:
        bpe_file = ec.require_file(os.path.join(hf_dir, "merges.txt"), "merges.txt")
        check_hf_merges(bpe_file, os.path.join(hf_dir, "vocab.json"))
    methods = ClipMethods(model, "hf")
    image = hf_preprocessing(hf_dir, model.config.vision_config.image_size)
    context = model.config.text_config.max_position_embeddings
    return methods, image, bpe_file, context, "CLIP %s" % os.path.basename(os.path.normpath(hf_dir))


# --- export ----------------------------------------------------------------------------------

def export(methods, image, bpe_file, context, out, name, version, atol=1e-4, rtol=1e-4, seed=0,
           log=print):
    if context != CONTEXT:
        raise ec.ExportError("the text tower's context length is %d; retrace's CLIP tokenizer "
                             "writes %d ids" % (context, CONTEXT))
    ec.require_file(bpe_file, "CLIP BPE file")
    ec.prepare_folder(out)
    size = image["size"]
    g = torch.Generator().manual_seed(seed)
    ex_image = torch.randn(2, 3, size, size, generator=g)
    ex_text = ec.random_clip_tokens(2, CONTEXT, 49408, g)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings; verify() checks other shapes instead
        traced = torch.jit.trace_module(methods, {"encode_image": (ex_image,),
                                                  "encode_text": (ex_text,)}, check_trace=False)
        cases = []
        for batch in (1, 3):
            x = torch.randn(batch, 3, size, size, generator=g)
            t = ec.random_clip_tokens(batch, CONTEXT, 49408, g)
            cases += [("encode_image", (x,), methods.encode_image(x)),
                      ("encode_text", (t,), methods.encode_text(t))]
        loaded = ec.save_and_verify(traced, out, cases, atol, rtol, log)
        # Pooling at the end token: ids after it (retrace pads 0, HF pads 49407) must not matter.
        t = ec.random_clip_tokens(4, CONTEXT, 49408, g)
        after_end = torch.cumsum((t == ec.CLIP_END).long(), 1) - (t == ec.CLIP_END).long() > 0
        other = torch.where(after_end, torch.randint(1, 49406, t.shape, generator=g), t)
        other[0] = torch.where(after_end[0], torch.full_like(t[0], ec.CLIP_END), t[0])
        worst = ec.compare("encode_text with other ids after the end token",
                           loaded.encode_text(other), loaded.encode_text(t), atol, rtol)
        log("verified encode_text ignores ids after the end token: max |diff| %.2e" % worst)
        dim = loaded.encode_image(ex_image).shape[1]
    manifest = {
        "kind": "CLIP",
        "name": name,
        "version": version,
        "embedding_dim": int(dim),
        "image": image,
        "tokenizer": {"kind": "CLIP_BPE", "vocab_file": ec.copy_into(bpe_file, out),
                      "context_length": CONTEXT},
        "dtype": "float32",
    }
    ec.write_manifest(out, manifest)
    return out, manifest


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--open-clip", metavar="NAME", help="open_clip model name, e.g. ViT-H-14")
    src.add_argument("--hf-dir", help="local Hugging Face CLIPModel directory")
    p.add_argument("--pretrained", help="open_clip: weights file (or tag)")
    p.add_argument("--bpe-file", default=None,
                   help="CLIP merge list to copy (bpe_simple_vocab_16e6.txt[.gz]); default: "
                        "open_clip's own, or the HF directory's merges.txt")
    ec.add_common_flags(p)
    a = p.parse_args(argv)
    ec.check_torch_version(a.allow_newer_torch)
    if a.open_clip:
        if not a.pretrained:
            raise ec.ExportError("--open-clip needs --pretrained (a weights file)")
        methods, image, bpe, context, default_name = load_open_clip(a.open_clip, a.pretrained)
        version = a.version or os.path.basename(a.pretrained)
    else:
        methods, image, bpe, context, default_name = load_hf(a.hf_dir, a.bpe_file)
        version = a.version or os.path.basename(os.path.normpath(a.hf_dir))
    out, m = export(methods, image, a.bpe_file or bpe, context, a.out, a.name or default_name,
                    version, a.atol, a.rtol, a.seed)
    print("wrote %s (CLIP, image %d %s, D %d, %.1f MB)" % (out, m["image"]["size"],
                                                           m["image"]["resize_mode"],
                                                           m["embedding_dim"],
                                                           ec.folder_size_mb(out)))
    return 0


if __name__ == "__main__":
    ec.run_main(main)
