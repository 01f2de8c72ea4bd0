#!/usr/bin/python3
"""Tests of tools/export/opt_lm.py (the BLIP-2 captioner's OPT decoder and its cache) and of the
exporters' save-and-verify step, in pure torch (no transformers needed).

The reference decoder below is a separate, loop-per-position reading of Hugging Face's OPT
(pre-LN, learned positions offset by 2, causal attention over prefix + tokens); the test checks
that logits() matches it and that prefill/step reproduce logits() exactly, including after the
cache rows are reordered and duplicated as beam search does. Whether OptLm equals transformers'
OPTForCausalLM itself is checked by test_blip2_export.py where transformers is installed.
Exit 0 = pass, 1 = fail, 77 = torch missing.
"""

import os
import sys
import tempfile
import types
import unittest

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:
    print("SKIP: python3-torch is not installed")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "tools", "export"))
import export_common as ec  # noqa: E402
import opt_lm  # noqa: E402

VOCAB, HIDDEN, HEADS, FFN, LAYERS, MAX_POS, Q = 40, 16, 4, 24, 2, 24, 3


class TinyImagePrefix(nn.Module):
    """Stands in for BLIP-2's vision encoder + Q-Former + projection: [B,3,8,8] -> [B,Q,H]."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(3 * 4 * 4, Q * HIDDEN)
        self.q, self.h = Q, HIDDEN  # TorchScript cannot read module globals

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pooled = F.avg_pool2d(images, 2).flatten(1)
        return self.proj(pooled).view(images.size(0), self.q, self.h)


def tiny_captioner(seed, tie=True):
    torch.manual_seed(seed)
    lm = opt_lm.OptLm(VOCAB, HIDDEN, HEADS, FFN, LAYERS, MAX_POS, tie_lm_head=tie)
    with torch.no_grad():  # LayerNorms away from identity so that a skipped norm shows
        for name, p in lm.named_parameters():
            if "layer_norm" in name:
                p.add_(torch.randn_like(p) * 0.3)
    return opt_lm.CachedCaptioner(TinyImagePrefix(), lm).eval()


def reference_logits(lm, prefix, tokens):
    """Next-token logits after prefix + tokens, one position at a time, no cache."""
    x = torch.cat([prefix, lm.embed_tokens.weight[tokens]], 1)
    b, n, h = x.shape
    x = x + lm.embed_positions.weight[torch.arange(n) + 2]
    d = h // HEADS
    for layer in lm.layers:
        a = layer.self_attn
        y = F.layer_norm(x, (h,), layer.self_attn_layer_norm.weight,
                         layer.self_attn_layer_norm.bias)
        q = F.linear(y, a.q_proj.weight, a.q_proj.bias) / d ** 0.5
        k = F.linear(y, a.k_proj.weight, a.k_proj.bias)
        v = F.linear(y, a.v_proj.weight, a.v_proj.bias)
        out = torch.zeros(b, n, h)
        for i in range(n):
            for head in range(HEADS):
                cols = slice(head * d, (head + 1) * d)
                w = torch.softmax(q[:, i:i + 1, cols] @ k[:, :i + 1, cols].transpose(1, 2), -1)
                out[:, i:i + 1, cols] = w @ v[:, :i + 1, cols]
        x = x + F.linear(out, a.out_proj.weight, a.out_proj.bias)
        y = F.layer_norm(x, (h,), layer.final_layer_norm.weight, layer.final_layer_norm.bias)
        x = x + F.linear(F.relu(F.linear(y, layer.fc1.weight, layer.fc1.bias)),
                         layer.fc2.weight, layer.fc2.bias)
    x = F.layer_norm(x[:, -1], (h,), lm.final_layer_norm.weight, lm.final_layer_norm.bias)
    return x @ lm.lm_head.weight.t()


class CaptionerCacheTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.eager = tiny_captioner(seed=0)
        path = os.path.join(cls.tmp.name, "model.pt")
        torch.jit.script(cls.eager).save(path)
        cls.model = torch.jit.load(path)  # every check runs on the saved file
        g = torch.Generator().manual_seed(1)
        cls.prefix = cls.model.encode_image(torch.randn(2, 3, 8, 8, generator=g)).detach()
        cls.tokens = torch.randint(0, VOCAB, (2, 6), generator=g)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def close(self, a, b, what):
        self.assertEqual(a.shape, b.shape, what)
        self.assertLess((a - b).abs().max().item(), 1e-5, what)

    def test_logits_match_the_reference_decoder(self):
        with torch.no_grad():
            for t in (1, 3, 6):
                got = self.model.logits(self.prefix, self.tokens[:, :t])
                self.close(got, reference_logits(self.eager.lm, self.prefix, self.tokens[:, :t]),
                           "T=%d" % t)
            # The prefix matters (it is attended to), and so do positions (tokens' order).
            moved = self.model.logits(self.prefix.flip(0), self.tokens)
            self.assertGreater((moved - self.model.logits(self.prefix, self.tokens)).abs().max(),
                               1e-3)

    def test_cache_layout_is_batch_layers_kv_heads_positions_headdim(self):
        with torch.no_grad():
            logits, cache = self.model.prefill(self.prefix, self.tokens[:, :2])
        self.assertEqual(tuple(logits.shape), (2, VOCAB))
        self.assertEqual(tuple(cache.shape), (2, LAYERS, 2, HEADS, Q + 2, HIDDEN // HEADS))
        self.assertEqual(cache.dtype, torch.float32)

    def test_prefill_then_steps_equal_full_recompute(self):
        with torch.no_grad():
            logits, cache = self.model.prefill(self.prefix, self.tokens[:, :1])
            self.close(logits, self.model.logits(self.prefix, self.tokens[:, :1]), "prefill")
            for t in range(1, self.tokens.size(1)):
                logits, cache = self.model.step(cache, self.tokens[:, t:t + 1])
                self.close(logits, self.model.logits(self.prefix, self.tokens[:, :t + 1]),
                           "step %d" % t)
            self.assertEqual(cache.size(4), Q + self.tokens.size(1))

    def test_rows_may_be_reordered_and_duplicated_between_steps(self):
        with torch.no_grad():
            _, cache = self.model.prefill(self.prefix, self.tokens[:, :3])
            rows = torch.tensor([1, 0, 1])  # beam search: keep row 1 twice, row 0 once
            nxt = torch.tensor([[5], [7], [9]])
            logits, _ = self.model.step(cache.index_select(0, rows), nxt)
            want = self.model.logits(self.prefix[rows],
                                     torch.cat([self.tokens[rows, :3], nxt], 1))
            self.close(logits, want, "reordered")
            self.assertGreater((logits[0] - logits[2]).abs().max().item(), 1e-4)

    def test_too_long_a_sequence_is_an_error(self):
        with self.assertRaises(Exception) as caught:
            self.model.logits(self.prefix, torch.zeros(2, MAX_POS, dtype=torch.long))
        self.assertIn("max_position_embeddings", str(caught.exception))

    def test_untied_head_is_kept_and_tied_head_is_saved_once(self):
        untied = tiny_captioner(seed=0, tie=False)
        self.assertFalse(untied.lm.lm_head.weight is untied.lm.embed_tokens.weight)
        with tempfile.TemporaryDirectory() as d:
            tied_path, untied_path = os.path.join(d, "t.pt"), os.path.join(d, "u.pt")
            torch.jit.script(self.eager).save(tied_path)
            torch.jit.script(untied).save(untied_path)
            # V x H floats = 2560 bytes: the untied file carries them twice.
            extra = os.path.getsize(untied_path) - os.path.getsize(tied_path)
            self.assertGreater(extra, VOCAB * HIDDEN * 4 * 0.9)


class FakeHfOpt:
    """Quacks like transformers' OPTForCausalLM: a config and OPT's state-dict names."""

    def __init__(self, lm, **config):
        self.config = types.SimpleNamespace(
            hidden_size=HIDDEN, num_attention_heads=HEADS, ffn_dim=FFN, num_hidden_layers=LAYERS,
            max_position_embeddings=MAX_POS, do_layer_norm_before=True, word_embed_proj_dim=HIDDEN,
            activation_function="relu", enable_bias=True, layer_norm_elementwise_affine=True)
        for k, v in config.items():
            setattr(self.config, k, v)
        self.state = {("lm_head.weight" if k == "lm_head.weight" else "model.decoder." + k): v
                      for k, v in lm.state_dict().items()}

    def state_dict(self):
        return self.state


class FromHfWeightsTest(unittest.TestCase):
    def test_weights_map_by_opt_names_and_give_the_same_logits(self):
        source = tiny_captioner(seed=4, tie=False)
        lm = opt_lm.opt_lm_from_hf(FakeHfOpt(source.lm))
        prefix, tokens = torch.randn(2, Q, HIDDEN), torch.randint(0, VOCAB, (2, 5))
        with torch.no_grad():
            want = reference_logits(source.lm, prefix, tokens)
            got = opt_lm.CachedCaptioner(source.image_prefix, lm).logits(prefix, tokens)
        self.assertLess((got - want).abs().max().item(), 1e-5)
        self.assertFalse(lm.lm_head.weight is lm.embed_tokens.weight)  # untied stays untied
        tied = opt_lm.opt_lm_from_hf(FakeHfOpt(tiny_captioner(seed=4).lm))
        self.assertTrue(tied.lm_head.weight is tied.embed_tokens.weight)

    def test_unsupported_opt_variants_are_named(self):
        with self.assertRaisesRegex(ValueError, "post-LayerNorm"):
            opt_lm.opt_lm_from_hf(FakeHfOpt(tiny_captioner(seed=4).lm, do_layer_norm_before=False))
        with self.assertRaisesRegex(ValueError, "project_in"):
            opt_lm.opt_lm_from_hf(FakeHfOpt(tiny_captioner(seed=4).lm, word_embed_proj_dim=8))


class UndecodableIdsTest(unittest.TestCase):
    def test_ids_beyond_the_vocabulary_are_masked_in_every_method(self):
        plain = tiny_captioner(seed=5)
        masked = torch.jit.script(opt_lm.CachedCaptioner(plain.image_prefix, plain.lm,
                                                         decodable=VOCAB - 7))
        prefix, tokens = torch.randn(2, Q, HIDDEN), torch.randint(0, VOCAB - 7, (2, 4))
        with torch.no_grad():
            want = plain.logits(prefix, tokens)
            _, cache = masked.prefill(prefix, tokens[:, :3])
            for got in (masked.logits(prefix, tokens), masked.step(cache, tokens[:, 3:])[0]):
                self.assertTrue(torch.isneginf(got[:, VOCAB - 7:]).all())
                self.assertLess((got[:, :VOCAB - 7] - want[:, :VOCAB - 7]).abs().max().item(),
                                1e-5)
            # save_and_verify accepts -inf where the reference has it, and only there.
            ec.compare("logits", masked.logits(prefix, tokens),
                       opt_lm.CachedCaptioner(plain.image_prefix, plain.lm, VOCAB - 7).logits(
                           prefix, tokens), 1e-5, 1e-5)
            with self.assertRaises(ec.ExportError):
                ec.compare("logits", masked.logits(prefix, tokens), want, 1e-5, 1e-5)


class TracedPrefixTest(unittest.TestCase):
    def test_a_traced_image_prefix_scripts_inside_the_captioner(self):
        # export_blip2.py traces the transformers vision side at batch 2 and scripts the rest.
        eager = tiny_captioner(seed=3)
        traced = torch.jit.trace(eager.image_prefix, torch.randn(2, 3, 8, 8))
        model = torch.jit.script(opt_lm.CachedCaptioner(traced, eager.lm))
        x = torch.randn(3, 3, 8, 8)
        with torch.no_grad():
            self.assertLess((model.encode_image(x) - eager.encode_image(x)).abs().max().item(),
                            1e-6)


class SaveAndVerifyTest(unittest.TestCase):
    def test_a_mismatch_with_the_eager_model_fails_loudly(self):
        model = tiny_captioner(seed=2)
        x = torch.randn(2, 3, 8, 8)
        with torch.no_grad():
            good = model.encode_image(x)
        with tempfile.TemporaryDirectory() as d:
            scripted = torch.jit.script(model)
            ec.save_and_verify(scripted, d, [("encode_image", (x,), good)], 1e-5, 1e-5,
                               log=lambda s: None)
            with self.assertRaises(ec.ExportError) as caught:
                ec.save_and_verify(scripted, d, [("encode_image", (x,), good + 1e-3)], 1e-5,
                                   1e-5, log=lambda s: None)
            self.assertIn("encode_image output 0 differs", str(caught.exception))
            with self.assertRaises(ec.ExportError) as caught:
                ec.save_and_verify(scripted, d, [("encode_text", (x,), good)], 1e-5, 1e-5,
                                   log=lambda s: None)
            self.assertIn("no method encode_text", str(caught.exception))

    def test_newer_torch_is_refused_unless_allowed(self):
        real = torch.__version__
        try:
            torch.__version__ = "2.4.0+cpu"
            with self.assertRaises(ec.ExportError) as caught:
                ec.check_torch_version(allow_newer=False)
            self.assertIn("newer than the server's LibTorch 1.13", str(caught.exception))
            ec.check_torch_version(allow_newer=True)
            torch.__version__ = "1.13.1"
            ec.check_torch_version(allow_newer=False)
        finally:
            torch.__version__ = real


if __name__ == "__main__":
    unittest.main(verbosity=2)
