#!/usr/bin/env python3
"""bench/gpu/gpu_bench.py — the Python half of bench/gpu/run.sh (see README.md there).

  make-and-measure: builds random-initialised, real-size CLIP ViT-H/14 and BLIP-2 OPT-2.7b from
      their configurations (written out below: nothing is downloaded), on the GPU, in bfloat16;
      saves them as TorchScript in retrace's model contract (clip.pt: encode_image; captioner.pt:
      encode_image, logits, prefill, step — tools/export's wrappers) for gpu_model_bench; then
      measures Hugging Face eager images/s (CLIPModel.get_image_features) and captions/s
      (Blip2ForConditionalGeneration.generate, greedy, exactly --tokens new tokens) per batch size.
      Writes OUT/hf.csv and OUT/models/{clip.pt,captioner.pt,info.env}.
  report: joins hf.csv and retrace.csv (gpu_model_bench's output) into one markdown table.

Both sides do the same work per call: random pixels made on the host are copied to the GPU and
the results (embeddings; generated ids or logits) come back to the host.
"""
import argparse
import csv
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Configurations of the real models (their Hugging Face config.json values), so the random models
# have the real sizes: laion/CLIP-ViT-H-14-laion2B-s32B-b79K and Salesforce/blip2-opt-2.7b.
CLIP_VIT_H_14 = {
    "projection_dim": 1024,
    "vision_config": {"hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32,
                      "num_attention_heads": 16, "image_size": 224, "patch_size": 14,
                      "hidden_act": "gelu"},
    "text_config": {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                    "num_attention_heads": 16, "vocab_size": 49408,
                    "max_position_embeddings": 77, "hidden_act": "gelu"},
}
BLIP2_OPT_2_7B = {
    "num_query_tokens": 32,
    "vision_config": {"hidden_size": 1408, "intermediate_size": 6144, "num_hidden_layers": 39,
                      "num_attention_heads": 16, "image_size": 224, "patch_size": 14,
                      "qkv_bias": True},
    "qformer_config": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                       "num_attention_heads": 12, "cross_attention_frequency": 2,
                       "encoder_hidden_size": 1408, "vocab_size": 30522},
    "text_config": {"model_type": "opt", "hidden_size": 2560, "ffn_dim": 10240,
                    "num_hidden_layers": 32, "num_attention_heads": 32, "vocab_size": 50272,
                    "max_position_embeddings": 2048, "word_embed_proj_dim": 2560,
                    "do_layer_norm_before": True, "activation_function": "relu",
                    "bos_token_id": 2, "eos_token_id": 2, "pad_token_id": 1},
}
NEWLINE_TOKEN = 50118  # OPT's "\n": retrace's BLIP-2 export stops captions there


def fail(message):
    print("gpu_bench: FAILED: " + message, file=sys.stderr)
    sys.exit(1)


def require_gpu_stack(device):
    try:
        import torch
    except ImportError:
        fail("PyTorch is not installed for %s" % sys.executable)
    try:
        import transformers
    except ImportError:
        fail("the Hugging Face `transformers` package is not installed for %s; it is needed for "
             "the models' definitions and the eager baseline (nothing can be downloaded here, so "
             "install it where this runs: pip install transformers)" % sys.executable)
    if int(torch.__version__.split(".")[0]) < 2:
        fail("PyTorch %s: this benchmark needs 2.x (torch.device as a context manager, bfloat16 "
             "kernels)" % torch.__version__)
    if device.startswith("cuda") and not torch.cuda.is_available():
        fail("torch.cuda.is_available() is false: no usable GPU for %s" % device)
    return torch, transformers


def from_config(cls, config, attn):
    try:
        return cls._from_config(config, attn_implementation=attn)
    except (TypeError, ValueError):  # older transformers: no attn_implementation
        return cls(config)


def make_models(torch, transformers, device, dtype, attn):
    """The two random models on `device` in `dtype`, eval mode."""
    torch.manual_seed(0)
    with torch.device(device):  # allocate and initialise on the GPU: seconds, not minutes
        clip = from_config(transformers.CLIPModel, transformers.CLIPConfig(**CLIP_VIT_H_14), attn)
        blip2 = from_config(transformers.Blip2ForConditionalGeneration,
                            transformers.Blip2Config(**BLIP2_OPT_2_7B), attn)
    return clip.to(dtype).eval(), blip2.to(dtype).eval()


def save_torchscript(torch, clip, blip2, folder, device, dtype, image_size, log):
    """clip.pt and captioner.pt in retrace's contract, traced/scripted on the GPU as in
    tools/export (export_clip.ClipMethods, export_blip2.Blip2ImagePrefix, opt_lm.CachedCaptioner)."""
    sys.path.insert(0, os.path.join(REPO, "tools", "export"))
    import export_blip2
    import export_clip
    import opt_lm
    os.makedirs(folder, exist_ok=True)
    example = torch.randn(2, 3, image_size, image_size, device=device, dtype=dtype)
    with torch.no_grad():
        t0 = time.time()
        traced_clip = torch.jit.trace_module(export_clip.ClipMethods(clip, "hf").eval(),
                                             {"encode_image": (example,)}, check_trace=False)
        torch.jit.save(traced_clip, os.path.join(folder, "clip.pt"))
        del traced_clip
        log("clip.pt: traced and saved in %.0f s" % (time.time() - t0))
        t0 = time.time()
        prefix = torch.jit.trace(export_blip2.Blip2ImagePrefix(blip2).eval(), example,
                                 check_trace=False)
        with torch.device(device):
            lm = opt_lm.opt_lm_from_hf(blip2.language_model).to(dtype)
        scripted = torch.jit.script(opt_lm.CachedCaptioner(prefix, lm))
        torch.jit.save(scripted, os.path.join(folder, "captioner.pt"))
        del scripted, lm, prefix
        log("captioner.pt: traced/scripted and saved in %.0f s" % (time.time() - t0))
    torch.cuda.empty_cache() if device.startswith("cuda") else None
    with open(os.path.join(folder, "info.env"), "w") as f:
        f.write("VOCAB=%d\nBOS=%d\nEOS=%d\nIMAGE_SIZE=%d\n"
                % (BLIP2_OPT_2_7B["text_config"]["vocab_size"],
                   BLIP2_OPT_2_7B["text_config"]["bos_token_id"], NEWLINE_TOKEN, image_size))


