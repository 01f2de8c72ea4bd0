#!/usr/bin/python3
"""Tests of tools/export/export_slip.py on a tiny random checkpoint in SLIP's layout.

    test_slip_export.py [--keep DIR]

The checkpoint mimics what facebookresearch/SLIP's main.py saves: {'state_dict': {'module.visual.
...': ..., 'module.image_projection': ..., text tower, image_mlp, logit_scale}, 'args': Namespace}.
The expected embeddings come from reference_vit() below, written from timm's ViT semantics
independently of the exporter's modules. With --keep DIR the exported folder is left in DIR/slip
and DIR/slip_reference.txt holds an input and its expected output for the C++ test
(tests/export/exported_folder_test.cc). Exit 0 = pass, 1 = fail, 77 = torch missing.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import unittest

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("SKIP: python3-torch is not installed (needed to export models)")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
EXPORT_DIR = os.path.join(os.path.dirname(os.path.dirname(HERE)), "tools", "export")
sys.path.insert(0, EXPORT_DIR)
import export_common as ec  # noqa: E402
import export_slip  # noqa: E402

PATCH, WIDTH, DEPTH, HEADS, IMAGE, EMBED = 8, 48, 2, 4, 32, 24


def tiny_slip_state(seed, width=WIDTH, qkv_bias=True):
    """A SLIP_VIT-layout state dict (timm key names), random weights, no 'module.' prefix."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=0.2):
        return torch.randn(*shape, generator=g) * scale

    grid = IMAGE // PATCH
    s = {"visual.patch_embed.proj.weight": r(width, 3, PATCH, PATCH),
         "visual.patch_embed.proj.bias": r(width),
         "visual.cls_token": r(1, 1, width), "visual.pos_embed": r(1, grid * grid + 1, width),
         "visual.norm.weight": 1 + r(width), "visual.norm.bias": r(width)}
    for i in range(DEPTH):
        p = "visual.blocks.%d." % i
        s.update({p + "norm1.weight": 1 + r(width), p + "norm1.bias": r(width),
                  p + "attn.qkv.weight": r(3 * width, width), p + "attn.proj.weight": r(width, width),
                  p + "attn.proj.bias": r(width),
                  p + "norm2.weight": 1 + r(width), p + "norm2.bias": r(width),
                  p + "mlp.fc1.weight": r(4 * width, width), p + "mlp.fc1.bias": r(4 * width),
                  p + "mlp.fc2.weight": r(width, 4 * width), p + "mlp.fc2.bias": r(width)})
        if qkv_bias:
            s[p + "attn.qkv.bias"] = r(3 * width)
    s["image_projection"] = r(width, EMBED)
    # The rest of a SLIP checkpoint, which the exporter must ignore.
    s.update({"token_embedding.weight": r(100, 16), "positional_embedding": r(77, 16),
              "text_projection": r(16, EMBED), "logit_scale": torch.tensor(2.0),
              "image_mlp.layer1.weight": r(32, width), "image_mlp.bn1.running_mean": r(32)})
    return s


def save_checkpoint(path, state, model="SLIP_TINY", ddp=True, **args):
    prefix = "module." if ddp else ""
    torch.save({"epoch": 1, "args": argparse.Namespace(model=model, ssl_mlp_dim=32, **args),
                "state_dict": {prefix + k: v for k, v in state.items()}}, path)


def reference_vit(state, x, heads):
    """timm ViT(num_classes=0) + SLIP's image_projection, written out op by op."""
    v = lambda k: state["visual." + k]  # noqa: E731
    t = F.conv2d(x, v("patch_embed.proj.weight"), v("patch_embed.proj.bias"), stride=PATCH)
    t = t.flatten(2).transpose(1, 2)
    t = torch.cat([v("cls_token").expand(x.shape[0], 1, -1), t], 1) + v("pos_embed")
    b, n, c = t.shape
    d = c // heads
    for i in range(DEPTH):
        p = "blocks.%d." % i
        h = F.layer_norm(t, (c,), v(p + "norm1.weight"), v(p + "norm1.bias"), 1e-6)
        qkv = F.linear(h, v(p + "attn.qkv.weight"), state.get("visual." + p + "attn.qkv.bias"))
        qkv = qkv.reshape(b, n, 3, heads, d)  # timm's order: (q|k|v) then heads
        out = torch.zeros(b, n, c)
        for head in range(heads):
            q, k, val = qkv[:, :, 0, head], qkv[:, :, 1, head], qkv[:, :, 2, head]
            att = torch.softmax(q @ k.transpose(1, 2) / d ** 0.5, dim=-1)
            out[:, :, head * d:(head + 1) * d] = att @ val
        t = t + F.linear(out, v(p + "attn.proj.weight"), v(p + "attn.proj.bias"))
        h = F.layer_norm(t, (c,), v(p + "norm2.weight"), v(p + "norm2.bias"), 1e-6)
        h = F.gelu(F.linear(h, v(p + "mlp.fc1.weight"), v(p + "mlp.fc1.bias")))
        t = t + F.linear(h, v(p + "mlp.fc2.weight"), v(p + "mlp.fc2.bias"))
    t = F.layer_norm(t, (c,), v("norm.weight"), v("norm.bias"), 1e-6)
    return t[:, 0] @ state["image_projection"]


def run_cli(*args):
    return subprocess.run([sys.executable, os.path.join(EXPORT_DIR, "export_slip.py")] +
                          list(args), capture_output=True, text=True)


