#!/usr/bin/python3
"""Test of tools/export/export_blip2.py on a tiny random Blip2ForConditionalGeneration (OPT).

A Blip2Config with tiny vision / Q-Former / OPT sizes (OPT's real 50272-token vocabulary, so the
tokenizer files and the newline EOS are the real ones) is saved with save_pretrained, exported
through the command line (which itself verifies every method against transformers), and the
folder is checked again here: the manifest, logits against Blip2ForConditionalGeneration's
forward, and a greedy decode with prefill/step against one with full recomputes.
Needs transformers (exit 77 without it) and the shared data's OPT tokenizer files.
"""

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
try:
    import transformers
except ImportError:
    print("SKIP: the Python package 'transformers' is not installed; this test runs where it is "
          "(see tools/export/README.md)")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
EXPORT_DIR = os.path.join(REPO, "tools", "export")
sys.path.insert(0, EXPORT_DIR)
sys.path.insert(0, os.path.join(REPO, "tools", "fixtures"))
import export_blip2  # noqa: E402
import export_common as ec  # noqa: E402
import fixture_common as fc  # noqa: E402

SHARED = fc.default_shared_data()
Q, IMAGE = 4, 32


def tiny_blip2():
    cfg = transformers.Blip2Config(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, image_size=IMAGE, patch_size=8),
        qformer_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=64, encoder_hidden_size=32,
                            cross_attention_frequency=1, vocab_size=100),
        text_config=transformers.OPTConfig(
            vocab_size=fc.OPT_VOCAB_SIZE, hidden_size=32, ffn_dim=64, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=64, word_embed_proj_dim=32,
            bos_token_id=2, eos_token_id=2, pad_token_id=1).to_dict(),
        num_query_tokens=Q)
    torch.manual_seed(0)
    return transformers.Blip2ForConditionalGeneration(cfg).eval()


@unittest.skipUnless(os.path.exists(os.path.join(SHARED, fc.OPT_VOCAB_REL)),
                     "shared data (OPT vocabulary) not found at " + SHARED)
class Blip2ExportTest(unittest.TestCase):
    def test_tiny_blip2_exports_and_decodes_like_full_recompute(self):
        model = tiny_blip2()
        with tempfile.TemporaryDirectory() as d:
            hf = os.path.join(d, "hf")
            model.save_pretrained(hf)
            shutil.copyfile(os.path.join(SHARED, fc.OPT_VOCAB_REL), os.path.join(hf, "vocab.json"))
            shutil.copyfile(os.path.join(SHARED, "gpt2", "merges.txt"),
                            os.path.join(hf, "merges.txt"))
            with open(os.path.join(hf, "preprocessor_config.json"), "w") as f:
                json.dump({"do_resize": True, "size": {"height": IMAGE, "width": IMAGE},
                           "resample": 3, "image_mean": fc.CLIP_MEAN, "image_std": fc.CLIP_STD},
                          f)
            out = os.path.join(d, "captioner")
            r = subprocess.run([sys.executable, os.path.join(EXPORT_DIR, "export_blip2.py"),
                                "--hf-dir", hf, "--out", out], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
            self.assertIn("against Blip2ForConditionalGeneration", r.stdout)

            with open(os.path.join(out, "manifest.json")) as f:
                m = json.load(f)
            self.assertEqual(m["kind"], "CAPTIONER")
            self.assertEqual(m["image"]["resize_mode"], "STRETCH")
            self.assertEqual(m["captioner"]["bos_token_id"], 2)
            self.assertEqual(m["captioner"]["eos_token_ids"], [fc.OPT_NEWLINE])
            self.assertEqual(m["captioner"]["pad_token_id"], 1)
            self.assertEqual((m["captioner"]["prefix_length"], m["captioner"]["prefix_dim"]),
                             (Q, 32))
            self.assertEqual(m["captioner"]["vocab_size"], fc.OPT_VOCAB_SIZE)

            loaded = torch.jit.load(os.path.join(out, "model.pt"))
            px = torch.randn(2, 3, IMAGE, IMAGE)
            with torch.no_grad():
                prefix = loaded.encode_image(px)
                self.assertEqual(tuple(prefix.shape), (2, Q, 32))
                tokens = torch.tensor([[2, 100, 200], [2, 300, 400]])
                want = export_blip2.reference_full_logits(model, px, tokens)
                # OPT's 7 padding rows (50265..) are not in vocab.json: the export masks them.
                decodable = len(json.load(open(os.path.join(hf, "vocab.json"))))
                want = export_blip2.mask_undecodable(want, decodable)
                ec.compare("logits vs HF", loaded.logits(prefix, tokens), want, 1e-3, 1e-3)

                # Greedy decode, cached vs recomputed: the same ids and logits at every step.
                seq = torch.full((2, 1), 2)
                logits, cache = loaded.prefill(prefix, seq)
                for _ in range(5):
                    ec.compare("step vs logits", logits, loaded.logits(prefix, seq), 1e-4, 1e-4)
                    nxt = logits.argmax(-1, keepdim=True)
                    seq = torch.cat([seq, nxt], 1)
                    logits, cache = loaded.step(cache, nxt)


if __name__ == "__main__":
    unittest.main(verbosity=2)
