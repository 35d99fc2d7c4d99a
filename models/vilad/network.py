"""The planner network: a bird's-eye frame and tokens in, one logit row per token out.

A conv stem cuts the 64 x 64 RGB frame into an 8 x 8 grid of patch embeddings (64 image tokens, with
a learned position each); the context and decision tokens follow them in one sequence with RoPE
positions. Bidirectional (masked diffusion, ViLaD) or causal (the AR baseline, decoded with a KV
cache): the same weights' shapes either way. Like LLaDA the network takes no time input.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from zoo.nn import KVCache, TransformerBlock, bidirectional_blocks, causal_blocks, init_gpt_weights

FRAME, PATCH = 64, 8


class DrivingPlanner(nn.Module):
    """Args:
        vocab_size: the driving codec's vocabulary.
        num_tokens: context + decision tokens a sample holds (the positions after the image's).
        dim, depth, num_heads, mlp_ratio: transformer size.
        causal: causal attention (the AR baseline) instead of bidirectional (masked diffusion).
        use_image: read the frame; False gives a text-only planner (the ablation's without-image row).
        waypoint_codec: the decision template the tokens follow (driving_codec.TEMPLATES); kept for the
            pipeline, which decodes and parses by it.
    """

    def __init__(self, vocab_size: int, num_tokens: int, dim: int = 128, depth: int = 4, num_heads: int = 4,
                 mlp_ratio: float = 4.0, causal: bool = False, use_image: bool = True, waypoint_codec: str = "grid"):
        super().__init__()
        self.vocab_size, self.causal, self.use_image = vocab_size, causal, use_image
        self.waypoint_codec = waypoint_codec
        self.image_tokens = (FRAME // PATCH) ** 2 if use_image else 0
        self.max_seq_len = self.image_tokens + num_tokens
        self.head_dim = dim // num_heads
        if use_image:  # 64 -> 16 -> 8: two strided convolutions
            self.stem = nn.Sequential(nn.Conv2d(3, dim // 2, 4, stride=4), nn.GELU(),
                                      nn.Conv2d(dim // 2, dim, 2, stride=2))
            self.image_pos = nn.Parameter(torch.zeros(1, self.image_tokens, dim))
        self.tok_emb = nn.Embedding(vocab_size, dim)
        self.blocks = nn.ModuleList(TransformerBlock(dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight  # tied: saved once
        self.apply(init_gpt_weights)

    def embed_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, 64, 64, 3) uint8 -> (B, 64, dim) patch embeddings."""
        x = frames.permute(0, 3, 1, 2).to(self.tok_emb.weight.dtype) / 255.0
        return self.stem(x).flatten(2).transpose(1, 2) + self.image_pos

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None, cond: torch.Tensor | None = None,
                valid: torch.Tensor | None = None, cache: KVCache | None = None,
                update_cache: bool = False) -> torch.Tensor:
        """x (B, L) token ids, cond (B, 64, 64, 3) uint8 frames -> logits (B, L, V). cond may also be
        the frames' patch embeddings (B, 64, dim) from ``embed_frames``: a sampler that runs several
        passes over the same frames computes the conv stem once.

        The frame is read on the first pass only: with a cache that already holds it (the AR decoding
        loop), ``cond`` may be None. ``valid`` is accepted for the objectives' contract; nothing here
        is padded, so it must be None or all True."""
        if valid is not None and not bool(valid.all()):
            raise ValueError("valid: the planner's sequences are never padded")
        past = cache.length if cache is not None else 0
        h = self.tok_emb(x)
        if self.use_image and past == 0:
            if cond is None:
                raise ValueError("cond: the planner needs the frames (B, 64, 64, 3) on its first pass")
            embedded = cond.is_floating_point() and cond.dim() == 3
            h = torch.cat([cond.to(h.dtype) if embedded else self.embed_frames(cond), h], 1)
        if self.causal:
            h = causal_blocks(self.blocks, h, self.head_dim, self.max_seq_len, cache, update_cache)
        else:
            if cache is not None:
                raise ValueError("cache: the bidirectional planner decodes without a KV cache")
            h = bidirectional_blocks(self.blocks, h, self.head_dim, None)
        return self.head(self.norm(h[:, h.shape[1] - x.shape[1]:]))