class SlipExportTest(unittest.TestCase):
    keep_dir = None

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_cli_exports_a_folder_that_matches_the_reference_vit(self):
        state = tiny_slip_state(seed=1)
        ckpt = os.path.join(self.dir, "slip_tiny.pt")
        save_checkpoint(ckpt, state)
        out = os.path.join(self.keep_dir or self.dir, "slip")
        r = run_cli("--checkpoint", ckpt, "--out", out, "--heads", str(HEADS))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("verified encode_image([3, 3, 32, 32])", r.stdout)

        with open(os.path.join(out, "manifest.json")) as f:
            m = json.load(f)
        self.assertEqual(m["kind"], "IMAGE_ENCODER")
        self.assertEqual(m["embedding_dim"], EMBED)
        self.assertEqual(m["image"], {"size": IMAGE, "resize_mode": "SHORTEST_SIDE_CENTER_CROP",
                                      "interpolation": "BILINEAR", "mean": ec.IMAGENET_MEAN,
                                      "std": ec.IMAGENET_STD})

        model = torch.jit.load(os.path.join(out, "model.pt"))
        x = torch.rand(2, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(5))
        x = (x - 0.45) / 0.25
        with torch.no_grad():
            got = model.encode_image(x)
            want = reference_vit(state, x, HEADS)
        self.assertEqual(tuple(got.shape), (2, EMBED))
        self.assertLess((got - want).abs().max().item(), 1e-4)
        # Images differ, so embeddings must: guards against a constant (e.g. broken) encoder.
        self.assertGreater((got[0] - got[1]).abs().max().item(), 1e-2)
        if self.keep_dir:
            write_reference(os.path.join(self.keep_dir, "slip_reference.txt"), x, want)

    def test_heads_come_from_the_checkpoint_args_and_wrong_heads_change_the_output(self):
        state = tiny_slip_state(seed=2, qkv_bias=False)  # qkv_bias=False: a variant timm allows
        ckpt = os.path.join(self.dir, "slip_l.pt")
        save_checkpoint(ckpt, state, model="SLIP_VITL16", ddp=False)
        out, info = export_slip.export(ckpt, os.path.join(self.dir, "l"), log=lambda s: None)
        self.assertEqual(info["heads"], 16)
        model = torch.jit.load(os.path.join(out, "model.pt"))
        x = torch.randn(1, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            got = model.encode_image(x)
            self.assertLess((got - reference_vit(state, x, 16)).abs().max().item(), 1e-4)
            # The head split matters: the reference with another head count differs.
            self.assertGreater((got - reference_vit(state, x, 4)).abs().max().item(), 1e-3)

    def test_heads_recorded_in_the_checkpoint_args_are_used(self):
        # tools/train writes args.heads: its small ViTs have sizes no model name tells.
        state = tiny_slip_state(seed=4)
        ckpt = os.path.join(self.dir, "trained.pt")
        save_checkpoint(ckpt, state, model="CSSLIP_TINY", ddp=False, heads=HEADS)
        out, info = export_slip.export(ckpt, os.path.join(self.dir, "t"), log=lambda s: None)
        self.assertEqual(info["heads"], HEADS)
        model = torch.jit.load(os.path.join(out, "model.pt"))
        x = torch.randn(2, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(4))
        with torch.no_grad():
            self.assertLess((model.encode_image(x) - reference_vit(state, x, HEADS)).abs().max()
                            .item(), 1e-4)

    def test_bad_inputs_fail_with_a_clear_message(self):
        r = run_cli("--checkpoint", os.path.join(self.dir, "nope.pt"), "--out", self.dir + "/o")
        self.assertEqual(r.returncode, 1)
        self.assertIn("checkpoint not found", r.stderr)

        def export_fails(ckpt, *flags):  # in-process: one torch import, not one per case
            with self.assertRaises(ec.ExportError) as caught:
                export_slip.main(["--checkpoint", ckpt, "--out", self.dir + "/o"] + list(flags))
            return str(caught.exception)

        state = tiny_slip_state(seed=3)
        del state["image_projection"]
        ckpt = os.path.join(self.dir, "simclr.pt")
        save_checkpoint(ckpt, state)
        self.assertIn("no 'image_projection'", export_fails(ckpt, "--heads", "4"))

        state = tiny_slip_state(seed=3)
        state["visual.fc_norm.weight"] = torch.ones(WIDTH)  # a ViT variant we do not implement
        save_checkpoint(ckpt, state)
        self.assertIn("fc_norm", export_fails(ckpt, "--heads", "4"))

        save_checkpoint(ckpt, tiny_slip_state(seed=3), model="SOMETHING_ELSE")
        self.assertIn("pass --heads", export_fails(ckpt))  # width 48: heads unknown

        os.makedirs(self.dir + "/o")
        open(self.dir + "/o/precious.txt", "w").close()
        self.assertIn("refusing to write", export_fails(ckpt, "--heads", "4"))

    def test_help(self):
        r = run_cli("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--checkpoint", r.stdout)


def write_reference(path, x, y):
    """Plain text: 'input <shape>' + values, 'output <shape>' + values (%.9g round-trips)."""
    with open(path, "w") as f:
        for label, t in (("input", x), ("output", y)):
            f.write("%s %s\n" % (label, " ".join(str(s) for s in t.shape)))
            f.write(" ".join("%.9g" % v for v in t.flatten().tolist()) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", default=None, help="leave the folder + reference here")
    args, rest = parser.parse_known_args()
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        SlipExportTest.keep_dir = os.path.abspath(args.keep)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
