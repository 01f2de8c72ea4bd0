#!/usr/bin/python3
"""Exports a Hugging Face BLIP-2 OPT checkpoint as a CAPTIONER model folder.

    export_blip2.py --hf-dir blip2-opt-2.7b --out models/captioner

--hf-dir is a local copy of e.g. Salesforce/blip2-opt-2.7b (config.json, the weights,
preprocessor_config.json, vocab.json, merges.txt); nothing is downloaded. Needs transformers
(Blip2ForConditionalGeneration) and about 4x the fp32 model size in RAM (2.7b: ~16 GB of fp32
weights, 48+ GB to be comfortable).

Methods written (CAPTIONER contract, ARCHITECTURE.md):
  encode_image(f32[B,3,S,S]) -> f32[B,Q,H]   vision encoder -> Q-Former queries -> language_projection
                                            (traced from the transformers modules)
  logits(f32[B,Q,H], i64[B,T]) -> f32[B,V]   next-token logits, prefix before the token embeddings
  prefill(prefix, tokens) -> (logits, cache) cache: f32[B, layers, 2, heads, Q+T, head_dim]
  step(cache, i64[B,1]) -> (logits, cache)
The language model is tools/export/opt_lm.py (scripted, weights copied from the checkpoint).
Every method is checked against transformers on random inputs after reloading model.pt:
encode_image against the modules it was traced from, logits/prefill/step against
OPTForCausalLM on the same embeddings, and the whole chain against Blip2ForConditionalGeneration's
own forward.
"""

import argparse
import json
import os
import sys
import warnings

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_common as ec  # noqa: E402
import opt_lm  # noqa: E402

NEWLINE = "\u010a"  # byte-level BPE's "\n": the token LAVIS/HF BLIP-2 OPT stops captions at
RESAMPLE = {2: "BILINEAR", 3: "BICUBIC"}  # PIL resample codes in preprocessor_config.json


class Blip2ImagePrefix(nn.Module):
    """Images -> Q-Former query outputs projected to the LM width, as in Blip2ForConditionalGeneration."""

    def __init__(self, model):
        super().__init__()
        self.vision_model = model.vision_model
        self.qformer = model.qformer
        self.query_tokens = model.query_tokens
        self.language_projection = model.language_projection

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        image_embeds = self.vision_model(pixel_values, return_dict=False)[0]
        mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
        queries = self.query_tokens.expand(image_embeds.shape[0], -1, -1)
        out = self.qformer(query_embeds=queries, encoder_hidden_states=image_embeds,
                           encoder_attention_mask=mask, return_dict=False)[0]
        return self.language_projection(out[:, :queries.shape[1]])


def load_model(hf_dir):
    transformers = ec.require("transformers", "transformers")
    ec.require_dir(hf_dir, "--hf-dir")
    ec.require_file(os.path.join(hf_dir, "config.json"), "config.json of the checkpoint")
    cls = transformers.Blip2ForConditionalGeneration
    kwargs = {"torch_dtype": torch.float32, "local_files_only": True}
    try:  # eager attention: the plain ops trace best (the flag exists from transformers 4.36)
        model = cls.from_pretrained(hf_dir, attn_implementation="eager", **kwargs)
    except (TypeError, ValueError):
        model = cls.from_pretrained(hf_dir, **kwargs)
    if model.config.text_config.model_type != "opt":
        raise ec.ExportError("only BLIP-2 with an OPT language model is supported; this one has "
                             "%r (Flan-T5 BLIP-2 is an encoder-decoder)"
                             % model.config.text_config.model_type)
    return model.float().eval()


