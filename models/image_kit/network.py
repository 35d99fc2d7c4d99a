"""A class-conditional causal transformer over a raster-ordered token grid (LlamaGen-style).

The class is a prefix embedding (index ``num_classes`` is the null class used for classifier-free
guidance), so the input sequence is [class, x_0, ..., x_{L-2}] and output i predicts token x_i.
``trunk`` (blocks + final norm) and ``head`` are separate so that a student network initialised from
this teacher (models/distilled_decoding) can feed its own input embeddings through them.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from zoo.nn import KVCache, TransformerBlock, causal_blocks, init_gpt_weights


class ImageARTransformer(nn.Module):
    """Args:
        num_codes: the tokenizer's codebook size K.
        num_classes: class labels 0..C-1 (C is the null class).
        seq_len: tokens per image L (the grid's h * w).
        dim, depth, num_heads, mlp_ratio: transformer size.
    """

    def __init__(self, num_codes: int, num_classes: int, seq_len: int, dim: int, depth: int, num_heads: int,
                 mlp_ratio: float = 4.0):
        super().__init__()
        self.num_codes, self.num_classes, self.seq_len = num_codes, num_classes, seq_len
        self.head_dim = dim // num_heads
        self.tok_emb = nn.Embedding(num_codes, dim)
        self.cls_emb = nn.Embedding(num_classes + 1, dim)
        self.blocks = nn.ModuleList(TransformerBlock(dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_codes)
        self.apply(init_gpt_weights)

    def class_embedding(self, cond: torch.Tensor | None, batch_size: int, device) -> torch.Tensor:
        """(B, 1, dim) for labels (B,); None means the null class for every row."""
        if cond is None:
            cond = torch.full((batch_size,), self.num_classes, dtype=torch.long, device=device)
        if cond.min() < 0 or cond.max() > self.num_classes:
            raise ValueError(f"class labels must lie in [0, {self.num_classes}] ({self.num_classes} = none); "
                             f"got {cond.min().item()}..{cond.max().item()}")
        return self.cls_emb(cond)[:, None]

    def trunk(self, h: torch.Tensor, cache: KVCache | None = None, update_cache: bool = False) -> torch.Tensor:
        """Input embeddings (B, L, dim) at positions cache.length.. -> normed hidden states (B, L, dim)."""
        return self.norm(causal_blocks(self.blocks, h, self.head_dim, self.seq_len, cache, update_cache))

    def forward(self, x: torch.Tensor, t=None, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens x (B, L) and labels cond (B,) -> logits (B, L, K); logits[:, i] scores x_i given x_<i."""
        b, l = x.shape
        h = torch.cat([self.class_embedding(cond, b, x.device), self.tok_emb(x[:, :-1])], 1)  # (B, L, dim)
        return self.head(self.trunk(h))
