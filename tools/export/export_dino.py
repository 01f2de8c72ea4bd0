#!/usr/bin/python3
"""Exports a DINO ViT checkpoint as an IMAGE_ENCODER model folder (a baseline of the CS-SLIP
paper's Table I).

    export_dino.py --checkpoint dino_vitbase16_pretrain.pth --out models-dino/image_encoder

DINO (Caron et al., ICCV 2021; facebookresearch/dino) publishes its ViT backbones as PyTorch state
dicts (dino_deitsmall16_pretrain.pth, dino_vitbase16_pretrain.pth, ...) with timm's key names,
and full training checkpoints ({'teacher': ..., 'student': ...}, keys 'backbone.*' and 'head.*',
possibly 'module.'-prefixed); from those the --checkpoint-key network's backbone is used (the
teacher by default, as DINO's evaluations do). The ViT is export_slip.py's (timm names, LayerNorm
eps 1e-6, exact GELU), which is DINO's own ViT.

The descriptor (--pooling):
  cls-gem  DINO's copy-detection descriptor (eval_copy_detection.py): the [CLS] token and the
           GeM (p = 4) of the patch tokens, concatenated (2 x width). Preprocessing as there:
           a resize to --image-size square (default 320, bicubic), ImageNet mean/std.
  cls      the [CLS] token (width), as DINO's k-NN evaluation; pair it with --image-size 224
           --resize center-crop.
DINO's copy detection also learns a PCA whitening on 20k distractor images; that needs a
distractor set and is not applied here. At an image size other than the checkpoint's grid, the
position embedding is interpolated once, at export, exactly as DINO's interpolate_pos_encoding
does at run time (bicubic, scale (size/patch + 0.1) / grid).
"""

import argparse
import math
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_common as ec  # noqa: E402
import export_slip  # noqa: E402

# DINO's ViTs: vit_tiny 192/3 heads, vit_small 384/6, vit_base 768/12 (its vision_transformer.py).
HEADS_BY_WIDTH = {192: 3, 384: 6, 768: 12, 1024: 16}
GEM_P = 4.0  # eval_copy_detection.py's exponent for the patch tokens
RESIZE_MODES = {"stretch": "STRETCH", "center-crop": "SHORTEST_SIDE_CENTER_CROP"}


class DinoImageEncoder(nn.Module):
    """IMAGE_ENCODER contract: encode_image(f32[B,3,S,S]) -> f32[B,D] (not normalised)."""

    def __init__(self, vit: export_slip.VisionTransformer, gem: bool):
        super().__init__()
        self.vit = vit
        self.gem = gem
        self.gem_p = GEM_P

    @torch.jit.export
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.vit.tokens(images)
        cls = tokens[:, 0]
        if not self.gem:
            return cls
        # GeM over all patch tokens = DINO's avg_pool2d of the p-th powers over the whole grid.
        patches = tokens[:, 1:].clamp(min=1e-6).pow(self.gem_p).mean(dim=1).pow(1.0 / self.gem_p)
        return torch.cat([cls, patches], dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encode_image(images)


def interpolate_pos_embed(pos_embed, patch, size):
    """DINO's VisionTransformer.interpolate_pos_encoding for a size x size input, computed once."""
    n = pos_embed.shape[1] - 1
    grid = int(math.sqrt(n))
    w0 = h0 = size // patch
    if w0 * h0 == n:
        return pos_embed
    dim = pos_embed.shape[-1]
    w0, h0 = w0 + 0.1, h0 + 0.1  # DINO: "a small number to avoid floating point error"
    patch_pos = F.interpolate(pos_embed[:, 1:].reshape(1, grid, grid, dim).permute(0, 3, 1, 2),
                              scale_factor=(w0 / math.sqrt(n), h0 / math.sqrt(n)), mode="bicubic")
    if int(w0) != patch_pos.shape[-2] or int(h0) != patch_pos.shape[-1]:
        raise ec.ExportError("interpolating the position embedding to %d gave a %dx%d grid"
                             % (size, patch_pos.shape[-2], patch_pos.shape[-1]))
    patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, -1, dim)
    return torch.cat([pos_embed[:, :1], patch_pos], dim=1)


def load_backbone(path, checkpoint_key):
    """The backbone's state dict (timm names) from a DINO backbone file or full checkpoint."""
    ec.require_file(path, "checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu")
    except Exception as e:
        raise ec.ExportError("cannot read checkpoint %s: %s" % (path, e))
    if not isinstance(ckpt, dict):
        raise ec.ExportError("%s holds a %s, not a state dict" % (path, type(ckpt).__name__))
    if checkpoint_key in ckpt and isinstance(ckpt[checkpoint_key], dict):
        ckpt = ckpt[checkpoint_key]
    elif "teacher" in ckpt or "student" in ckpt:
        raise ec.ExportError("%s has no '%s' network (keys: %s); pass --checkpoint-key"
                             % (path, checkpoint_key, sorted(ckpt)[:8]))
    if not ckpt or not all(torch.is_tensor(v) for v in ckpt.values()):
        raise ec.ExportError("%s: not a state dict of tensors" % path)
    # As DINO's utils.load_pretrained_weights: drop DDP's and the wrapper's prefixes.
    state = {k.replace("module.", "").replace("backbone.", ""): v for k, v in ckpt.items()}
    state = {k: v for k, v in state.items() if not k.startswith("head.")}
    if "conv1.weight" in state:
        raise ec.ExportError("%s is a ResNet checkpoint; this exporter takes DINO's ViTs "
                             "(a ResNet-50 can go through export_sscd.py's path as TorchScript)"
                             % path)
    return state