def image_preprocessing(hf_dir, default_size, log):
    """The manifest's image spec from BlipImageProcessor's preprocessor_config.json."""
    path = os.path.join(hf_dir, "preprocessor_config.json")
    if not os.path.isfile(path):
        log("no preprocessor_config.json: using BLIP-2's defaults (%d, stretch, bicubic, CLIP "
            "mean/std)" % default_size)
        return ec.image_spec(default_size, "STRETCH", "BICUBIC", ec.CLIP_MEAN, ec.CLIP_STD)
    with open(path) as f:
        cfg = json.load(f)
    size = cfg.get("size", default_size)
    if isinstance(size, dict):
        if size.get("height") != size.get("width"):
            raise ec.ExportError("%s: non-square size %s" % (path, size))
        size = size["height"]
    if cfg.get("do_center_crop") or cfg.get("do_resize") is False:
        raise ec.ExportError("%s: expected BlipImageProcessor's plain resize to size x size "
                             "(no crop); got do_resize=%s do_center_crop=%s"
                             % (path, cfg.get("do_resize"), cfg.get("do_center_crop")))
    resample = cfg.get("resample", 3)
    if resample not in RESAMPLE:
        raise ec.ExportError("%s: resample %s is neither bilinear (2) nor bicubic (3)"
                             % (path, resample))
    # BlipImageProcessor resizes both sides to size: aspect is not kept (STRETCH).
    return ec.image_spec(size, "STRETCH", RESAMPLE[resample],
                         cfg.get("image_mean", ec.CLIP_MEAN), cfg.get("image_std", ec.CLIP_STD))


def mask_undecodable(logits, decodable):
    """What CachedCaptioner.mask does: ids the vocabulary cannot decode get -inf."""
    logits = logits.clone()
    logits[:, decodable:] = float("-inf")
    return logits


def reference_lm_logits(model, prefix, tokens, decodable):
    """transformers' OPTForCausalLM on [prefix; embed(tokens)]: last position's logits."""
    lm = model.language_model
    embeds = torch.cat([prefix, lm.get_input_embeddings()(tokens)], dim=1)
    mask = torch.ones(embeds.shape[:2], dtype=torch.long)
    logits = lm(inputs_embeds=embeds, attention_mask=mask, return_dict=True).logits[:, -1]
    return mask_undecodable(logits, decodable)


def reference_full_logits(model, pixel_values, tokens):
    """Blip2ForConditionalGeneration's own forward, last position's logits."""
    image_token = getattr(model.config, "image_token_index", None)
    if image_token is not None:  # newer processors put Q image tokens before the text
        q = model.config.num_query_tokens
        tokens = torch.cat([torch.full((tokens.shape[0], q), image_token), tokens], dim=1)
    out = model(pixel_values=pixel_values, input_ids=tokens,
                attention_mask=torch.ones_like(tokens), return_dict=True)
    return out.logits[:, -1]


