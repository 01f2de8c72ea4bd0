#!/usr/bin/python3
"""Exports the image encoder of a SLIP / CS-SLIP checkpoint as an IMAGE_ENCODER model folder.

    export_slip.py --checkpoint slip_base_100ep.pt --out models/image_encoder [--heads 12]

The checkpoint is what facebookresearch/SLIP's main.py saves: {'state_dict': {...}, 'args': ...}
with DDP's 'module.' prefix on every key (a bare state dict works too). Only `visual.*` (a timm
VisionTransformer, timm 0.5.x key names) and `image_projection` are used; encode_image is
visual(x)[class token] @ image_projection, as SLIP's CLIP.encode_image. The ViT is written here in
plain torch with timm's parameter names, so neither timm nor SLIP's code is needed; when timm is
installed the export is also compared with timm's own VisionTransformer.
Preprocessing is SLIP's evaluation transform: Resize(224) (bilinear) + CenterCrop(224), ImageNet
mean/std.
"""

import argparse
import math
import os
import re
import sys
from typing import List

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_common as ec  # noqa: E402

# Heads cannot be read from the weights. SLIP's ViT-S is timm's MoCo-v3 variant with 12 heads
# (timm's own vit_small has 6), ViT-B has 12, ViT-L has 16 (SLIP models.py).
HEADS_BY_MODEL = {"VITS16": 12, "VITB16": 12, "VITL16": 16, "CC3M": 12, "CC12M": 12}
HEADS_BY_WIDTH = {384: 12, 768: 12, 1024: 16}
LAYER_NORM_EPS = 1e-6  # timm's ViT uses LayerNorm(eps=1e-6)


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, width: int):
        super().__init__()
        self.proj = nn.Conv2d(3, width, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, width: int, heads: int, qkv_bias: bool):
        super().__init__()
        self.heads = heads
        self.scale = (width // heads) ** -0.5
        self.qkv = nn.Linear(width, 3 * width, bias=qkv_bias)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.size(0), x.size(1), x.size(2)
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (torch.matmul(q, k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj(torch.matmul(attn, v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))  # exact (erf) GELU, as timm's nn.GELU


class Block(nn.Module):
    def __init__(self, width: int, heads: int, hidden: int, qkv_bias: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=LAYER_NORM_EPS)
        self.attn = Attention(width, heads, qkv_bias)
        self.norm2 = nn.LayerNorm(width, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(width, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """timm 0.5 VisionTransformer(num_classes=0): the class token's feature after `norm`."""

    def __init__(self, patch: int, width: int, depth: int, heads: int, hidden: int,
                 num_patches: int, qkv_bias: bool):
        super().__init__()
        self.patch_embed = PatchEmbed(patch, width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, width))
        self.blocks = nn.ModuleList([Block(width, heads, hidden, qkv_bias) for _ in range(depth)])
        self.norm = nn.LayerNorm(width, eps=LAYER_NORM_EPS)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Every token after the last block and `norm`: [B, 1 + patches, width]."""
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.size(0), -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tokens(x)[:, 0]


class SlipImageEncoder(nn.Module):
    """IMAGE_ENCODER contract: encode_image(f32[B,3,S,S]) -> f32[B,D] (not normalised)."""

    def __init__(self, visual: VisionTransformer, projection: torch.Tensor):
        super().__init__()
        self.visual = visual
        self.image_projection = nn.Parameter(projection)

    @torch.jit.export
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.visual(images) @ self.image_projection

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encode_image(images)


def load_checkpoint(path):
    """(state dict without 'module.' prefixes, SLIP model name or None, heads or None) from a
    checkpoint file. `args.heads` is not in SLIP's checkpoints; tools/train writes it, since
    its small ViTs have sizes no model name tells."""
    ec.require_file(path, "checkpoint")
    try:
        # SLIP checkpoints pickle an argparse.Namespace ('args'): weights_only loading rejects it.
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except TypeError:  # torch < 1.13 has no weights_only
        ckpt = torch.load(path, map_location="cpu")
    except Exception as e:
        raise ec.ExportError("cannot read checkpoint %s: %s" % (path, e))
    if not isinstance(ckpt, dict):
        raise ec.ExportError("%s holds a %s, not a checkpoint dict" % (path, type(ckpt).__name__))
    state = ckpt.get("state_dict", ckpt.get("model", ckpt))
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ec.ExportError("%s: no state dict of tensors under 'state_dict', 'model' or the "
                             "top level" % path)
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}
    args = ckpt.get("args")
    model_name = getattr(args, "model", None) if args is not None else None
    heads = getattr(args, "heads", None) if args is not None else None
    return state, model_name, heads


def infer_heads(model_name, width, heads_flag):
    if heads_flag:
        return heads_flag
    if model_name:
        for suffix, heads in HEADS_BY_MODEL.items():
            if model_name.upper().endswith(suffix):
                return heads
    if width in HEADS_BY_WIDTH:
        return HEADS_BY_WIDTH[width]
    raise ec.ExportError("cannot tell the number of attention heads of a ViT of width %d "
                         "(checkpoint model %r); pass --heads" % (width, model_name))


def build_vit(weights, heads_for_width, prefix="visual."):
    """(VisionTransformer with `weights`, info) for a timm-layout ViT state dict without its
    prefix; heads_for_width(width) tells the heads. ExportError naming any unexpected key."""
    for key in ("patch_embed.proj.weight", "cls_token", "pos_embed", "norm.weight"):
        if key not in weights:
            raise ec.ExportError("%s%s missing: not a timm ViT state dict" % (prefix, key))
    width, _, patch, patch_w = weights["patch_embed.proj.weight"].shape
    if patch != patch_w:
        raise ec.ExportError("non-square patches %dx%d are not supported" % (patch, patch_w))
    depth = 1 + max(int(m.group(1)) for m in
                    (re.match(r"blocks\.(\d+)\.", k) for k in weights) if m)
    num_patches = weights["pos_embed"].shape[1] - 1
    grid = int(math.isqrt(num_patches))
    if grid * grid != num_patches:
        raise ec.ExportError("pos_embed has %d patch positions, not a square grid" % num_patches)
    hidden = weights["blocks.0.mlp.fc1.weight"].shape[0]
    qkv_bias = "blocks.0.attn.qkv.bias" in weights
    heads = heads_for_width(width)
    if width % heads:
        raise ec.ExportError("width %d is not divisible by %d heads" % (width, heads))
    vit = VisionTransformer(patch, width, depth, heads, hidden, num_patches, qkv_bias)
    # Heads (timm's head.*, pre_logits.*) are identities at num_classes=0; anything else unknown
    # (fc_norm, layer scale, ...) means a ViT variant this code does not implement: refuse it.
    missing, unexpected = vit.load_state_dict(weights, strict=False)
    unexpected = [k for k in unexpected if not k.startswith(("head.", "pre_logits."))]
    if missing or unexpected:
        raise ec.ExportError("%sweights do not match a timm ViT (patch %d, width %d, depth "
                             "%d): missing %s, unexpected %s"
                             % (prefix.replace(".", " "), patch, width, depth, missing[:6],
                                unexpected[:6]))
    info = {"patch": patch, "width": width, "depth": depth, "heads": heads,
            "image_size": grid * patch, "mlp_ratio": hidden / width, "qkv_bias": qkv_bias}
    return vit.float(), info


def build_encoder(state, model_name=None, heads=None):
    """SlipImageEncoder with the checkpoint's weights; ExportError naming any unexpected key."""
    visual = {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}
    if not visual:
        raise ec.ExportError("the checkpoint has no 'visual.*' weights (keys start with: %s)"
                             % sorted(set(k.split(".")[0] for k in state))[:8])
    if "image_projection" not in state:
        raise ec.ExportError("the checkpoint has no 'image_projection' (a SIMCLR-only checkpoint "
                             "has no image-text embedding to export)")
    vit, info = build_vit(visual, lambda width: infer_heads(model_name, width, heads))
    projection = state["image_projection"].float()
    if projection.dim() != 2 or projection.shape[0] != info["width"]:
        raise ec.ExportError("image_projection has shape %s; expected [%d, D]"
                             % (list(projection.shape), info["width"]))
    encoder = SlipImageEncoder(vit, projection.clone()).eval()
    info["embedding_dim"] = projection.shape[1]
    return encoder, info


def timm_reference(state, info):
    """timm's VisionTransformer with the same weights, or None when timm is not installed."""
    try:
        from timm.models.vision_transformer import VisionTransformer as TimmViT
    except ImportError:
        return None
    vit = TimmViT(img_size=info["image_size"], patch_size=info["patch"],
                  embed_dim=info["width"], depth=info["depth"], num_heads=info["heads"],
                  mlp_ratio=info["mlp_ratio"], qkv_bias=info["qkv_bias"], num_classes=0)
    visual = {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}
    missing, _ = vit.load_state_dict(visual, strict=False)
    if missing:  # a timm whose key names moved: say so rather than compare with random weights
        raise ec.ExportError("timm's VisionTransformer expects keys the checkpoint lacks: %s"
                             % missing[:6])
    projection = state["image_projection"].float()
    return lambda x: vit.eval()(x) @ projection


def export(checkpoint, out, name=None, version=None, heads=None, atol=1e-4, rtol=1e-4, seed=0,
           log=print):
    """Writes the model folder; returns (folder, info). Raises ExportError."""
    state, model_name, checkpoint_heads = load_checkpoint(checkpoint)
    encoder, info = build_encoder(state, model_name, heads or checkpoint_heads)
    ec.prepare_folder(out)
    size = info["image_size"]
    g = torch.Generator().manual_seed(seed)
    cases = []
    references = [("eager", encoder.encode_image)]
    timm_ref = timm_reference(state, info)
    if timm_ref is not None:
        references.append(("timm", timm_ref))
    else:
        log("timm is not installed: checked against this file's ViT only")
    with torch.no_grad():
        for batch in (1, 3):
            x = torch.randn(batch, 3, size, size, generator=g)
            for label, ref in references:
                cases.append(("encode_image", (x,), ref(x)))
        scripted = torch.jit.script(encoder)
    ec.save_and_verify(scripted, out, cases, atol, rtol, log)
    base = os.path.basename(checkpoint)
    manifest = {
        "kind": "IMAGE_ENCODER",
        "name": name or "SLIP image encoder (%s, %s)" % (model_name or "ViT", base),
        "version": version or base,
        "embedding_dim": int(info["embedding_dim"]),
        # SLIP's eval transform: Resize(224) (torchvision default: bilinear) + CenterCrop.
        "image": ec.image_spec(size, "SHORTEST_SIDE_CENTER_CROP", "BILINEAR",
                               ec.IMAGENET_MEAN, ec.IMAGENET_STD),
        "dtype": "float32",
    }
    ec.write_manifest(out, manifest)
    return out, info


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="SLIP / CS-SLIP checkpoint (.pt)")
    p.add_argument("--heads", type=int, default=None,
                   help="attention heads (default: the checkpoint's args.heads, else from its "
                        "args.model or width)")
    ec.add_common_flags(p)
    a = p.parse_args(argv)
    ec.check_torch_version(a.allow_newer_torch)
    out, info = export(a.checkpoint, a.out, a.name, a.version, a.heads, a.atol, a.rtol, a.seed)
    print("wrote %s (IMAGE_ENCODER, ViT patch %d width %d depth %d heads %d, image %d, D %d, "
          "%.1f MB)" % (out, info["patch"], info["width"], info["depth"], info["heads"],
                        info["image_size"], info["embedding_dim"], ec.folder_size_mb(out)))
    return 0


if __name__ == "__main__":
    ec.run_main(main)