def build_encoder(state, pooling="cls-gem", image_size=None, heads=None):
    """(DinoImageEncoder, info); ExportError naming any problem."""
    def heads_for(width):
        if heads:
            return heads
        if width not in HEADS_BY_WIDTH:
            raise ec.ExportError("cannot tell the heads of a ViT of width %d; pass --heads" % width)
        return HEADS_BY_WIDTH[width]

    vit, info = export_slip.build_vit(state, heads_for, prefix="")
    size = image_size or info["image_size"]
    if size % info["patch"]:
        raise ec.ExportError("--image-size %d is not a multiple of the patch size %d"
                             % (size, info["patch"]))
    if size != info["image_size"]:
        with torch.no_grad():
            vit.pos_embed = nn.Parameter(interpolate_pos_embed(vit.pos_embed, info["patch"], size))
    info["image_size"] = size
    info["embedding_dim"] = info["width"] * (2 if pooling == "cls-gem" else 1)
    return DinoImageEncoder(vit, pooling == "cls-gem").eval(), info


def export(checkpoint, out, pooling="cls-gem", image_size=320, resize="stretch",
           checkpoint_key="teacher", name=None, version=None, heads=None, atol=1e-4, rtol=1e-4,
           seed=0, log=print):
    """Writes the model folder; returns (folder, info). Raises ExportError."""
    if pooling not in ("cls-gem", "cls"):
        raise ec.ExportError("--pooling: expected cls-gem or cls, got %r" % pooling)
    if resize not in RESIZE_MODES:
        raise ec.ExportError("--resize: expected %s, got %r" % (" or ".join(RESIZE_MODES), resize))
    state = load_backbone(checkpoint, checkpoint_key)
    encoder, info = build_encoder(state, pooling, image_size, heads)
    ec.prepare_folder(out)
    size = info["image_size"]
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        cases = []
        for batch in (1, 3):
            x = torch.randn(batch, 3, size, size, generator=g)
            cases.append(("encode_image", (x,), encoder.encode_image(x)))
        scripted = torch.jit.script(encoder)
    ec.save_and_verify(scripted, out, cases, atol, rtol, log)
    base = os.path.basename(checkpoint)
    manifest = {
        "kind": "IMAGE_ENCODER",
        "name": name or "DINO ViT (%s, %s)" % (pooling, base),
        "version": version or base,
        "embedding_dim": int(info["embedding_dim"]),
        # DINO's transforms use bicubic resizing (interpolation=3) and ImageNet statistics.
        "image": ec.image_spec(size, RESIZE_MODES[resize], "BICUBIC", ec.IMAGENET_MEAN,
                               ec.IMAGENET_STD),
        "dtype": "float32",
    }
    ec.write_manifest(out, manifest)
    return out, info


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True,
                   help="DINO ViT backbone (.pth state dict) or full training checkpoint")
    p.add_argument("--checkpoint-key", default="teacher",
                   help="the network of a full checkpoint (default teacher)")
    p.add_argument("--pooling", default="cls-gem", choices=["cls-gem", "cls"],
                   help="descriptor (default cls-gem, DINO's copy detection)")
    p.add_argument("--image-size", type=int, default=320,
                   help="input side in pixels (default 320, DINO's copy detection)")
    p.add_argument("--resize", default="stretch", choices=sorted(RESIZE_MODES),
                   help="stretch to a square (default, DINO's copy detection) or center-crop")
    p.add_argument("--heads", type=int, default=None,
                   help="attention heads (default: from the width, as DINO's ViTs)")
    ec.add_common_flags(p)
    a = p.parse_args(argv)
    ec.check_torch_version(a.allow_newer_torch)
    if a.image_size < 1:
        raise ec.ExportError("--image-size must be >= 1")
    out, info = export(a.checkpoint, a.out, a.pooling, a.image_size, a.resize, a.checkpoint_key,
                       a.name, a.version, a.heads, a.atol, a.rtol, a.seed)
    print("wrote %s (IMAGE_ENCODER, DINO ViT patch %d width %d depth %d heads %d, %s, image %d, "
          "D %d, %.1f MB)" % (out, info["patch"], info["width"], info["depth"], info["heads"],
                              a.pooling, info["image_size"], info["embedding_dim"],
                              ec.folder_size_mb(out)))
    return 0


if __name__ == "__main__":
    ec.run_main(main)
