"""Multi-head self-attention over scaled_dot_product_attention, with RoPE and a KV cache.

Shapes: B batch, L new tokens, S keys (cached + new), H heads, D head dim.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange


def rope_tables(positions: torch.Tensor, head_dim: int, base: float = 10000.0, inv_freq: torch.Tensor | None = None):
    """cos/sin tables for rotary embeddings. positions (B, L) or (L,) -> two (B|1, 1, L, D/2).
    ``inv_freq`` (D/2,): the frequencies, when a model computes its own (a scaled RoPE); else from ``base``."""
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head dim, got {head_dim}")
    if inv_freq is None:
        inv_freq = base ** (-torch.arange(0, head_dim, 2, device=positions.device).float() / head_dim)
    angles = positions.float()[..., None] * inv_freq  # (..., L, D/2)
    if angles.dim() == 2:
        angles = angles[None]
    return angles.cos()[:, None], angles.sin()[:, None]


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x[..., :D/2], x[..., D/2:]) of x (B, H, L, D)."""
    x1, x2 = x.float().chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1).to(x.dtype)


@dataclass
class KVCache:
    """Keys and values per layer, (B, H, S, D) each.

    ``Attention`` reads the cached keys in front of the new ones; it appends the new ones only when
    asked (autoregressive decoding), so a masked-diffusion sampler can reuse a prefix without growing it.
    Each layer keeps its keys in a buffer of spare capacity that doubles when full: appending one token
    copies that token only, where growing by torch.cat would copy the whole cache at every token.
    """

    buffers: list[tuple[torch.Tensor, torch.Tensor] | None] = field(default_factory=list)  # (B, H, capacity, D)
    lengths: list[int] = field(default_factory=list)  # positions filled in each layer's buffer

    def layer(self, i: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Layer i's keys and values, (B, H, S, D) views of its buffers, or (None, None) when empty."""
        if i >= len(self.buffers) or self.buffers[i] is None:
            return None, None
        k, v = self.buffers[i]
        return k[:, :, :self.lengths[i]], v[:, :, :self.lengths[i]]

    def append(self, i: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Adds (B, H, L, D) keys and values to layer i; returns all of the layer's, (B, H, S + L, D)."""
        while len(self.buffers) <= i:
            self.buffers.append(None)
            self.lengths.append(0)
        n, new = self.lengths[i], k.shape[2]
        if self.buffers[i] is None:  # the first write (a prompt, a prefix) gets exactly its size
            self.buffers[i] = (k.new_empty(k.shape), v.new_empty(v.shape))
        elif n + new > self.buffers[i][0].shape[2]:
            capacity = max(n + new, 2 * self.buffers[i][0].shape[2])
            old_k, old_v = self.layer(i)
            grown_k = k.new_empty(*k.shape[:2], capacity, k.shape[3])
            grown_v = v.new_empty(*v.shape[:2], capacity, v.shape[3])
            grown_k[:, :, :n], grown_v[:, :, :n] = old_k, old_v
            self.buffers[i] = (grown_k, grown_v)
        buf_k, buf_v = self.buffers[i]
        buf_k[:, :, n:n + new], buf_v[:, :, n:n + new] = k, v
        self.lengths[i] = n + new
        return self.layer(i)

    def truncate(self, length: int) -> None:
        """Keeps the first ``length`` positions of every layer (a pass that appended more keys than it
        should keep: the buffers stay, only the lengths drop)."""
        longest = max(self.lengths, default=0)
        if length < 0 or length > longest:
            raise ValueError(f"cannot truncate a cache of {longest} positions to {length}")
        self.lengths = [min(n, length) for n in self.lengths]

    def select(self, index: torch.Tensor) -> "KVCache":
        """A new cache holding the key positions ``index`` (S',) of every layer, in that order."""
        layers = [self.layer(i) for i in range(len(self.buffers))]
        return KVCache([None if k is None else (k.index_select(2, index), v.index_select(2, index))
                        for k, v in layers], [0 if k is None else len(index) for k, _ in layers])

    def select_rows(self, rows: torch.Tensor) -> "KVCache":
        """A new cache holding the batch rows ``rows`` (B',) of every layer, all their positions: a
        batch that drops the rows it has finished decoding."""
        return KVCache([None if b is None else (b[0].index_select(0, rows), b[1].index_select(0, rows))
                        for b in self.buffers], list(self.lengths))

    @property
    def length(self) -> int:
        return self.lengths[0] if self.lengths else 0


def with_cached(cache: KVCache | None, layer_idx: int, k: torch.Tensor, v: torch.Tensor, update_cache: bool):
    """The keys and values new queries attend to: layer ``layer_idx``'s cached ones (B, H, S - L, D) in
    front of the new (B, H, L, D), appended to the cache when ``update_cache``."""
    if cache is not None and update_cache:
        return cache.append(layer_idx, k, v)
    if cache is not None:
        k_old, v_old = cache.layer(layer_idx)
        if k_old is not None:
            return torch.cat([k_old, k], 2), torch.cat([v_old, v], 2)
    return k, v


def token_positions(x: torch.Tensor, valid: torch.Tensor | None, past: int, max_seq_len: int,
                    positions: torch.Tensor | None = None) -> torch.Tensor:
    """RoPE positions (B|1, L) of the L tokens x (B, L) that follow ``past`` cached ones: counted from each
    row's first valid token when ``valid`` (B, S) marks left padding, so a padded prompt sees the same
    positions as alone; ``positions`` when given. More than ``max_seq_len`` tokens in all raise."""
    l = x.shape[1]
    if past + l > max_seq_len:
        raise ValueError(f"{past + l} tokens exceed the model's context of {max_seq_len}")
    if positions is not None:
        return positions
    if valid is not None:
        return (valid.long().cumsum(1) - 1).clamp(min=0)[:, past:]
    return torch.arange(past, past + l, device=x.device)[None]


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, bias: bool = False):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.proj = nn.Linear(dim, dim, bias=bias)

    def forward(self, x: torch.Tensor, rope=None, attn_mask: torch.Tensor | None = None,
                is_causal: bool = False, cache: KVCache | None = None, layer_idx: int = 0,
                update_cache: bool = False) -> torch.Tensor:
        """x (B, L, C) -> (B, L, C).

        rope: (cos, sin) tables for the L new positions. attn_mask: bool (B|1, 1, L, S), True = may
        attend. is_causal applies only without a cache (with one, pass the mask explicitly).
        """
        q, k, v = rearrange(self.qkv(x), "b l (three h d) -> three b h l d", three=3, h=self.num_heads)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        k, v = with_cached(cache, layer_idx, k, v, update_cache)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                             is_causal=is_causal and attn_mask is None)
        return self.proj(rearrange(out, "b h l d -> b l (h d)"))
