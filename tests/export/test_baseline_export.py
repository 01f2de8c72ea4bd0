#!/usr/bin/python3
"""Tests of the baseline image-encoder exporters, tools/export/export_sscd.py and export_dino.py,
on randomly initialised models of the published architectures.

    test_baseline_export.py [--keep DIR]

SSCD: torchvision's ResNet-50 with SSCD's changes (GeM pooling p = 3, a 512-d fc, L2
normalisation: sscd/models/model.py), scripted and saved as SSCD publishes it (TorchScript).
DINO: a small ViT in DINO's layouts (a backbone state dict, and a full checkpoint with teacher and
student, 'backbone.'/'module.' prefixes and a DINO head); the expected descriptors come from
dino_reference() below, written from DINO's code (interpolate_pos_encoding at run time,
avg_pool2d GeM), not from the exporter's modules. With --keep DIR the folders stay in DIR/sscd
and DIR/dino, with DIR/<name>_reference.txt (an input and its expected output) for the C++ test
(tests/export/exported_folder_test.cc). Exit 0 = pass, 1 = fail, 77 = torch(vision) missing.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

try:
    import torch
    import torch.nn.functional as F
    import torchvision
    from torch import nn
except ImportError as e:
    print("SKIP: %s (python3-torch and python3-torchvision are needed)" % e)
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
EXPORT_DIR = os.path.join(os.path.dirname(os.path.dirname(HERE)), "tools", "export")
sys.path.insert(0, EXPORT_DIR)
sys.path.insert(0, HERE)
import export_common as ec  # noqa: E402
import export_dino  # noqa: E402
import export_sscd  # noqa: E402
from test_slip_export import write_reference  # noqa: E402

SSCD_SIZE = 64  # small, for speed; the exporter's default is SSCD's 320


class GeM(nn.Module):
    """SSCD's GlobalGeMPool2d."""

    def __init__(self, p=3.0, eps=1e-6):
        super().__init__()
        self.p, self.eps = p, eps

    def forward(self, x):
        return F.avg_pool2d(x.clamp(min=self.eps).pow(self.p), x.shape[-2:]).pow(1.0 / self.p)


class SscdModel(nn.Module):
    """sscd/models/model.py's Model("CV_RESNET50", 512, 3.0): a ResNet-50 whose avgpool is GeM
    and whose fc gives the 512-d descriptor, then L2Norm."""

    def __init__(self):
        super().__init__()
        self.backbone = torchvision.models.resnet50(num_classes=512)
        self.backbone.avgpool = GeM(3.0)

    def forward(self, x):
        return F.normalize(self.backbone(x), dim=1)


# DINO: vit_tiny's width and heads (192, 3), 2 blocks, patch 8 on 32 px (a 4 x 4 grid).
PATCH, WIDTH, DEPTH, HEADS, IMAGE = 8, 192, 2, 3, 32


def tiny_dino_state(seed):
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=0.2):
        return torch.randn(*shape, generator=g) * scale

    grid = IMAGE // PATCH
    s = {"patch_embed.proj.weight": r(WIDTH, 3, PATCH, PATCH), "patch_embed.proj.bias": r(WIDTH),
         "cls_token": r(1, 1, WIDTH), "pos_embed": r(1, grid * grid + 1, WIDTH),
         "norm.weight": 1 + r(WIDTH), "norm.bias": r(WIDTH)}
    for i in range(DEPTH):
        p = "blocks.%d." % i
        s.update({p + "norm1.weight": 1 + r(WIDTH), p + "norm1.bias": r(WIDTH),
                  p + "attn.qkv.weight": r(3 * WIDTH, WIDTH, scale=0.05),
                  p + "attn.qkv.bias": r(3 * WIDTH),
                  p + "attn.proj.weight": r(WIDTH, WIDTH, scale=0.05),
                  p + "attn.proj.bias": r(WIDTH),
                  p + "norm2.weight": 1 + r(WIDTH), p + "norm2.bias": r(WIDTH),
                  p + "mlp.fc1.weight": r(4 * WIDTH, WIDTH, scale=0.05),
                  p + "mlp.fc1.bias": r(4 * WIDTH),
                  p + "mlp.fc2.weight": r(WIDTH, 4 * WIDTH, scale=0.05),
                  p + "mlp.fc2.bias": r(WIDTH)})
    return s


