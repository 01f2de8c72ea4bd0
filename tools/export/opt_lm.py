"""OPT decoder with a one-tensor key/value cache, in plain (scriptable) torch, and the CAPTIONER
wrapper around it.

Why not trace Hugging Face's OPT: its cache type and mask code change between transformers
versions (tuples, DynamicCache, SDPA branches), and tracing would freeze one sequence length.
This module takes OPTForCausalLM's weights by their Hugging Face names and computes the same
function (pre-LayerNorm OPT: 125m, 1.3b, 2.7b, 6.7b, ...; ReLU MLP; learned positions with
offset 2; lm_head tied or not). export_blip2.py checks it against the transformers model.

The cache contract (agreed with the C++ captioner): ONE float32 tensor, batch in dim 0,
    cache = [B, layers, 2 (key, value), heads, S, head_dim]
where S counts every position seen so far (prefix + tokens). Rows are independent, so the
caller may index_select / repeat rows between calls (beam search).
"""

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn


class OptAttention(nn.Module):
    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.head_dim = hidden // heads
        self.scaling = self.head_dim ** -0.5
        self.q_proj = nn.Linear(hidden, hidden)
        self.k_proj = nn.Linear(hidden, hidden)
        self.v_proj = nn.Linear(hidden, hidden)
        self.out_proj = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, past_k: Optional[torch.Tensor],
                past_v: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t, hidden = x.size(0), x.size(1), x.size(2)
        q = (self.q_proj(x) * self.scaling).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        if past_k is not None and past_v is not None:
            k = torch.cat([past_k, k], dim=2)
            v = torch.cat([past_v, v], dim=2)
        s = k.size(2)
        scores = torch.matmul(q, k.transpose(-1, -2))  # [B, heads, t, s]
        # Query i sits at absolute position s - t + i and sees keys 0 ..= that position.
        visible = torch.ones(t, s, dtype=torch.bool, device=x.device).tril(s - t)
        scores = scores.masked_fill(~visible, float("-inf"))
        y = torch.matmul(scores.softmax(dim=-1), v).transpose(1, 2).reshape(b, t, hidden)
        return self.out_proj(y), k, v


class OptLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, ffn: int):
        super().__init__()
        self.self_attn = OptAttention(hidden, heads)
        self.self_attn_layer_norm = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, ffn)
        self.fc2 = nn.Linear(ffn, hidden)
        self.final_layer_norm = nn.LayerNorm(hidden)

    def forward(self, x: torch.Tensor, past_k: Optional[torch.Tensor],
                past_v: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y, k, v = self.self_attn(self.self_attn_layer_norm(x), past_k, past_v)
        x = x + y
        x = x + self.fc2(F.relu(self.fc1(self.final_layer_norm(x))))
        return x, k, v


class OptLm(nn.Module):
    """OPTForCausalLM (pre-LN) on input embeddings, returning the last position's logits."""

    def __init__(self, vocab: int, hidden: int, heads: int, ffn: int, layers: int,
                 max_positions: int, tie_lm_head: bool = True):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, hidden)
        self.position_offset = 2  # OPTLearnedPositionalEmbedding: row = position + 2
        self.embed_positions = nn.Embedding(max_positions + self.position_offset, hidden)
        self.layers = nn.ModuleList([OptLayer(hidden, heads, ffn) for _ in range(layers)])
        self.final_layer_norm = nn.LayerNorm(hidden)
        self.lm_head = nn.Linear(hidden, vocab, bias=False)
        if tie_lm_head:
            self.lm_head.weight = self.embed_tokens.weight  # saved once by torch.jit.save
        self.max_positions = max_positions

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.embed_tokens(tokens)

    def run(self, x: torch.Tensor, cache: Optional[torch.Tensor]) -> Tuple[torch.Tensor,
                                                                           torch.Tensor]:
        """(logits [B,V] after the last position of x, the cache extended by x)."""
        past = 0 if cache is None else cache.size(4)
        if past + x.size(1) > self.max_positions:
            raise RuntimeError("sequence longer than the model's max_position_embeddings")
        positions = torch.arange(past, past + x.size(1), device=x.device) + self.position_offset
        x = x + self.embed_positions(positions).unsqueeze(0)
        keys: List[torch.Tensor] = []
        values: List[torch.Tensor] = []
        for i, layer in enumerate(self.layers):
            if cache is None:
                x, k, v = layer(x, None, None)
            else:
                x, k, v = layer(x, cache[:, i, 0], cache[:, i, 1])
            keys.append(k)
            values.append(v)
        new_cache = torch.stack([torch.stack(keys, 1), torch.stack(values, 1)], 2)
        return self.lm_head(self.final_layer_norm(x[:, -1])), new_cache


