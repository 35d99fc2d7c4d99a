"""The xAR transformer: one network that both reads the context and predicts the velocity.

As in the reference, there is no separate MLP head (MAR's DiffLoss): every token's output is its own
velocity. Class and time enter through adaLN-Zero, and the time is per token, since under noisy context
learning every entity carries its own noise level. Positions are learned, one embedding per slot of the
partition (a latent position; a position within a level for ``scale``). Attention follows the
partition's block-causal mask; with a KV cache the finished entities' keys are kept, so a new entity is
run on its own.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from models.xar.partitions import Partition
from zoo.nn import AdaLNZero, KVCache, TimestepEmbedding, TransformerBlock, modulate, run_blocks


class NextXTransformer(nn.Module):
    """Args:
        latent_channels, grid: the latent is (latent_channels, grid, grid).
        num_classes: class labels 0..C-1 (C is the null class of guidance).
        partition, partition_size: the X (models/xar/partitions.py).
        dim, depth, num_heads, mlp_ratio: transformer size.
    """

    def __init__(self, latent_channels: int, grid: int, num_classes: int, partition: str, partition_size: int,
                 dim: int, depth: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.latent_channels, self.grid, self.num_classes = latent_channels, grid, num_classes
        self.partition = Partition(partition, grid, partition_size)
        self.x_in = nn.Linear(latent_channels, dim)
        self.pos_emb = nn.Parameter(torch.randn(self.partition.num_slots, dim) * 0.02)
        self.time_emb = TimestepEmbedding(dim)
        self.class_emb = nn.Embedding(num_classes + 1, dim)
        nn.init.normal_(self.class_emb.weight, std=0.02)
        self.blocks = nn.ModuleList(TransformerBlock(dim, num_heads, mlp_ratio, cond_dim=dim) for _ in range(depth))
        self.final_norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.final_ada = AdaLNZero(dim, dim, 2)
        self.out = nn.Linear(dim, latent_channels)
        nn.init.normal_(self.out.weight, std=0.02)  # small, not zero: see models/meshcraft/dit.py
        nn.init.zeros_(self.out.bias)

    def drop_cond(self, cond: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
        """Rows ``drop`` (B,) get the null class."""
        return torch.where(drop, torch.full_like(cond, self.num_classes), cond)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, slots: torch.Tensor | None = None,
                attn_mask: torch.Tensor | None = None, cache: KVCache | None = None,
                update_cache: bool = False) -> torch.Tensor:
        """Tokens x (B, L, C) at times t (B, L) or (B,) (1 = clean), labels cond (B,) -> velocities (B, L, C).

        slots (L,): the tokens' position slots; by default the partition's whole sequence, with its
        block-causal mask. attn_mask (L, S) bool, True = may attend, over the cached keys then the L
        new ones; None with a cache lets the new tokens see everything (a new entity and its past).
        """
        b, length, _ = x.shape
        if slots is None:
            if length != self.partition.num_tokens:
                raise ValueError(f"{length} tokens; the {self.partition.kind} partition has "
                                 f"{self.partition.num_tokens} (pass slots for a part of it)")
            slots = self.partition.token_slot.to(x.device)
            if attn_mask is None and cache is None:
                attn_mask = self.partition.block_causal_mask(x.device)
        if cond.min() < 0 or cond.max() > self.num_classes:
            raise ValueError(f"class labels must lie in [0, {self.num_classes}] ({self.num_classes} = none)")
        if t.dim() == 2:  # per-token times (training, a fused cache pass): per-token modulation
            t = t.expand(b, length)
            c = self.time_emb(t.reshape(-1)).view(b, length, -1) + self.class_emb(cond)[:, None]  # (B, L, dim)
        else:  # one time a row (sampling): modulation computed once a row, not once a token
            c = self.time_emb(t.expand(b)) + self.class_emb(cond)  # (B, dim)
        h = self.x_in(x.to(self.x_in.weight.dtype)) + self.pos_emb[slots]
        mask = None if attn_mask is None else attn_mask[None, None]
        h = run_blocks(self.blocks, h, None, mask, c, cache=cache, update_cache=update_cache)
        shift, scale = self.final_ada(c)
        return self.out(modulate(self.final_norm(h), shift, scale))
