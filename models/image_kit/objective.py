"""Class-conditional next-token prediction over token grids, with classifier-free guidance.

Training drops the label (to the null class) with probability ``label_dropout``; sampling runs the
conditional and unconditional rows in one batch and mixes their logits,
``l = l_u + guidance_scale * (l_c - l_u)`` (LlamaGen), one token per network evaluation with a KV cache.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from models.image_kit.network import ImageARTransformer
from zoo.checks import check_float
from zoo.nn import KVCache
from zoo.objectives.base import LossOutput, Sample
from zoo.objectives.autoregressive import bits_per_token, decode


class ClassConditionalAR:
    """Args:
        label_dropout: share of training rows whose label is replaced by the null class (for CFG).
    """

    def __init__(self, label_dropout: float = 0.1):
        if not 0 <= label_dropout < 1:
            raise ValueError(f"label_dropout={label_dropout} must lie in [0, 1)")
        self.label_dropout = label_dropout

    def loss(self, net: ImageARTransformer, x1: torch.Tensor, cond: torch.Tensor,
             generator: torch.Generator | None = None) -> LossOutput:
        drop = torch.rand(cond.shape, generator=generator, device=cond.device) < self.label_dropout
        cond = torch.where(drop, torch.full_like(cond, net.num_classes), cond)
        logits = net(x1, None, cond).float()
        loss = F.cross_entropy(logits.transpose(1, 2), x1)
        return LossOutput(loss, {"nll_bpt": loss.detach() / math.log(2)})

    @torch.no_grad()
    def evaluate(self, net: ImageARTransformer, dataloader, **unused) -> dict:
        """Exact class-conditional NLL in bits per token (no label dropout, no guidance)."""
        return bits_per_token((net(batch["x1"], None, batch["cond"]), batch["x1"], None) for batch in dataloader)

    def sample(self, *args, **kwargs):
        """``image_ar_sample`` (the sampler lives apart from the loss; this keeps the objective contract)."""
        return image_ar_sample(*args, **kwargs)

    @torch.no_grad()
    def nll(self, net: ImageARTransformer, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-image NLL in bits per token of ``tokens`` (B, L) under the class-conditional model. (B,)"""
        logits = net(tokens, None, labels).float()
        ce = F.cross_entropy(logits.transpose(1, 2), tokens, reduction="none")
        return ce.mean(1) / math.log(2)


@torch.no_grad()
def image_ar_sample(net: ImageARTransformer, labels: torch.Tensor, guidance_scale: float = 1.0,
                    temperature: float = 1.0, generator: torch.Generator | None = None,
                    pick: Callable[[int, torch.Tensor], torch.Tensor] | None = None) -> Sample:
    """Tokens (B, L) for labels (B,), raster order, one NFE per token.

    pick(i, probs (B, K)) -> tokens (B,) replaces sampling at position i (the distilled-decoding
    pair generator passes its flow map here); by default tokens are drawn at ``temperature``.
    """
    guidance_scale = check_float("guidance_scale", guidance_scale)
    rows = torch.cat([labels, torch.full_like(labels, net.num_classes)]) if guidance_scale != 1.0 else labels
    cache = KVCache()

    def step(token):  # the class prefix first, then each token; (B or 2B, K)
        h = net.class_embedding(rows, rows.shape[0], rows.device) if token is None else net.tok_emb(token)[:, None]
        return net.head(net.trunk(h, cache, update_cache=True)[:, -1])

    choose = None if pick is None else (lambda i, logits: pick(i, torch.softmax(logits / max(temperature, 1e-8), -1)))
    out = decode(step, net.seq_len, temperature=temperature, generator=generator, guidance_scale=guidance_scale,
                 choose=choose)
    return Sample(out.tokens, nfe=out.nfe)