def build(model, image_size, decodable):
    """The scripted CachedCaptioner (image prefix traced, OPT scripted)."""
    prefix_module = Blip2ImagePrefix(model).eval()
    example = torch.randn(2, 3, image_size, image_size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about Python ints; checked below instead
        traced = torch.jit.trace(prefix_module, example, check_trace=False)
    try:
        lm = opt_lm.opt_lm_from_hf(model.language_model)
    except ValueError as e:
        raise ec.ExportError(str(e))
    return (torch.jit.script(opt_lm.CachedCaptioner(traced, lm, decodable)), prefix_module, lm)


def check_newline_token(vocab_path, eos_ids):
    with open(vocab_path, encoding="utf-8") as f:
        vocab = json.load(f)
    newline = vocab.get(NEWLINE)
    if newline is None or newline not in eos_ids:
        raise ec.ExportError("%s maps the newline token to %s, which is not among the EOS ids %s; "
                             "pass --eos-token-ids" % (vocab_path, newline, eos_ids))
    return vocab


def export(hf_dir, out, name=None, version=None, eos_ids=None, max_new_tokens=30, atol=1e-4,
           rtol=1e-4, seed=0, log=print):
    model = load_model(hf_dir)
    vocab_src = ec.require_file(os.path.join(hf_dir, "vocab.json"), "vocab.json (OPT tokenizer)")
    merges_src = ec.require_file(os.path.join(hf_dir, "merges.txt"), "merges.txt (OPT tokenizer)")
    eos_ids = eos_ids or [50118]
    vocab = check_newline_token(vocab_src, eos_ids)
    cfg = model.config
    image_size = cfg.vision_config.image_size
    image = image_preprocessing(hf_dir, image_size, log)
    if image["size"] != image_size:
        raise ec.ExportError("preprocessor size %d != vision_config.image_size %d"
                             % (image["size"], image_size))
    ec.prepare_folder(out)
    vocab_size = model.language_model.get_output_embeddings().weight.shape[0]
    token_max = min(vocab_size, len(vocab))  # ids vocab.json can decode
    scripted, prefix_module, lm = build(model, image_size, token_max)
    if token_max < vocab_size:
        log("note: logits have %d columns, vocab.json %d tokens; ids >= %d are masked to -inf "
            "(they cannot be decoded)" % (vocab_size, len(vocab), token_max))

    g = torch.Generator().manual_seed(seed)
    cases = []
    with torch.no_grad():
        for batch, t in ((1, 2), (3, 4)):  # not the traced batch (2): shapes must not be baked
            px = torch.randn(batch, 3, image_size, image_size, generator=g)
            tokens = torch.randint(0, token_max, (batch, t), generator=g)
            tokens[:, 0] = cfg.text_config.bos_token_id
            prefix = prefix_module(px)
            head, last = tokens[:, :-1], tokens[:, -1:]
            want_head = reference_lm_logits(model, prefix, head, token_max)
            want = reference_lm_logits(model, prefix, tokens, token_max)
            # Caches are compared with the eager OptLm's; logits with transformers' OPT.
            _, cache = lm.run(torch.cat([prefix, lm.embed(head)], 1), None)
            _, cache_after = lm.run(lm.embed(last), cache)
            cases += [("encode_image", (px,), prefix),
                      ("logits", (prefix, head), want_head),
                      ("logits", (prefix, tokens), want),
                      ("prefill", (prefix, head), (want_head, cache)),
                      ("step", (cache, last), (want, cache_after))]
        loaded = ec.save_and_verify(scripted, out, cases, atol, rtol, log)
        # The whole chain against transformers' own forward (prefix placement included).
        px = torch.randn(2, 3, image_size, image_size, generator=g)
        tokens = torch.randint(0, token_max, (2, 3), generator=g)
        tokens[:, 0] = cfg.text_config.bos_token_id
        worst = ec.compare("encode_image+logits vs Blip2ForConditionalGeneration",
                           loaded.logits(loaded.encode_image(px), tokens),
                           mask_undecodable(reference_full_logits(model, px, tokens), token_max),
                           atol * 10, rtol * 10)
        log("verified encode_image+logits against Blip2ForConditionalGeneration: max |diff| "
            "%.2e" % worst)

    base = os.path.basename(os.path.normpath(hf_dir))
    manifest = {
        "kind": "CAPTIONER",
        "name": name or "BLIP-2 %s" % base,
        "version": version or base,
        "image": image,
        "tokenizer": {"kind": "GPT2_BPE", "vocab_file": ec.copy_into(vocab_src, out),
                      "merges_file": ec.copy_into(merges_src, out)},
        "captioner": {"bos_token_id": int(cfg.text_config.bos_token_id),
                      "eos_token_ids": [int(i) for i in eos_ids],
                      "pad_token_id": int(cfg.text_config.pad_token_id),
                      "vocab_size": int(vocab_size),
                      "prefix_length": int(cfg.num_query_tokens),
                      "prefix_dim": int(cfg.text_config.hidden_size),
                      "max_new_tokens": int(max_new_tokens)},
        "dtype": "float32",
    }
    ec.write_manifest(out, manifest)
    return out, manifest


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hf-dir", required=True,
                   help="local Hugging Face BLIP-2 OPT directory (e.g. Salesforce/blip2-opt-2.7b)")
    p.add_argument("--eos-token-ids", type=int, nargs="+", default=[50118],
                   help="ids that end a caption (default: 50118, OPT's newline, as BLIP-2 OPT)")
    p.add_argument("--max-new-tokens", type=int, default=30)
    ec.add_common_flags(p)
    a = p.parse_args(argv)
    ec.check_torch_version(a.allow_newer_torch)
    out, m = export(a.hf_dir, a.out, a.name, a.version, a.eos_token_ids, a.max_new_tokens,
                    a.atol, a.rtol, a.seed)
    c = m["captioner"]
    print("wrote %s (CAPTIONER, image %d, prefix %dx%d, vocab %d, %.1f MB)"
          % (out, m["image"]["size"], c["prefix_length"], c["prefix_dim"], c["vocab_size"],
             ec.folder_size_mb(out)))
    return 0


if __name__ == "__main__":
    ec.run_main(main)