def dino_reference(state, x, heads, pooling):
    """DINO's VisionTransformer.forward / get_intermediate_layers and its copy-detection
    descriptor, op by op (position embedding interpolated at run time, as DINO does)."""
    b, _, h_px, w_px = x.shape
    t = F.conv2d(x, state["patch_embed.proj.weight"], state["patch_embed.proj.bias"],
                 stride=PATCH).flatten(2).transpose(1, 2)
    t = torch.cat([state["cls_token"].expand(b, -1, -1), t], dim=1)
    pos = state["pos_embed"]
    n = pos.shape[1] - 1
    if t.shape[1] - 1 != n:
        w0, h0 = w_px // PATCH + 0.1, h_px // PATCH + 0.1
        patch_pos = F.interpolate(
            pos[:, 1:].reshape(1, int(math.sqrt(n)), int(math.sqrt(n)), WIDTH).permute(0, 3, 1, 2),
            scale_factor=(w0 / math.sqrt(n), h0 / math.sqrt(n)), mode="bicubic")
        pos = torch.cat([pos[:, :1], patch_pos.permute(0, 2, 3, 1).view(1, -1, WIDTH)], dim=1)
    t = t + pos
    c, d = WIDTH, WIDTH // heads
    for i in range(DEPTH):
        p = "blocks.%d." % i
        y = F.layer_norm(t, (c,), state[p + "norm1.weight"], state[p + "norm1.bias"], 1e-6)
        qkv = F.linear(y, state[p + "attn.qkv.weight"], state[p + "attn.qkv.bias"])
        qkv = qkv.reshape(b, t.shape[1], 3, heads, d).permute(2, 0, 3, 1, 4)
        attn = (qkv[0] @ qkv[1].transpose(-2, -1) * d ** -0.5).softmax(dim=-1)
        y = (attn @ qkv[2]).transpose(1, 2).reshape(b, t.shape[1], c)
        t = t + F.linear(y, state[p + "attn.proj.weight"], state[p + "attn.proj.bias"])
        y = F.layer_norm(t, (c,), state[p + "norm2.weight"], state[p + "norm2.bias"], 1e-6)
        y = F.linear(F.gelu(F.linear(y, state[p + "mlp.fc1.weight"], state[p + "mlp.fc1.bias"])),
                     state[p + "mlp.fc2.weight"], state[p + "mlp.fc2.bias"])
        t = t + y
    t = F.layer_norm(t, (c,), state["norm.weight"], state["norm.bias"], 1e-6)
    cls = t[:, 0]
    if pooling == "cls":
        return cls
    hh, ww = h_px // PATCH, w_px // PATCH  # eval_copy_detection.py's GeM, p = 4
    feats = t[:, 1:].reshape(b, hh, ww, c).clamp(min=1e-6).permute(0, 3, 1, 2)
    feats = F.avg_pool2d(feats.pow(4), (hh, ww)).pow(1.0 / 4).reshape(b, -1)
    return torch.cat([cls, feats], dim=1)


def run_cli(script, *args):
    return subprocess.run([sys.executable, os.path.join(EXPORT_DIR, script)] + list(args),
                          capture_output=True, text=True)


def read_manifest(folder):
    with open(os.path.join(folder, "manifest.json")) as f:
        return json.load(f)


