"""A transformer language model over tokens: bidirectional for masked diffusion, causal for AR.

Like LLaDA, the masked-diffusion network takes no time input: the share of [MASK] tokens in x_t
tells it how far along it is. It still accepts t to honour the zoo's ``net(x_t, t, cond)`` contract.

A masked-diffusion network adapted from an AR one (DiffuLLaMA, Dream, DiffuCoder) keeps the AR
model's shift: ``shift=True`` says the logit at position i predicts token i + 1, which the masked
objective and sampler honour (zoo.objectives.masked). While it adapts, ``future_visibility`` anneals
its attention from causal (0) to full (1): each query sees every earlier key and each later key with
that probability (DiffuLLaMA's random annealing mask), drawn afresh at every training forward.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from zoo.nn import KVCache, TransformerBlock, init_gpt_weights, rope_tables, run_blocks
from zoo.nn.blocks import annealed_mask
from zoo.nn.attention import token_positions


class TransformerLM(nn.Module):
    """Args:
        vocab_size: tokens, special tokens included.
        dim, depth, num_heads, mlp_ratio: transformer size.
        max_seq_len: the context; longer inputs raise.
        causal: causal attention (autoregressive) instead of bidirectional (masked diffusion).
        shift: (bidirectional only) the logit at i predicts token i + 1, as in the AR model it was
            adapted from.
    """

    def __init__(self, vocab_size: int, dim: int, depth: int, num_heads: int, max_seq_len: int,
                 causal: bool = False, mlp_ratio: float = 4.0, shift: bool = False):
        super().__init__()
        if causal and shift:
            raise ValueError("shift=True is for a bidirectional network adapted from a causal one; a causal "
                             "network predicts the next token already")
        self.vocab_size, self.max_seq_len, self.causal, self.shift = vocab_size, max_seq_len, causal, shift
        self.future_visibility = 1.0  # < 1 only while adapting (zoo.callbacks.AttentionAnnealing); not saved
        self.head_dim = dim // num_heads
        self.tok_emb = nn.Embedding(vocab_size, dim)
        self.blocks = nn.ModuleList(TransformerBlock(dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight  # tied: saved once in model.safetensors
        self.apply(init_gpt_weights)

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None, cond=None,
                valid: torch.Tensor | None = None, cache: KVCache | None = None,
                update_cache: bool = False, positions: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, L) token ids -> logits (B, L, V).

        valid (B, S): False on (left) padding over all S = cached + L keys; positions then count
            from each row's first valid token, so a padded prompt sees the same positions as alone.
        cache: keys/values of earlier tokens, read in front of x; appended to when update_cache.
        positions (B|1, L): explicit positions, overriding the above.
        """
        l = x.shape[1]
        past = cache.length if cache is not None else 0
        rope = rope_tables(token_positions(x, valid, past, self.max_seq_len, positions), self.head_dim)
        mask = annealed_mask(valid, l, past + l, self.causal, self.future_visibility, device=x.device)
        h = run_blocks(self.blocks, self.tok_emb(x), rope, mask, cache=cache, update_cache=update_cache)  # (B, L, D)
        return self.head(self.norm(h))  # (B, L, V)

    @property
    def predicts_next(self) -> bool:
        """The logit at i is about token i + 1 (a causal model, or a shifted one adapted from it)."""
        return self.causal or self.shift
