#!/usr/bin/python3
"""Tests of tools/train (the CS-SLIP recipe) on a tiny model and a tiny image set.

    test_train.py [--keep DIR]

The set: the fixtures' synthetic images (4 domains x 8 classes x 2), captions "a <domain> of a
<class>" with a random unit caption embedding per caption, and pairs whose partner is the same
class in the next domain (plus an item without a partner and an error line, as the miner writes
them). Checks: with a fixed seed, each loss (clip, ssl, cs) is lower over the last steps than
over the first; a run stopped and resumed ends with the same weights and log as an uninterrupted
one; --cs-weight 0 skips the branch; the checkpoint exports with tools/export/export_slip.py
unchanged and the exported model computes the trained embedding; bad input fails naming the
option or file. With --keep DIR the data and an exported folder stay in DIR.
Exit 0 = pass, 1 = fail, 77 = torch or torchvision missing.
"""

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import unittest

try:
    import numpy as np
    import torch
    import torchvision  # noqa: F401
except ImportError as e:
    print("SKIP: %s (python3-torch and python3-torchvision are needed to train)" % e)
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TRAIN_DIR = os.path.join(REPO, "tools", "train")
for sub in ("train", "export", "fixtures"):
    sys.path.insert(0, os.path.join(REPO, "tools", sub))
import cs_slip  # noqa: E402
import export_slip  # noqa: E402
import fixture_common as fc  # noqa: E402
import make_images  # noqa: E402
import mined_data  # noqa: E402
import train_cs_slip  # noqa: E402

EMBED = 16
# Tiny, fast settings: the tiny ViT (32 px, width 48, 2 blocks) and a small SimCLR head. One
# thread: on a shared 2-core machine, idle OpenMP threads spinning made steps ~30x slower.
TINY = ["--model", "tiny", "--ssl-mlp-dim", "64", "--ssl-emb-dim", "32", "--log-every", "0",
        "--threads", "1"]


def make_set(folder):
    """Images, pairs and embeddings under folder; returns (images, pairs, embeddings) paths."""
    images = os.path.join(folder, "images")
    written = make_images.write_images(images, per_class=2, size=48, seed=3)
    rng = np.random.default_rng(0)
    caption_vectors = {}
    ids, rows, pairs = [], [], []
    by_key = {}
    for path, domain, ci in written:
        item_id = os.path.relpath(path, images).replace(os.sep, "/")
        caption = "a %s of a %s" % (domain, fc.CLASSES[ci])
        if caption not in caption_vectors:
            v = rng.standard_normal(EMBED)
            caption_vectors[caption] = v / np.linalg.norm(v)
        ids.append(item_id)
        rows.append(caption_vectors[caption])
        by_key.setdefault((domain, ci), []).append(item_id)
        pairs.append({"id": item_id, "caption": caption})
    for pair, (path, domain, ci) in zip(pairs, written):
        # The other image with the same caption, as the miner pairs identical captions.
        partner = [i for i in by_key[(domain, ci)] if i != pair["id"]][0]
        pair.update(nearest=partner, nearest_caption=pair["caption"], similarity=1.0)
    pairs[5].update(nearest=None, nearest_caption=None, similarity=None)
    pairs.append({"id": "not/stored.png", "error": "NOT_FOUND: not stored"})
    pairs_path = os.path.join(folder, "pairs.jsonl")
    embeddings_path = os.path.join(folder, "captions.emb")
    mined_data.write_pairs(pairs_path, pairs)
    mined_data.write_caption_embeddings(embeddings_path, ids, np.stack(rows))
    return images, pairs_path, embeddings_path


class Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_train(data, out, *flags, subprocess_run=False):
    """train_cs_slip.py with these flags: in this process (one torch import for the whole test),
    or as the script itself with subprocess_run."""
    images, pairs, embeddings = data
    argv = ["--images", images, "--pairs", pairs, "--embeddings", embeddings,
            "--out", out] + TINY + list(flags)
    if subprocess_run:
        r = subprocess.run([sys.executable, os.path.join(TRAIN_DIR, "train_cs_slip.py")] + argv,
                           capture_output=True, text=True)
        return Result(r.returncode, r.stdout, r.stderr)
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = train_cs_slip.main(argv)
    return Result(code, stdout.getvalue(), stderr.getvalue())


def read_log(out):
    with open(os.path.join(out, "log.jsonl")) as f:
        return [json.loads(line) for line in f]


class TrainTest(unittest.TestCase):
    keep_dir = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = cls.keep_dir or cls.tmp.name
        cls.data = make_set(os.path.join(cls.dir, "data"))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def out(self, name):
        return os.path.join(self.dir, "runs", name)

    def test_each_loss_decreases_and_the_checkpoint_exports(self):
        out = self.out("decrease")
        r = run_train(self.data, out, "--steps", "100", "--batch-size", "16", "--lr", "1e-3",
                      "--warmup-steps", "4", "--seed", "1", subprocess_run=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("64 items (63 with a partner)", r.stdout)
        log = read_log(out)
        self.assertEqual([e["step"] for e in log], list(range(1, 101)))
        # Per-step losses are noisy (16 images, random views): compare the first and last 12.
        # Seed 1 gives clip 4.73 -> 2.56, ssl 2.98 -> 2.66, cs 3.71 -> 3.00 (seeds 2 and 3 alike).
        for loss in ("clip", "ssl", "cs"):
            first = np.mean([e[loss] for e in log[:12]])
            last = np.mean([e[loss] for e in log[-12:]])
            self.assertLess(last, first * 0.95, "%s: first 12 steps %.4f, last 12 %.4f"
                            % (loss, first, last))
        for e in log:
            total = e["clip"] + e["ssl"] + e["cs"]  # the weights are 1
            self.assertAlmostEqual(e["loss"], total, places=4)
        self.assertLess(log[-1]["lr"], log[10]["lr"])  # cosine decay after the warm-up
        self.assertLess(log[0]["lr"], log[3]["lr"])  # the warm-up

        # export_slip.py, unchanged, reads the checkpoint (heads from its args) ...
        exported = os.path.join(self.keep_dir or self.dir, "image_encoder")
        folder, info = export_slip.export(os.path.join(out, "checkpoint.pt"), exported,
                                          log=lambda s: None)
        self.assertEqual((info["width"], info["depth"], info["heads"], info["image_size"],
                          info["embedding_dim"]), (48, 2, 4, 32, EMBED))
        with open(os.path.join(folder, "manifest.json")) as f:
            manifest = json.load(f)
        self.assertEqual(manifest["kind"], "IMAGE_ENCODER")
        self.assertEqual(manifest["image"]["mean"], train_cs_slip.IMAGENET_MEAN)
        # ... and its model computes the trained embedding: class token @ image_projection.
        ckpt = torch.load(os.path.join(out, "checkpoint.pt"))
        model = cs_slip.CsSlip(embed_dim=EMBED, ssl_mlp_dim=64, ssl_emb_dim=32,
                               **cs_slip.MODEL_SIZES["tiny"])
        model.load_state_dict(ckpt["state_dict"])
        model.eval()
        x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            want = model.embed(model.features(x))
            got = torch.jit.load(os.path.join(folder, "model.pt")).encode_image(x)
        self.assertLess((got - want).abs().max().item(), 1e-4)
        self.assertGreater((want[0] - want[1]).abs().max().item(), 1e-3)  # not constant

    def test_a_resumed_run_equals_an_uninterrupted_one(self):
        straight, stopped = self.out("straight"), self.out("stopped")
        flags = ["--steps", "5", "--batch-size", "8", "--seed", "4"]
        r = run_train(self.data, straight, *flags)
        self.assertEqual(r.returncode, 0, r.stderr)
        # --max-minutes 0 stops after the first step, with a checkpoint.
        r = run_train(self.data, stopped, *flags, "--max-minutes", "0")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("stopped after", r.stdout)
        self.assertEqual(torch.load(os.path.join(stopped, "checkpoint.pt"))["step"], 1)
        r = run_train(self.data, stopped, *flags)
        self.assertEqual(r.returncode, 1)
        self.assertIn("already holds a run", r.stderr)
        r = run_train(self.data, stopped, *flags, "--resume", "--lr", "1e-3")
        self.assertEqual(r.returncode, 1)
        self.assertIn("--resume: lr was 0.0005", r.stderr)
        r = run_train(self.data, stopped, *flags, "--resume")
        self.assertEqual(r.returncode, 0, r.stderr)

        a = torch.load(os.path.join(straight, "checkpoint.pt"))
        b = torch.load(os.path.join(stopped, "checkpoint.pt"))
        self.assertEqual((a["step"], b["step"]), (5, 5))
        for key, value in a["state_dict"].items():
            self.assertTrue(torch.equal(value, b["state_dict"][key]), key)
        strip = lambda log: [{k: v for k, v in e.items() if k != "seconds"} for e in log]  # noqa
        self.assertEqual(strip(read_log(straight)), strip(read_log(stopped)))

    def test_branches_with_weight_zero_are_skipped(self):
        out = self.out("slip")
        r = run_train(self.data, out, "--steps", "2", "--batch-size", "8", "--cs-weight", "0")
        self.assertEqual(r.returncode, 0, r.stderr)
        for e in read_log(out):
            self.assertIsNone(e["cs"])
            self.assertAlmostEqual(e["loss"], e["clip"] + e["ssl"], places=4)
        out = self.out("untrained")
        r = run_train(self.data, out, "--steps", "0")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(torch.load(os.path.join(out, "checkpoint.pt"))["step"], 0)

    def test_bad_input_fails_naming_the_file_or_option(self):
        images, pairs, embeddings = self.data

        def fails(data, *flags):
            r = run_train(data, self.out("bad"), "--steps", "1", "--batch-size", "4", *flags)
            self.assertEqual(r.returncode, 1, r.stdout)
            return r.stderr

        self.assertIn("nope.jsonl", fails((images, pairs + "/nope.jsonl", embeddings)))
        self.assertIn("not a caption-embeddings file", fails((images, pairs, pairs)))
        self.assertIn("--images: ", fails((images + "/photo", pairs, embeddings)))
        few = os.path.join(self.dir, "few.emb")
        mined_data.write_caption_embeddings(few, ["photo/dog/dog_0.png"], np.ones((1, EMBED)))
        self.assertIn("holds no embedding for 63 items", fails((images, pairs, few)))
        self.assertIn("--batch-size 100 is more than the 64 items",
                      fails(self.data, "--batch-size", "100"))
        self.assertIn("--embed-dim 8 differs", fails(self.data, "--embed-dim", "8"))
        self.assertIn("not divisible by 5 heads", fails(self.data, "--heads", "5"))
        self.assertIn("nothing to resume", fails(self.data, "--resume"))
        self.assertIn("all 0", fails(self.data, "--clip-weight", "0", "--ssl-weight", "0",
                                     "--cs-weight", "0"))
        partial = os.path.join(self.dir, "partial.jsonl")
        with open(pairs) as f, open(partial, "w") as g:
            g.write(f.read()[:-3])
        self.assertIn("partial last line", fails((images, partial, embeddings)))

    def test_help(self):
        r = subprocess.run([sys.executable, os.path.join(TRAIN_DIR, "train_cs_slip.py"),
                            "--help"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0)
        self.assertIn("--cs-weight", r.stdout)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", default=None, help="leave the data and exported folder here")
    args, rest = parser.parse_known_args()
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        TrainTest.keep_dir = os.path.abspath(args.keep)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