def measure(torch, device, seconds, call):
    """items/s of `call` (one warm-up call first), with the device drained before each clock read."""
    def synced():
        out = call()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return out
    synced()
    start = time.perf_counter()
    calls = 0
    while True:
        synced()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls, elapsed


def measure_hf(torch, clip, blip2, device, dtype, batches, tokens, seconds, image_size, out_csv):
    rows = []
    g = torch.Generator().manual_seed(1)
    with torch.inference_mode(), open(out_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["side", "model", "batch", "items_per_s", "calls", "seconds"])
        for model_name in ("clip", "captioner"):
            for batch in batches:
                images = torch.randn(batch, 3, image_size, image_size, generator=g)
                if model_name == "clip":
                    def call():
                        x = images.to(device, dtype)
                        out = clip.get_image_features(pixel_values=x)
                        out = out if torch.is_tensor(out) else out[0]
                        return out.float().cpu()
                else:
                    def call():
                        x = images.to(device, dtype)
                        return blip2.generate(pixel_values=x, max_new_tokens=tokens,
                                              min_new_tokens=tokens, num_beams=1,
                                              do_sample=False).cpu()
                calls, elapsed = measure(torch, device, seconds, call)
                row = ["hf", model_name, batch, "%.2f" % (calls * batch / elapsed), calls,
                       "%.2f" % elapsed]
                w.writerow(row)
                f.flush()
                print(",".join(str(v) for v in row), flush=True)
                rows.append(row)
    return rows


def cmd_make_and_measure(args):
    torch, transformers = require_gpu_stack(args.device)
    dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32}[args.dtype]
    log = lambda m: print("gpu_bench: " + m, flush=True)
    log("torch %s, transformers %s, %s" % (torch.__version__, transformers.__version__,
                                           torch.cuda.get_device_name(args.device)
                                           if args.device.startswith("cuda") else args.device))
    t0 = time.time()
    clip, blip2 = make_models(torch, transformers, args.device, dtype, args.attn)
    count = lambda m: sum(p.numel() for p in m.parameters()) / 1e9
    log("random CLIP ViT-H/14 (%.2f B parameters) and BLIP-2 OPT-2.7b (%.2f B) in %.0f s"
        % (count(clip), count(blip2), time.time() - t0))
    image_size = CLIP_VIT_H_14["vision_config"]["image_size"]
    if not args.skip_export:
        save_torchscript(torch, clip, blip2, os.path.join(args.out, "models"), args.device, dtype,
                         image_size, log)
    measure_hf(torch, clip, blip2, args.device, dtype, parse_batches(args.batches), args.tokens,
               args.seconds, image_size, os.path.join(args.out, "hf.csv"))


def read_rows(path):
    with open(path, newline="") as f:
        return {(r["model"], int(r["batch"])): float(r["items_per_s"])
                for r in csv.DictReader(f) if r.get("side") in ("hf", "retrace")}


def cmd_report(args):
    hf = read_rows(args.hf_csv) if os.path.exists(args.hf_csv) else {}
    ours = read_rows(args.retrace_csv)
    unit = {"clip": "images/s (CLIP encode_image)",
            "captioner": "captions/s (captioner, greedy, %s new tokens)" % args.tokens}
    lines = ["| measure | batch | retrace | Hugging Face eager | retrace / HF |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for key in sorted(set(hf) | set(ours), key=lambda k: (k[0] != "clip", k[1])):
        r, h = ours.get(key), hf.get(key)
        ratio = "%.2fx" % (r / h) if r and h else "-"
        fmt = lambda v: "%.1f" % v if v is not None else "not run"
        lines.append("| %s | %d | %s | %s | %s |" % (unit.get(key[0], key[0]), key[1], fmt(r),
                                                    fmt(h), ratio))
    print("\n".join(lines))


def parse_batches(text):
    try:
        batches = [int(b) for b in text.split(",")]
    except ValueError:
        batches = []
    if not batches or min(batches) < 1:
        fail("--batches %r: expected positive integers separated by commas" % text)
    return batches


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make-and-measure")
    m.add_argument("--out", required=True)
    m.add_argument("--device", default="cuda:0")
    m.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    m.add_argument("--attn", default="sdpa", help="transformers attn_implementation (sdpa, eager)")
    m.add_argument("--batches", default="1,8,32")
    m.add_argument("--tokens", type=int, default=30)
    m.add_argument("--seconds", type=float, default=10)
    m.add_argument("--skip-export", action="store_true", help="only the Hugging Face side")
    r = sub.add_parser("report")
    r.add_argument("hf_csv")
    r.add_argument("retrace_csv")
    r.add_argument("--tokens", default="30")
    args = p.parse_args(argv)
    {"make-and-measure": cmd_make_and_measure, "report": cmd_report}[args.command](args)


if __name__ == "__main__":
    main()
