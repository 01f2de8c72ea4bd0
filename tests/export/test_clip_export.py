#!/usr/bin/python3
"""Tests of tools/export/export_clip.py.

    test_clip_export.py --part generic     # runs anywhere torch is (a fixture CLIP stands in)
    test_clip_export.py --part open_clip   # needs open_clip_torch (+ torchvision); else exit 77
    test_clip_export.py --part hf          # needs transformers; else exit 77

generic: the tracing, verification, padding check and manifest of export() on the fixtures'
DemoClip (open_clip-style methods); a model that pools at the wrong position must be refused.
open_clip / hf: a tiny randomly initialised model of the real architecture is written to disk
the way the real checkpoints are, exported through the command line, and the folder's outputs
are compared with the library's on retrace-style token rows (0 after the end token) and on the
library's own padding. Exit 0 = pass, 1 = fail, 77 = a needed library is missing.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

try:
    import torch
except ImportError:
    print("SKIP: python3-torch is not installed")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
EXPORT_DIR = os.path.join(REPO, "tools", "export")
sys.path.insert(0, EXPORT_DIR)
sys.path.insert(0, os.path.join(REPO, "tools", "fixtures"))
import demo_models  # noqa: E402
import export_clip  # noqa: E402
import export_common as ec  # noqa: E402
import fixture_common as fc  # noqa: E402

SHARED = fc.default_shared_data()
BPE = os.path.join(SHARED, fc.CLIP_VOCAB_REL)


def run_cli(*args):
    return subprocess.run([sys.executable, os.path.join(EXPORT_DIR, "export_clip.py")] +
                          list(args), capture_output=True, text=True)


def retrace_rows(batch, seed):
    return ec.random_clip_tokens(batch, 77, 49408, torch.Generator().manual_seed(seed))


def end_padded(rows):
    """The same rows padded the Hugging Face way: 49407 after the end token instead of 0."""
    ends = (rows == ec.CLIP_END).long()
    after = (torch.cumsum(ends, 1) - ends) > 0
    return torch.where(after, torch.full_like(rows, ec.CLIP_END), rows)


class LastPositionClip(demo_models.DemoClip):
    """Pools at the last position instead of the end token: what the export must refuse."""

    def encode_text(self, tokens):
        x = self.token_embedding(tokens % self.buckets) + self.positional[:tokens.size(1)]
        return self.ln_final(x)[:, -1] @ self.text_projection


@unittest.skipUnless(os.path.exists(BPE), "shared data (CLIP BPE file) not found at " + BPE)
class GenericExportTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.image = ec.image_spec(64, "SHORTEST_SIDE_CENTER_CROP", "BICUBIC", ec.CLIP_MEAN,
                                   ec.CLIP_STD)

    def tearDown(self):
        self.tmp.cleanup()

    def test_export_writes_a_verified_clip_folder(self):
        torch.manual_seed(0)
        model = demo_models.DemoClip(image_size=64, dim=24).eval()
        out = os.path.join(self.tmp.name, "clip")
        lines = []
        export_clip.export(export_clip.ClipMethods(model, "open_clip"), self.image, BPE, 77, out,
                           "tiny", "v1", log=lines.append)
        self.assertTrue(any("ignores ids after the end token" in s for s in lines), lines)
        with open(os.path.join(out, "manifest.json")) as f:
            m = json.load(f)
        self.assertEqual((m["kind"], m["embedding_dim"]), ("CLIP", 24))
        self.assertEqual(m["tokenizer"], {"kind": "CLIP_BPE", "vocab_file": os.path.basename(BPE),
                                          "context_length": 77})
        self.assertTrue(os.path.isfile(os.path.join(out, os.path.basename(BPE))))
        loaded = torch.jit.load(os.path.join(out, "model.pt"))
        rows = retrace_rows(5, seed=9)  # batch 5: traced at 2
        with torch.no_grad():
            got, want = loaded.encode_text(rows), model.encode_text(rows)
            self.assertLess((got - want).abs().max().item(), 1e-5)
            self.assertGreater((got[0] - got[1]).abs().max().item(), 1e-3)

    def test_wrong_pooling_is_refused(self):
        torch.manual_seed(0)
        model = LastPositionClip(image_size=64, dim=24).eval()
        with self.assertRaises(ec.ExportError) as caught:
            export_clip.export(export_clip.ClipMethods(model, "open_clip"), self.image, BPE, 77,
                               os.path.join(self.tmp.name, "bad"), "bad", "v1", log=lambda s: 0)
        self.assertIn("other ids after the end token", str(caught.exception))

    def test_command_line_errors(self):
        r = run_cli("--open-clip", "ViT-H-14", "--out", self.tmp.name + "/o")
        self.assertEqual(r.returncode, 1)
        self.assertIn("needs --pretrained", r.stderr)
        r = run_cli("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("--hf-dir", r.stdout)


class OpenClipTest(unittest.TestCase):
    """A tiny open_clip ViT from a custom config, saved as a weights file, exported via the CLI."""

    def test_tiny_open_clip_model(self):
        import open_clip
        with tempfile.TemporaryDirectory() as d:
            cfg = {"embed_dim": 16,
                   "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32,
                                  "patch_size": 8},
                   "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32,
                                "heads": 4, "layers": 2}}
            os.makedirs(os.path.join(d, "cfg"))
            with open(os.path.join(d, "cfg", "retrace-tiny.json"), "w") as f:
                json.dump(cfg, f)
            open_clip.add_model_config(os.path.join(d, "cfg"))
            torch.manual_seed(0)
            model = open_clip.create_model("retrace-tiny").eval()
            weights = os.path.join(d, "tiny.bin")
            torch.save(model.state_dict(), weights)
            # The CLI runs in another process: it must find the config the same way.
            code = ("import sys, open_clip; open_clip.add_model_config(%r); sys.argv = %r; "
                    "sys.path.insert(0, %r); import export_clip, export_common as ec; "
                    "ec.run_main(export_clip.main)"
                    % (os.path.join(d, "cfg"), ["export_clip.py", "--open-clip", "retrace-tiny",
                                                "--pretrained", weights, "--out", d + "/clip"],
                       EXPORT_DIR))
            r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(d, "clip", "manifest.json")) as f:
                m = json.load(f)
            self.assertEqual(m["embedding_dim"], 16)
            self.assertEqual(m["image"]["resize_mode"], "SHORTEST_SIDE_CENTER_CROP")
            self.assertEqual(m["image"]["interpolation"], "BICUBIC")
            loaded = torch.jit.load(os.path.join(d, "clip", "model.pt"))
            tokenizer = open_clip.get_tokenizer("retrace-tiny")
            ids = tokenizer(["a photo of a dog", "a sketch of a horse"])
            x = torch.randn(3, 3, 32, 32)
            with torch.no_grad():
                self.assertLess((loaded.encode_text(ids) - model.encode_text(ids)).abs().max(),
                                1e-4)
                self.assertLess((loaded.encode_image(x) - model.encode_image(x)).abs().max(),
                                1e-4)


class HfClipTest(unittest.TestCase):
    """A tiny transformers CLIPModel saved with save_pretrained, exported via the CLI."""

    def test_tiny_hf_model(self):
        import transformers
        if not os.path.exists(BPE):
            self.skipTest("shared data (CLIP BPE file) not found at " + BPE)
        cfg = transformers.CLIPConfig(
            text_config=dict(vocab_size=49408, hidden_size=32, intermediate_size=64,
                             num_hidden_layers=2, num_attention_heads=4,
                             max_position_embeddings=77, bos_token_id=49406,
                             eos_token_id=49407, pad_token_id=1),
            vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64,
                               num_hidden_layers=2, num_attention_heads=4),
            projection_dim=16)
        torch.manual_seed(0)
        model = transformers.CLIPModel(cfg).eval()
        with tempfile.TemporaryDirectory() as d:
            hf = os.path.join(d, "hf")
            model.save_pretrained(hf)
            with open(os.path.join(hf, "preprocessor_config.json"), "w") as f:
                json.dump({"crop_size": {"height": 32, "width": 32}, "do_center_crop": True,
                           "size": {"shortest_edge": 32}, "resample": 3,
                           "image_mean": ec.CLIP_MEAN, "image_std": ec.CLIP_STD}, f)
            shutil.copyfile(BPE, os.path.join(d, os.path.basename(BPE)))
            r = run_cli("--hf-dir", hf, "--bpe-file", os.path.join(d, os.path.basename(BPE)),
                        "--out", d + "/clip")
            self.assertEqual(r.returncode, 0, r.stderr)
            loaded = torch.jit.load(os.path.join(d, "clip", "model.pt"))
            rows = retrace_rows(3, seed=4)
            with torch.no_grad():
                want = model.get_text_features(input_ids=end_padded(rows))  # HF's own padding
                self.assertLess((loaded.encode_text(rows) - want).abs().max().item(), 1e-4)
                x = torch.randn(2, 3, 32, 32)
                self.assertLess((loaded.encode_image(x) -
                                 model.get_image_features(pixel_values=x)).abs().max().item(), 1e-4)


PARTS = {"generic": (GenericExportTest, None), "open_clip": (OpenClipTest, "open_clip"),
         "hf": (HfClipTest, "transformers")}

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=sorted(PARTS), default="generic")
    args = parser.parse_args()
    case, library = PARTS[args.part]
    if library:
        try:
            __import__(library)
        except ImportError:
            print("SKIP: the Python package '%s' is not installed; this test runs where it is "
                  "(see tools/export/README.md)" % library)
            sys.exit(77)
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(case)
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    sys.exit(0 if result.wasSuccessful() else 1)
