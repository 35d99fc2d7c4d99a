"""Multi-head self-attention over scaled_dot_product_attention, with RoPE and a KV cache.

Shapes: B batch, L new tokens, S keys (cached + new), H heads, D head dim.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange


def rope_tables(positions: torch.Tensor, head_dim: int, base: float = 10000.0):
    """cos/sin tables for rotary embeddings. positions (B, L) or (L,) -> two (B|1, 1, L, D/2)."""
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head dim, got {head_dim}")
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
    """

    keys: list[torch.Tensor | None] = field(default_factory=list)
    values: list[torch.Tensor | None] = field(default_factory=list)

    def layer(self, i: int):
        while len(self.keys) <= i:
            self.keys.append(None)
            self.values.append(None)
        return self.keys[i], self.values[i]

    def set_layer(self, i: int, k: torch.Tensor, v: torch.Tensor) -> None:
        self.layer(i)
        self.keys[i], self.values[i] = k, v

    def select(self, index: torch.Tensor) -> "KVCache":
        """A new cache holding the key positions ``index`` (S',) of every layer, in that order."""
        return KVCache([k.index_select(2, index) for k in self.keys],
                       [v.index_select(2, index) for v in self.values])

    @property
    def length(self) -> int:
        return 0 if not self.keys or self.keys[0] is None else self.keys[0].shape[2]


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
        if cache is not None:
            k_old, v_old = cache.layer(layer_idx)
            if k_old is not None:
                k, v = torch.cat([k_old, k], 2), torch.cat([v_old, v], 2)
            if update_cache:
                cache.set_layer(layer_idx, k, v)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                             is_causal=is_causal and attn_mask is None)
        return self.proj(rearrange(out, "b h l d -> b l (h d)"))
