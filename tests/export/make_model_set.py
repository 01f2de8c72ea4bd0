#!/usr/bin/python3
"""Writes a model set the way the exporters do, for the C++ test that loads it like the server.

    make_model_set.py --out DIR

DIR/set/clip           export_clip.export() of the fixtures' DemoClip (traced, as real CLIPs are)
DIR/set/captioner      opt_lm.CachedCaptioner with a tiny random OPT over OPT's real vocabulary
                       (what export_blip2.py writes, minus transformers), saved + verified by
                       export_common.save_and_verify
DIR/set/image_encoder  export_slip.export() of a tiny SLIP checkpoint
DIR/set_reference.txt  inputs and expected outputs: the CLIP text embedding of "a picture of a dog"
                       (normalised, as the service does) and the captioner's logits for one prefix
                       and token row (the decodable columns; the rest are -inf).
Exit 0 = written, 1 = failed, 77 = torch or the shared tokenizer files missing.
"""

import argparse
import os
import sys
import tempfile

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:
    print("SKIP: python3-torch is not installed")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tools", "export"))
sys.path.insert(0, os.path.join(REPO, "tools", "fixtures"))
sys.path.insert(0, HERE)
import demo_models  # noqa: E402
import export_clip  # noqa: E402
import export_common as ec  # noqa: E402
import export_slip  # noqa: E402
import fixture_common as fc  # noqa: E402
import opt_lm  # noqa: E402
import test_slip_export  # noqa: E402

IMAGE, Q, HIDDEN = 64, 4, 16


class TinyImagePrefix(nn.Module):
    """[B,3,64,64] -> [B,Q,H]: stands in for BLIP-2's vision side."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(3 * 8 * 8, Q * HIDDEN)
        self.q, self.h = Q, HIDDEN

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.proj(F.adaptive_avg_pool2d(images, 8).flatten(1)).view(-1, self.q, self.h)


def write_tensor(f, label, t):
    f.write("%s %s\n" % (label, " ".join(str(s) for s in t.shape)))
    f.write(" ".join(("%.9g" % v) if t.is_floating_point() else str(v)
                     for v in t.flatten().tolist()) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    a = p.parse_args()
    shared = fc.default_shared_data()
    if fc.missing_shared_data(shared):
        print("SKIP: shared data (tokenizer files) not found: %s" % fc.missing_shared_data(shared))
        return 77
    out = os.path.join(a.out, "set")
    quiet = lambda s: None  # noqa: E731
    torch.manual_seed(0)
    clip_image = ec.image_spec(IMAGE, "SHORTEST_SIDE_CENTER_CROP", "BICUBIC", ec.CLIP_MEAN,
                               ec.CLIP_STD)
    clip = demo_models.DemoClip(image_size=IMAGE, dim=24).eval()
    export_clip.export(export_clip.ClipMethods(clip, "open_clip"), clip_image,
                       os.path.join(shared, fc.CLIP_VOCAB_REL), 77, os.path.join(out, "clip"),
                       "tiny exported clip", "test", log=quiet)

    lm = opt_lm.OptLm(fc.OPT_VOCAB_SIZE, HIDDEN, 4, 32, 2, 64).eval()
    decodable = len(fc.opt_vocab(shared))  # 50265: OPT's 7 padding rows get -inf
    captioner = opt_lm.CachedCaptioner(TinyImagePrefix(), lm, decodable).eval()
    folder = ec.prepare_folder(os.path.join(out, "captioner"))
    prefix = torch.randn(1, Q, HIDDEN)
    tokens = torch.tensor([[fc.OPT_BOS, fc.OPT_A, 2170]])
    with torch.no_grad():
        logits = captioner.logits(prefix, tokens)
        px = torch.randn(2, 3, IMAGE, IMAGE)
        _, cache = captioner.prefill(prefix, tokens[:, :2])
        cases = [("encode_image", (px,), captioner.encode_image(px)),
                 ("logits", (prefix, tokens), logits),
                 ("prefill", (prefix, tokens[:, :2]), captioner.prefill(prefix, tokens[:, :2])),
                 ("step", (cache, tokens[:, 2:]), captioner.step(cache, tokens[:, 2:]))]
        ec.save_and_verify(torch.jit.script(captioner), folder, cases, 1e-5, 1e-5, log=quiet)
    ec.write_manifest(folder, {
        "kind": "CAPTIONER", "name": "tiny exported captioner", "version": "test",
        "image": ec.image_spec(IMAGE, "STRETCH", "BICUBIC", ec.CLIP_MEAN, ec.CLIP_STD),
        "tokenizer": {"kind": "GPT2_BPE",
                      "vocab_file": ec.copy_into(os.path.join(shared, fc.OPT_VOCAB_REL), folder),
                      "merges_file": ec.copy_into(os.path.join(shared, "gpt2", "merges.txt"),
                                                  folder)},
        "captioner": {"bos_token_id": fc.OPT_BOS, "eos_token_ids": [fc.OPT_NEWLINE],
                      "pad_token_id": fc.OPT_PAD, "vocab_size": fc.OPT_VOCAB_SIZE,
                      "prefix_length": Q, "prefix_dim": HIDDEN, "max_new_tokens": 8},
        "dtype": "float32"})

    with tempfile.TemporaryDirectory() as d:
        ckpt = os.path.join(d, "slip.pt")
        test_slip_export.save_checkpoint(ckpt, test_slip_export.tiny_slip_state(seed=7))
        export_slip.export(ckpt, os.path.join(out, "image_encoder"), heads=4, log=quiet)

    with torch.no_grad():
        row = torch.tensor([fc.clip_tokens(["a", "picture", "of", "a", "dog"])])
        text = F.normalize(clip.encode_text(row), dim=-1)
    with open(os.path.join(a.out, "set_reference.txt"), "w") as f:
        write_tensor(f, "clip_text", text)
        write_tensor(f, "prefix", prefix)
        write_tensor(f, "tokens", tokens)
        write_tensor(f, "decodable_logits", logits[:, :decodable])  # C++ streams cannot read inf
    print("wrote %s and %s" % (out, os.path.join(a.out, "set_reference.txt")))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ec.ExportError as e:
        sys.stderr.write("error: %s\n" % e)
        sys.exit(1)
