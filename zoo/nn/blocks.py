"""Transformer block (plain or adaLN-Zero modulated, i.e. a DiT block), timestep embedding, masks."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from zoo.nn.attention import Attention, KVCache, rope_tables


def init_gpt_weights(m: nn.Module) -> None:
    """GPT-2-style init for ``net.apply``: N(0, 0.02) for linear and embedding weights, zero biases."""
    if isinstance(m, (nn.Linear, nn.Embedding)):
        nn.init.normal_(m.weight, std=0.02)
    if isinstance(m, nn.Linear) and m.bias is not None:
        nn.init.zeros_(m.bias)


class TimestepEmbedding(nn.Module):
    """t in [0, 1] (B,) -> (B, dim): sinusoidal features of 1000 t, then a 2-layer MLP (DiT)."""

    def __init__(self, dim: int, freq_dim: int = 256, max_period: float = 10000.0):
        super().__init__()
        self.freq_dim = freq_dim
        self.max_period = max_period
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(self.max_period) * torch.arange(half, device=t.device) / half)
        args = 1000.0 * t.float()[:, None] * freqs[None]  # (B, half), in float32 whatever the weights' dtype
        return self.mlp(torch.cat([args.cos(), args.sin()], -1).to(self.mlp[0].weight.dtype))


class AdaLNZero(nn.Module):
    """Maps a condition vector (B, C) to n modulation tensors (B, 1, dim), or per-token conditions
    (B, L, C) to (B, L, dim) each (a model whose tokens carry their own time, as xAR's); zero-initialised
    so a modulated block starts as the identity (DiT's adaLN-Zero)."""

    def __init__(self, cond_dim: int, dim: int, n: int):
        super().__init__()
        self.n = n
        self.linear = nn.Linear(cond_dim, n * dim)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        h = self.linear(nn.functional.silu(c))
        return (h[:, None] if c.dim() == 2 else h).chunk(self.n, dim=-1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class TransformerBlock(nn.Module):
    """Pre-norm attention + MLP. With ``cond_dim`` it is a DiT block: the norms carry no affine
    parameters and shift/scale/gate come from the condition through adaLN-Zero."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, cond_dim: int | None = None):
        super().__init__()
        affine = cond_dim is None
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=affine)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=affine)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.ada = AdaLNZero(cond_dim, dim, 6) if cond_dim is not None else None

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None, rope=None,
                attn_mask: torch.Tensor | None = None, is_causal: bool = False,
                cache: KVCache | None = None, layer_idx: int = 0, update_cache: bool = False):
        """x (B, L, dim); c (B, cond_dim) or per token (B, L, cond_dim) when modulated."""
        attn_kw = dict(rope=rope, attn_mask=attn_mask, is_causal=is_causal, cache=cache,
                       layer_idx=layer_idx, update_cache=update_cache)
        if self.ada is None:
            x = x + self.attn(self.norm1(x), **attn_kw)
            return x + self.mlp(self.norm2(x))
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c)
        x = x + gate1 * self.attn(modulate(self.norm1(x), shift1, scale1), **attn_kw)
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))


def attention_mask(key_valid: torch.Tensor | None, query_len: int, num_keys: int, causal: bool,
                   device=None) -> torch.Tensor | None:
    """Bool mask (B|1, 1, L, S), True = may attend, for L queries that are the last L of S keys.

    key_valid (B, S): False on padding keys. Every query may attend to itself, so no row is empty
    (an empty row makes scaled_dot_product_attention return NaN). None when nothing is masked.
    """
    if key_valid is None and not causal:
        return None
    if key_valid is not None:
        device = key_valid.device
    q_pos = torch.arange(num_keys - query_len, num_keys, device=device)[:, None]  # (L, 1)
    k_pos = torch.arange(num_keys, device=device)[None]  # (1, S)
    mask = (k_pos <= q_pos) if causal else torch.ones(query_len, num_keys, dtype=torch.bool, device=device)
    mask = mask[None, None]  # (1, 1, L, S)
    if key_valid is not None:
        mask = mask & key_valid[:, None, None, :]
    return mask | (k_pos == q_pos)[None, None]


def annealed_mask(key_valid: torch.Tensor | None, query_len: int, num_keys: int, causal: bool,
                  future_visibility: float, device=None) -> torch.Tensor | None:
    """``attention_mask`` for a network being adapted from causal to bidirectional attention
    (DiffuLLaMA's annealing): with ``future_visibility`` < 1 a non-causal network sees every earlier
    key and each later key with that probability (drawn afresh each call, the same for the batch);
    at 1 it is the plain mask."""
    annealing = not causal and future_visibility < 1.0
    mask = attention_mask(key_valid, query_len, num_keys, causal or annealing, device=device)
    if annealing and future_visibility > 0.0:
        device = mask.device
        later = torch.rand(query_len, num_keys, device=device) < future_visibility  # (L, S)
        mask = mask | (later if key_valid is None else later & key_valid[:, None, None, :])
    return mask


def run_blocks(blocks, h: torch.Tensor, rope, attn_mask: torch.Tensor | None, *block_args, is_causal: bool = False,
               cache: KVCache | None = None, update_cache: bool = False) -> torch.Tensor:
    """The one loop over ``TransformerBlock``s: h (B, L, dim) -> (B, L, dim), every block given the same
    RoPE tables, mask and cache (layer i reads and, with ``update_cache``, appends its own keys/values).
    ``causal_blocks`` and ``bidirectional_blocks`` below are its two common set-ups; a network with its
    own positions (left padding, a masked-diffusion cache) calls it directly."""
    for i, block in enumerate(blocks):
        h = block(h, *block_args, rope=rope, attn_mask=attn_mask, is_causal=is_causal, cache=cache, layer_idx=i,
                  update_cache=update_cache)
    return h


def causal_blocks(blocks, h: torch.Tensor, head_dim: int, max_positions: int, cache: KVCache | None = None,
                  update_cache: bool = False, block_args: tuple = ()) -> torch.Tensor:
    """Plain ``TransformerBlock``s as a causal decoder: input embeddings h (B, L, dim) at positions
    cache.length.. (RoPE) -> hidden states (B, L, dim), before any final norm. More than
    ``max_positions`` positions in all (cached + new) raise a ValueError. ``block_args`` go to every
    block before the keywords (a decoder block's memory).

    Without a past, is_causal lets SDPA use its fused kernels (an explicit (L, L) mask would cost L^2
    memory); one new token may see every cached key, so it needs no mask; only several new tokens
    after a past (a prompt continued) get an explicit mask.
    """
    past = cache.length if cache is not None else 0
    l = h.shape[1]
    if past + l > max_positions:
        raise ValueError(f"{past + l} positions exceed the model's {max_positions}")
    rope = rope_tables(torch.arange(past, past + l, device=h.device)[None], head_dim)
    mask = attention_mask(None, l, past + l, causal=True, device=h.device) if past and l > 1 else None
    return run_blocks(blocks, h, rope, mask, *block_args, is_causal=not past and l > 1, cache=cache,
                      update_cache=update_cache)


def bidirectional_blocks(blocks, h: torch.Tensor, head_dim: int, mask: torch.Tensor | None, *block_args
                         ) -> torch.Tensor:
    """Blocks with full attention over a sequence or set: h (B, L, dim) at positions 0..L-1 (RoPE),
    ``mask`` (B, L) True on real elements (None: nothing padded, and SDPA gets no mask), ``block_args``
    passed to every block before the keywords (a DiT block's condition) -> (B, L, dim), before any
    final norm."""
    l = h.shape[1]
    rope = rope_tables(torch.arange(l, device=h.device)[None], head_dim)
    return run_blocks(blocks, h, rope, attention_mask(mask, l, l, causal=False, device=h.device), *block_args)
