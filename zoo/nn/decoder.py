"""A LLaMA / Qwen2-style decoder: RMSNorm, SwiGLU MLP, grouped-query attention with optional q/k/v
bias, RoPE with a configurable base and scaling, tied or untied output head.

One family covers the public diffusion LLMs and their AR baselines: LLaDA (bidirectional), Dream and
DiffuCoder (bidirectional, shifted: the logit at position i predicts token i + 1, as in the Qwen2
model they were adapted from), Qwen2 / LLaMA causal LMs. ``zoo.public`` maps each checkpoint's own
tensor names onto this module's.

The network keeps the zoo's contract, ``net(x, t, cond, valid=, cache=, update_cache=, positions=)``,
so the masked sampler's caches (prefix, dual) and the AR decoder run on it unchanged.

Shapes: B batch, L new tokens, S keys (cached + new), H query heads, G key/value heads, D head dim.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from zoo.nn.attention import KVCache, apply_rope, rope_tables, token_positions, with_cached
from zoo.nn.blocks import annealed_mask

ROPE_TYPES = ("default", "linear", "llama3")


@dataclass
class DecoderConfig:
    """Sizes and switches of a ``DecoderLM``; every field is a key of the zoo's model_kwargs.

    rope_scaling: None, or a dict as in Hugging Face configs: {"rope_type": "linear", "factor": f} or
    {"rope_type": "llama3", "factor", "low_freq_factor", "high_freq_factor",
    "original_max_position_embeddings"}.
    """

    vocab_size: int
    dim: int
    depth: int
    num_heads: int
    mlp_hidden: int
    num_kv_heads: int | None = None  # None: as many as query heads (plain multi-head attention)
    head_dim: int | None = None  # None: dim // num_heads
    max_seq_len: int = 4096
    rope_theta: float = 10000.0
    rope_scaling: dict | None = None
    norm_eps: float = 1e-5
    qkv_bias: bool = False
    tie_embeddings: bool = False
    causal: bool = False
    shift: bool = False

    def __post_init__(self):
        for name in ("vocab_size", "dim", "depth", "num_heads", "mlp_hidden", "max_seq_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}={value!r}: expected a positive integer")
        kv = self.num_kv_heads or self.num_heads
        if self.num_heads % kv:
            raise ValueError(f"num_heads={self.num_heads} must be a multiple of num_kv_heads={kv}")
        if self.head_dim is None and self.dim % self.num_heads:
            raise ValueError(f"dim={self.dim} must be divisible by num_heads={self.num_heads}")
        if self.causal and self.shift:
            raise ValueError("shift=True is for a bidirectional network adapted from a causal one")
        if self.rope_scaling is not None:
            kind = self.rope_scaling.get("rope_type", self.rope_scaling.get("type"))
            if kind not in ROPE_TYPES:
                raise ValueError(f"rope_scaling type {kind!r} is not supported; supported: {list(ROPE_TYPES)}")

    def to_kwargs(self) -> dict:
        return asdict(self)


def rope_inv_freq(head_dim: int, theta: float, scaling: dict | None = None) -> torch.Tensor:
    """Inverse frequencies (D/2,) of RoPE, computed as Hugging Face's ``ROPE_INIT_FUNCTIONS`` do for the
    default, linear and llama3 types (so that logits match theirs to float rounding)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    kind = None if scaling is None else scaling.get("rope_type", scaling.get("type"))
    if kind in (None, "default"):
        return inv_freq
    factor = float(scaling["factor"])
    if kind == "linear":
        return inv_freq / factor
    # llama3: long wavelengths slowed by ``factor``, short ones kept, a smooth blend between
    low, high = float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])
    old_len = float(scaling["original_max_position_embeddings"])
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low) / (high - low)
    blended = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < old_len / high) * ~(wavelen > old_len / low)
    return torch.where(medium, blended, scaled)


