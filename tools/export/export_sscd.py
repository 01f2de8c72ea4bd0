#!/usr/bin/python3
"""Exports an SSCD TorchScript model as an IMAGE_ENCODER model folder (a baseline of the CS-SLIP
paper's Table I).

    export_sscd.py --torchscript sscd_disc_mixup.torchscript.pt --out models-sscd/image_encoder

SSCD (Pizzi et al., CVPR 2022; facebookresearch/sscd-copy-detection) publishes its models as
TorchScript files: model(images[B,3,H,W]) -> descriptors [B,D], e.g. sscd_disc_mixup (a
ResNet-50 with GeM pooling, D = 512, L2-normalised). The file is wrapped with the contract's
encode_image and saved again with this torch, so the server's LibTorch 1.13 loads it (it reads
files saved by older versions). Preprocessing is SSCD's "skew" evaluation transform: a resize to
--image-size square (default 320, bilinear as torchvision's Resize), ImageNet mean/std. SSCD's
"small edge 288" transform keeps the aspect ratio without a crop, which the manifest cannot say.
"""

import argparse
import os
import sys

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_common as ec  # noqa: E402


class SscdImageEncoder(nn.Module):
    """IMAGE_ENCODER contract around the published module: encode_image = model(images)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    @torch.jit.export
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images).float()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encode_image(images)


def load_torchscript(path):
    ec.require_file(path, "TorchScript file")
    try:
        model = torch.jit.load(path, map_location="cpu")
    except Exception as e:  # RuntimeError for a pickle, a truncated file, an unknown operator
        raise ec.ExportError("%s is not a TorchScript file this torch can load (SSCD publishes "
                             "e.g. sscd_disc_mixup.torchscript.pt): %s"
                             % (path, str(e).splitlines()[0] if str(e) else type(e).__name__))
    return model.eval()


def export(torchscript, out, image_size=320, name=None, version=None, atol=1e-4, rtol=1e-4,
           seed=0, log=print):
    """Writes the model folder; returns (folder, info). Raises ExportError."""
    if image_size < 32:
        raise ec.ExportError("--image-size %d is too small for a ResNet (at least 32)" % image_size)
    model = load_torchscript(torchscript)
    g = torch.Generator().manual_seed(seed)
    cases = []
    with torch.no_grad():
        for batch in (1, 3):
            x = torch.randn(batch, 3, image_size, image_size, generator=g)
            try:
                y = model(x)
            except Exception as e:
                raise ec.ExportError("%s does not take images [B,3,%d,%d]: %s"
                                     % (torchscript, image_size, image_size,
                                        str(e).splitlines()[0]))
            if not torch.is_tensor(y) or y.dim() != 2 or y.shape[0] != batch:
                raise ec.ExportError("%s returns %s for %d images; the contract needs [B, D]"
                                     % (torchscript, tuple(y.shape) if torch.is_tensor(y)
                                        else type(y).__name__, batch))
            cases.append(("encode_image", (x,), y.float()))
        scripted = torch.jit.script(SscdImageEncoder(model))
    ec.prepare_folder(out)
    ec.save_and_verify(scripted, out, cases, atol, rtol, log)
    base = os.path.basename(torchscript)
    dim = int(cases[0][2].shape[1])
    manifest = {
        "kind": "IMAGE_ENCODER",
        "name": name or "SSCD (%s)" % base,
        "version": version or base,
        "embedding_dim": dim,
        "image": ec.image_spec(image_size, "STRETCH", "BILINEAR", ec.IMAGENET_MEAN,
                               ec.IMAGENET_STD),
        "dtype": "float32",
    }
    ec.write_manifest(out, manifest)
    return out, {"embedding_dim": dim, "image_size": image_size}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--torchscript", required=True,
                   help="SSCD's TorchScript file, e.g. sscd_disc_mixup.torchscript.pt")
    p.add_argument("--image-size", type=int, default=320,
                   help="square input side (default 320, SSCD's skew evaluation transform)")
    ec.add_common_flags(p)
    a = p.parse_args(argv)
    ec.check_torch_version(a.allow_newer_torch)
    out, info = export(a.torchscript, a.out, a.image_size, a.name, a.version, a.atol, a.rtol,
                       a.seed)
    print("wrote %s (IMAGE_ENCODER, SSCD, image %d, D %d, %.1f MB)"
          % (out, info["image_size"], info["embedding_dim"], ec.folder_size_mb(out)))
    return 0


if __name__ == "__main__":
    ec.run_main(main)