class BaselineExportTest(unittest.TestCase):
    keep_dir = None

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_sscd_torchscript_exports_and_keeps_its_descriptor(self):
        torch.manual_seed(0)
        model = SscdModel().eval()
        published = os.path.join(self.dir, "sscd_disc_mixup.torchscript.pt")
        torch.jit.save(torch.jit.script(model), published)
        out = os.path.join(self.keep_dir or self.dir, "sscd")
        r = run_cli("export_sscd.py", "--torchscript", published, "--out", out,
                    "--image-size", str(SSCD_SIZE))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("D 512", r.stdout)
        m = read_manifest(out)
        self.assertEqual((m["kind"], m["embedding_dim"]), ("IMAGE_ENCODER", 512))
        self.assertEqual(m["image"], {"size": SSCD_SIZE, "resize_mode": "STRETCH",
                                      "interpolation": "BILINEAR", "mean": ec.IMAGENET_MEAN,
                                      "std": ec.IMAGENET_STD})
        x = torch.randn(2, 3, SSCD_SIZE, SSCD_SIZE, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            want = model(x)  # the eager module, not the file the exporter read
            got = torch.jit.load(os.path.join(out, "model.pt")).encode_image(x)
        self.assertLess((got - want).abs().max().item(), 1e-4)
        self.assertAlmostEqual(got[0].norm().item(), 1.0, places=4)  # SSCD's L2Norm kept
        self.assertGreater((got[0] - got[1]).abs().max().item(), 1e-3)
        if self.keep_dir:
            write_reference(os.path.join(self.keep_dir, "sscd_reference.txt"), x, want)

        # The manifest's default size is SSCD's skew transform, 320.
        self.assertIn("default 320", run_cli("export_sscd.py", "--help").stdout)

    def test_sscd_bad_inputs_fail_with_a_clear_message(self):
        def fails(path, *flags):
            with self.assertRaises(ec.ExportError) as caught:
                export_sscd.main(["--torchscript", path, "--out", self.dir + "/o"] + list(flags))
            return str(caught.exception)

        self.assertIn("TorchScript file not found", fails(self.dir + "/nope.pt"))
        pickle = os.path.join(self.dir, "state.pth")
        torch.save({"w": torch.zeros(2)}, pickle)
        self.assertIn("is not a TorchScript file", fails(pickle))

        class Pooled(nn.Module):  # a descriptor left as [B, D, 1]
            def forward(self, x):
                return x.mean(dim=(2, 3)).unsqueeze(-1)

        odd = os.path.join(self.dir, "odd.pt")
        torch.jit.save(torch.jit.script(Pooled()), odd)
        self.assertIn("the contract needs [B, D]", fails(odd))
        self.assertIn("too small", fails(odd, "--image-size", "8"))

    def test_dino_backbone_cls_at_its_own_size(self):
        state = tiny_dino_state(seed=1)
        ckpt = os.path.join(self.dir, "dino_vittiny8_pretrain.pth")
        torch.save(state, ckpt)  # DINO's backbone files are bare state dicts
        out, info = export_dino.export(ckpt, os.path.join(self.dir, "cls"), pooling="cls",
                                       image_size=IMAGE, resize="center-crop", log=lambda s: None)
        self.assertEqual((info["heads"], info["embedding_dim"]), (HEADS, WIDTH))
        m = read_manifest(out)
        self.assertEqual(m["image"]["resize_mode"], "SHORTEST_SIDE_CENTER_CROP")
        self.assertEqual(m["image"]["interpolation"], "BICUBIC")
        x = torch.randn(3, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            got = torch.jit.load(os.path.join(out, "model.pt")).encode_image(x)
            self.assertLess((got - dino_reference(state, x, HEADS, "cls")).abs().max().item(),
                            1e-4)
            # The head split matters: DINO's vit_tiny has 3 heads, not SLIP's 12.
            self.assertGreater((got - dino_reference(state, x, 12, "cls")).abs().max().item(),
                               1e-3)

    def test_dino_full_checkpoint_copy_detection_descriptor_at_another_size(self):
        state = tiny_dino_state(seed=3)
        teacher = {"backbone." + k: v for k, v in state.items()}
        teacher["head.mlp.0.weight"] = torch.zeros(8, WIDTH)  # DINO's projection head: dropped
        student = {"module.backbone." + k: torch.zeros_like(v) for k, v in state.items()}
        ckpt = os.path.join(self.dir, "checkpoint.pth")
        torch.save({"teacher": teacher, "student": student, "epoch": 3}, ckpt)
        size = 48  # a 6 x 6 grid from the 4 x 4 one: the position embedding is interpolated
        out = os.path.join(self.keep_dir or self.dir, "dino")
        r = run_cli("export_dino.py", "--checkpoint", ckpt, "--out", out, "--image-size",
                    str(size))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("heads 3, cls-gem, image 48, D 384", r.stdout)
        m = read_manifest(out)
        self.assertEqual(m["image"], {"size": size, "resize_mode": "STRETCH",
                                      "interpolation": "BICUBIC", "mean": ec.IMAGENET_MEAN,
                                      "std": ec.IMAGENET_STD})
        x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(4))
        with torch.no_grad():
            want = dino_reference(state, x, HEADS, "cls-gem")
            got = torch.jit.load(os.path.join(out, "model.pt")).encode_image(x)
        self.assertEqual(tuple(got.shape), (2, 2 * WIDTH))
        self.assertLess((got - want).abs().max().item(), 1e-4)
        if self.keep_dir:
            write_reference(os.path.join(self.keep_dir, "dino_reference.txt"), x, want)

    def test_dino_bad_inputs_fail_with_a_clear_message(self):
        def fails(ckpt, *flags):
            with self.assertRaises(ec.ExportError) as caught:
                export_dino.main(["--checkpoint", ckpt, "--out", self.dir + "/o"] + list(flags))
            return str(caught.exception)

        self.assertIn("checkpoint not found", fails(self.dir + "/nope.pth"))
        ckpt = os.path.join(self.dir, "c.pth")
        torch.save({"student": {"module.backbone.cls_token": torch.zeros(1)}}, ckpt)
        self.assertIn("no 'teacher' network", fails(ckpt))
        torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(2, 2)},
                   ckpt)
        self.assertIn("is a ResNet checkpoint", fails(ckpt))
        state = tiny_dino_state(seed=5)
        torch.save(state, ckpt)
        self.assertIn("not a multiple of the patch size 8", fails(ckpt, "--image-size", "36"))
        state["fc_norm.weight"] = torch.ones(WIDTH)  # a ViT variant DINO does not have
        torch.save(state, ckpt)
        self.assertIn("fc_norm", fails(ckpt))

    def test_help(self):
        for script, flag in (("export_dino.py", "--pooling"), ("export_sscd.py", "--torchscript")):
            r = run_cli(script, "--help")
            self.assertEqual(r.returncode, 0, script)
            self.assertIn(flag, r.stdout)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", default=None, help="leave the folders + references here")
    args, rest = parser.parse_known_args()
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        BaselineExportTest.keep_dir = os.path.abspath(args.keep)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