class RMSNorm(nn.Module):
    """x / rms(x) * weight, the normalisation in float32 (as LLaMA, Qwen2 and LLaDA compute it)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x))."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.gate = nn.Linear(dim, hidden, bias=False)
        self.up = nn.Linear(dim, hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class GQAttention(nn.Module):
    """Grouped-query attention: H query heads share G key/value heads (G divides H). The KV cache
    holds the G heads, H / G times less than the queries would need."""

    def __init__(self, dim: int, num_heads: int, num_kv_heads: int, head_dim: int, qkv_bias: bool):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, head_dim
        self.q = nn.Linear(dim, num_heads * head_dim, bias=qkv_bias)
        self.k = nn.Linear(dim, num_kv_heads * head_dim, bias=qkv_bias)
        self.v = nn.Linear(dim, num_kv_heads * head_dim, bias=qkv_bias)
        self.o = nn.Linear(num_heads * head_dim, dim, bias=False)

    def forward(self, x: torch.Tensor, rope, attn_mask: torch.Tensor | None, is_causal: bool,
                cache: KVCache | None, layer_idx: int, update_cache: bool) -> torch.Tensor:
        """x (B, L, C) -> (B, L, C); attn_mask bool (B|1, 1, L, S), True = may attend."""
        q = rearrange(self.q(x), "b l (h d) -> b h l d", h=self.num_heads)
        k = rearrange(self.k(x), "b l (g d) -> b g l d", g=self.num_kv_heads)
        v = rearrange(self.v(x), "b l (g d) -> b g l d", g=self.num_kv_heads)
        q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        k, v = with_cached(cache, layer_idx, k, v, update_cache)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal and attn_mask is None,
                                             enable_gqa=self.num_kv_heads != self.num_heads)  # (B, H, L, D)
        return self.o(rearrange(out, "b h l d -> b l (h d)"))


class DecoderBlock(nn.Module):
    """Pre-norm: x + attn(norm(x)), then + mlp(norm(x))."""

    def __init__(self, cfg: DecoderConfig, head_dim: int):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.attn = GQAttention(cfg.dim, cfg.num_heads, cfg.num_kv_heads or cfg.num_heads, head_dim, cfg.qkv_bias)
        self.mlp_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.mlp = SwiGLU(cfg.dim, cfg.mlp_hidden)

    def forward(self, x, rope, attn_mask, is_causal, cache, layer_idx, update_cache):
        x = x + self.attn(self.attn_norm(x), rope, attn_mask, is_causal, cache, layer_idx, update_cache)
        return x + self.mlp(self.mlp_norm(x))


class DecoderLM(nn.Module):
    """Token ids -> logits over the vocabulary, with the zoo's LM contract (see ``forward``).

    Build it on the meta device (``with torch.device("meta")``) to count parameters or to fill it from
    a checkpoint without allocating twice (``zoo.public``); ``reset_parameters`` gives random weights.
    """

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        self.vocab_size, self.max_seq_len = cfg.vocab_size, cfg.max_seq_len
        self.causal, self.shift = cfg.causal, cfg.shift
        self.future_visibility = 1.0  # < 1 only while adapting (zoo.callbacks.AttentionAnnealing); not saved
        self.head_dim = cfg.head_dim or cfg.dim // cfg.num_heads
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.blocks = nn.ModuleList(DecoderBlock(cfg, self.head_dim) for _ in range(cfg.depth))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.head.weight = self.embed.weight

    def reset_parameters(self, std: float = 0.02, generator: torch.Generator | None = None) -> "DecoderLM":
        """Random weights: N(0, std) for matrices and embeddings, small random norm weights and biases
        (non-trivial, so a parity test sees a wrong norm or bias)."""
        for name, p in self.named_parameters():
            with torch.no_grad():
                if p.dim() == 1 and name.endswith("weight"):  # a norm's gain
                    p.copy_(1 + 0.1 * torch.randn(p.shape, generator=generator))
                else:
                    p.copy_(std * torch.randn(p.shape, generator=generator))
        return self

    def rope(self, positions: torch.Tensor, device) -> tuple[torch.Tensor, torch.Tensor]:
        inv_freq = rope_inv_freq(self.head_dim, self.cfg.rope_theta, self.cfg.rope_scaling).to(device)
        return rope_tables(positions, self.head_dim, inv_freq=inv_freq)

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None, cond=None,
                valid: torch.Tensor | None = None, cache: KVCache | None = None,
                update_cache: bool = False, positions: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, L) token ids -> logits (B, L, V), in float32 whatever the weights' dtype.

        valid (B, S): False on (left) padding over all S = cached + L keys; positions then count from
            each row's first valid token. cache: keys/values of earlier tokens, read in front of x,
            appended to when ``update_cache``. positions (B|1, L): explicit positions. t and cond are
            unused (the share of mask tokens tells a masked-diffusion LM its time).
        """
        l = x.shape[1]
        past = cache.length if cache is not None else 0
        rope = self.rope(token_positions(x, valid, past, self.max_seq_len, positions), x.device)
        # Causal without padding or a past: SDPA's own causal kernel; otherwise an explicit mask (annealed
        # from causal to full while a causal checkpoint is adapted to diffusion).
        fused_causal = self.causal and valid is None and past == 0
        mask = None if fused_causal else annealed_mask(valid, l, past + l, self.causal, self.future_visibility,
                                                       device=x.device)
        h = self.embed(x)  # (B, L, C)
        for i, block in enumerate(self.blocks):
            h = block(h, rope, mask, fused_causal and l > 1, cache, i, update_cache)
        return self.head(self.norm(h)).float()  # (B, L, V)

    @property
    def predicts_next(self) -> bool:
        """The logit at i is about token i + 1 (a causal model, or a shifted one adapted from it)."""
        return self.causal or self.shift