class CachedCaptioner(nn.Module):
    """CAPTIONER contract: encode_image, logits, and the cached prefill/step pair.

    image_prefix maps f32[B,3,S,S] to f32[B,Q,H] (H = the LM's width). The prefix is placed
    before the token embeddings, as Blip2ForConditionalGeneration does. Logit columns at or above
    `decodable` (ids the tokenizer's vocab.json lacks, e.g. OPT's 7 padding rows 50265..50271) are
    -inf, so a decoder can never pick an id it cannot turn into text; default: none masked.
    """

    def __init__(self, image_prefix: nn.Module, lm: OptLm, decodable: int = -1):
        super().__init__()
        self.image_prefix = image_prefix
        self.lm = lm
        self.decodable = decodable if decodable > 0 else lm.lm_head.weight.shape[0]

    def mask(self, logits: torch.Tensor) -> torch.Tensor:
        columns = torch.arange(logits.size(1), device=logits.device)
        return logits.masked_fill(columns >= self.decodable, float("-inf"))

    @torch.jit.export
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.image_prefix(images)

    @torch.jit.export
    def logits(self, prefix: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self.mask(self.lm.run(torch.cat([prefix, self.lm.embed(tokens)], dim=1), None)[0])

    @torch.jit.export
    def prefill(self, prefix: torch.Tensor, tokens: torch.Tensor) -> Tuple[torch.Tensor,
                                                                          torch.Tensor]:
        logits, cache = self.lm.run(torch.cat([prefix, self.lm.embed(tokens)], dim=1), None)
        return self.mask(logits), cache

    @torch.jit.export
    def step(self, cache: torch.Tensor, tokens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        logits, new_cache = self.lm.run(self.lm.embed(tokens), cache)
        return self.mask(logits), new_cache

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encode_image(images)


def opt_lm_from_hf(language_model):
    """OptLm holding the weights of a transformers OPTForCausalLM (raises ValueError if unsupported)."""
    cfg = language_model.config
    problems = []
    if not getattr(cfg, "do_layer_norm_before", True):
        problems.append("post-LayerNorm OPT (do_layer_norm_before=False, e.g. opt-350m)")
    if getattr(cfg, "word_embed_proj_dim", cfg.hidden_size) != cfg.hidden_size:
        problems.append("project_in/project_out (word_embed_proj_dim != hidden_size)")
    if getattr(cfg, "activation_function", "relu") != "relu":
        problems.append("activation %r" % cfg.activation_function)
    if getattr(cfg, "_remove_final_layer_norm", False):
        problems.append("_remove_final_layer_norm")
    if not getattr(cfg, "enable_bias", True) or not getattr(cfg, "layer_norm_elementwise_affine",
                                                            True):
        problems.append("enable_bias=False or layer_norm_elementwise_affine=False")
    if problems:
        raise ValueError("this OPT variant is not supported: " + "; ".join(problems))
    state = language_model.state_dict()
    if "lm_head.weight" not in state or "model.decoder.embed_tokens.weight" not in state:
        # Some transformers releases hold the bare OPTModel here and lm_head on the outer class.
        raise ValueError("the language model is not an OPTForCausalLM with 'lm_head.weight' and "
                         "'model.decoder.*' weights (keys start with %s); use a transformers "
                         "release listed in tools/export/README.md"
                         % sorted(set(k.split(".")[0] for k in state)))
    head = state["lm_head.weight"]
    embed = state["model.decoder.embed_tokens.weight"]
    tied = head.data_ptr() == embed.data_ptr() or torch.equal(head, embed)
    lm = OptLm(vocab=head.shape[0], hidden=cfg.hidden_size, heads=cfg.num_attention_heads,
               ffn=cfg.ffn_dim, layers=cfg.num_hidden_layers,
               max_positions=cfg.max_position_embeddings, tie_lm_head=tied)
    ours = {}
    for key, value in state.items():
        if key.startswith("model.decoder."):
            ours[key[len("model.decoder."):]] = value
        elif key == "lm_head.weight":
            ours[key] = value
    missing, unexpected = lm.load_state_dict(ours, strict=False)
    if missing or unexpected:
        raise ValueError("OPT weights do not match: missing %s, unexpected %s"
                         % (missing[:6], unexpected[:6]))
    return lm.float().eval()
