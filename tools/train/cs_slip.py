"""CS-SLIP's model and losses: a ViT image encoder trained with three contrastive objectives.

The CS-SLIP paper (../shared/papers/cs-slip-provenance.txt, section III-A) adds a
conceptual-similar branch to SLIP (Mu et al., ECCV 2022):
  - CLIP branch: InfoNCE between an image's embedding (ViT class token @ image_projection) and the
    frozen CLIP text embedding of its caption — here the embedding retrace stored for the caption,
    so no text tower is trained; a learnable temperature as CLIP (init 1/0.07, scale <= 100).
  - SSL branch: SimCLR's NT-Xent between two augmented views, through SLIP's projection MLP
    (image_mlp: 3 linear layers, BatchNorm + ReLU between), temperature 0.1 (SLIP's ssl_temp).
  - CS branch: "the same objective with the self-supervised learning" between an image and its
    conceptual-similar partner (the image whose caption is nearest, `retrace mine-pairs`), through
    the same weight-sharing encoder and, in our reading, the same MLP head.
  loss = clip_weight * clip + ssl_weight * ssl + cs_weight * cs. The paper gives no values for the
  weights ("we assign weighted value as the objective scales"); SLIP uses 1.0 for its SSL scale,
  and the defaults here are 1, 1, 1.

Key names are SLIP's checkpoint layout — `visual.*` with timm 0.5's ViT names, `image_projection`,
`image_mlp.*`, `logit_scale` — and the ViT is tools/export/export_slip.py's own VisionTransformer,
so a checkpoint saved by train_cs_slip.py exports with export_slip.py.
"""

import math
import os
import sys
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "export"))
import export_slip  # noqa: E402  (the ViT whose key names export_slip.py reads)

# Sizes by name. SLIP's ViT-S/16 has 12 heads (its MoCo-v3 variant) and ViT-B/16 12; the small
# ones are for tests and CPU runs. `model` is what export_slip.py reads to tell the heads.
MODEL_SIZES = {
    "tiny": dict(image_size=32, patch=8, width=48, depth=2, heads=4, mlp_ratio=4.0),
    "small": dict(image_size=64, patch=8, width=128, depth=4, heads=4, mlp_ratio=4.0),
    "vits16": dict(image_size=224, patch=16, width=384, depth=12, heads=12, mlp_ratio=4.0),
    "vitb16": dict(image_size=224, patch=16, width=768, depth=12, heads=12, mlp_ratio=4.0),
}
SLIP_MODEL_NAMES = {"vits16": "CSSLIP_VITS16", "vitb16": "CSSLIP_VITB16"}
CLIP_INIT_TEMPERATURE = 0.07
MAX_LOGIT_SCALE = 100.0  # CLIP clips exp(logit_scale) at 100
SSL_TEMPERATURE = 0.1    # SLIP's --ssl-temp


class CsSlip(nn.Module):
    """The trained parts: visual (ViT), image_projection (to the caption space), image_mlp (the
    SimCLR head) and logit_scale. Only visual and image_projection are exported."""

    def __init__(self, image_size, patch, width, depth, heads, mlp_ratio, embed_dim,
                 ssl_mlp_dim, ssl_emb_dim):
        super().__init__()
        num_patches = (image_size // patch) ** 2
        self.visual = export_slip.VisionTransformer(patch, width, depth, heads,
                                                    int(width * mlp_ratio), num_patches,
                                                    qkv_bias=True)
        self.image_projection = nn.Parameter(torch.empty(width, embed_dim))
        self.image_mlp = nn.Sequential(OrderedDict([
            ("layer1", nn.Linear(width, ssl_mlp_dim)),
            ("bn1", nn.BatchNorm1d(ssl_mlp_dim)),
            ("relu1", nn.ReLU(inplace=True)),
            ("layer2", nn.Linear(ssl_mlp_dim, ssl_mlp_dim)),
            ("bn2", nn.BatchNorm1d(ssl_mlp_dim)),
            ("relu2", nn.ReLU(inplace=True)),
            ("layer3", nn.Linear(ssl_mlp_dim, ssl_emb_dim)),
        ]))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / CLIP_INIT_TEMPERATURE)))
        self._init_weights(width)

    def _init_weights(self, width):
        # timm's ViT init (truncated normal 0.02, zero biases, unit LayerNorms), CLIP's
        # projection init (std width^-0.5).
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.visual.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.visual.cls_token, std=0.02)
        nn.init.normal_(self.image_projection, std=width ** -0.5)

    def features(self, images):
        return self.visual(images)

    def embed(self, features):
        """The exported embedding: class token @ image_projection (not normalised)."""
        return features @ self.image_projection

    def ssl_head(self, features):
        return self.image_mlp(features)


def clip_loss(image_embed, text_embed, logit_scale):
    """CLIP's symmetric InfoNCE. Rows with the same caption embedding are all positives of each
    other (soft targets), since a batch may hold several images with one caption."""
    image_embed = F.normalize(image_embed, dim=-1)
    text_embed = F.normalize(text_embed, dim=-1)
    scale = logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)
    logits = scale * image_embed @ text_embed.t()
    same = (text_embed @ text_embed.t() > 1 - 1e-6).float()
    targets = same / same.sum(dim=1, keepdim=True)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets)) / 2


def nt_xent(a, b, temperature=SSL_TEMPERATURE):
    """SimCLR's NT-Xent as SLIP's SIMCLRLoss: row i of a and row i of b are positives; the other
    2N - 2 embeddings of both views are negatives."""
    a = F.normalize(a, dim=-1)
    b = F.normalize(b, dim=-1)
    n = a.shape[0]
    labels = torch.arange(n, device=a.device)
    mask = torch.eye(n, device=a.device) * 1e9
    logits_aa = a @ a.t() / temperature - mask
    logits_bb = b @ b.t() / temperature - mask
    logits_ab = a @ b.t() / temperature
    logits_ba = b @ a.t() / temperature
    loss_a = F.cross_entropy(torch.cat([logits_ab, logits_aa], dim=1), labels)
    loss_b = F.cross_entropy(torch.cat([logits_ba, logits_bb], dim=1), labels)
    return (loss_a + loss_b) / 2


def model_sizes(size_name, overrides=None):
    """The MODEL_SIZES entry `size_name` with the overrides that are not None applied."""
    if size_name not in MODEL_SIZES:
        raise ValueError("unknown model size %r (known: %s)" % (size_name, ", ".join(MODEL_SIZES)))
    sizes = dict(MODEL_SIZES[size_name])
    sizes.update({k: v for k, v in (overrides or {}).items() if v is not None})
    for key in ("image_size", "patch", "width", "depth", "heads"):
        if sizes[key] < 1:
            raise ValueError("%s must be >= 1, got %d" % (key.replace("_", " "), sizes[key]))
    if sizes["image_size"] % sizes["patch"]:
        raise ValueError("image size %d is not a multiple of the patch size %d"
                         % (sizes["image_size"], sizes["patch"]))
    if sizes["width"] % sizes["heads"]:
        raise ValueError("width %d is not divisible by %d heads" % (sizes["width"], sizes["heads"]))
    return sizes
