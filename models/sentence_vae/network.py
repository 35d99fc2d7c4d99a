"""SentenceVAE's networks: a sentence autoencoder (tokens -> one vector -> tokens) and the sentence-level
LM over those vectors.

Token layout of one sentence, ``length`` = n + 1 ids: ``[t1 .. tn, EOS]`` then padding. The decoder
reads ``[EOS, t1 .. tn]`` (EOS doubles as the start token, as in the token baseline) and predicts
``[t1 .. tn, EOS]``; right padding never reaches a real position under the causal mask.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.nn import (Attention, KVCache, bidirectional_blocks, causal_blocks, init_gpt_weights, rope_tables, run_blocks,
                    TransformerBlock)

POOLINGS = ("sum", "mean", "learned")
PAD_ID, EOS_ID = 0, 1  # <|pad|>, <|eos|> in datamodules/stdlib_code.py's tokenizers (the prose corpus uses the same)


def length_groups(lengths: torch.Tensor, groups: int) -> list[tuple[torch.Tensor, int]]:
    """Rows sorted by length and cut into up to ``groups`` equal groups: (row indices, the group's longest
    length) each. Sentences run 4 to 31 ids, so a batch padded to its longest wastes over half its work;
    each group padded to its own longest wastes little."""
    order = lengths.argsort()
    return [(idx, int(lengths[idx].max())) for idx in order.chunk(max(1, min(groups, len(order)))) if len(idx)]


def shifted_input(tokens: torch.Tensor, start_id: int) -> torch.Tensor:
    """(..., T) sentence ids -> the decoder's input (..., T): start token, then all but the last."""
    start = torch.full_like(tokens[..., :1], start_id)
    return torch.cat([start, tokens[..., :-1]], -1)


class DecoderBlock(nn.Module):
    """Causal self-attention, cross-attention to the memory, MLP (pre-norm).

    The memory is one vector per sentence, as in the reference; a softmax over one key is 1, so the
    cross-attention's queries and keys drop out exactly and it reduces to ``proj(value(memory))``,
    added at every position. That is what this block computes (no dead query/key weights), in two
    parts: ``memory_term`` once per sentence, then ``forward`` adds it at every decoding step."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.cross_value = nn.Linear(dim, dim, bias=False)
        self.cross_proj = nn.Linear(dim, dim, bias=False)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))

    def memory_term(self, memory: torch.Tensor) -> torch.Tensor:
        """memory (B, dim) -> the cross-attention's output (B, 1, dim), the same at every position."""
        return self.cross_proj(self.cross_value(memory))[:, None]

    def forward(self, x: torch.Tensor, memory_terms: list[torch.Tensor], rope=None, attn_mask=None,
                is_causal: bool = False, cache: KVCache | None = None, layer_idx: int = 0,
                update_cache: bool = False) -> torch.Tensor:
        """x (B, L, dim), memory_terms: every decoder layer's ``memory_term`` (B, 1, dim) -> (B, L, dim)."""
        x = x + self.attn(self.norm1(x), rope=rope, attn_mask=attn_mask, is_causal=is_causal, cache=cache,
                          layer_idx=layer_idx, update_cache=update_cache)
        x = x + memory_terms[layer_idx]
        return x + self.mlp(self.norm2(x))


class SentenceAutoencoder(nn.Module):
    """Args:
        vocab_size: tokens, special tokens included; eos_id ends a sentence and starts the decoder.
        dim, num_heads, mlp_ratio: width of every part.
        encoder_depth, decoder_depth: transformer layers of each side.
        max_sentence_len: tokens of a sentence, EOS included.
        pooling: sum (the reference: a plain sum over real tokens), mean, or learned (softmax weights
            from a learned score per token); then LayerNorm.
        variational: a real VAE: the pooled vector gives a mean and log-variance, a sample is decoded
            during training and the objective adds a KL term; the mean is the sentence's vector.
    """

    def __init__(self, vocab_size: int, dim: int, encoder_depth: int, decoder_depth: int, num_heads: int,
                 max_sentence_len: int, eos_id: int, pooling: str = "sum", variational: bool = False,
                 mlp_ratio: float = 4.0):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; one of {POOLINGS}")
        self.vocab_size, self.dim, self.max_sentence_len, self.eos_id = vocab_size, dim, max_sentence_len, eos_id
        self.pooling, self.variational = pooling, variational
        self.head_dim = dim // num_heads
        self.tok_emb = nn.Embedding(vocab_size, dim)  # shared by encoder, decoder and the output head
        self.encoder = nn.ModuleList(TransformerBlock(dim, num_heads, mlp_ratio) for _ in range(encoder_depth))
        self.pool_score = nn.Linear(dim, 1) if pooling == "learned" else None
        self.pool_norm = nn.LayerNorm(dim)
        self.posterior = nn.Linear(dim, 2 * dim) if variational else None
        self.decoder = nn.ModuleList(DecoderBlock(dim, num_heads, mlp_ratio) for _ in range(decoder_depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight
        self.apply(init_gpt_weights)

    def check_tokens(self, tokens: torch.Tensor) -> None:
        if tokens.shape[-1] > self.max_sentence_len:
            raise ValueError(f"sentences of {tokens.shape[-1]} tokens exceed the model's {self.max_sentence_len}")
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}); got {tokens.min()}..{tokens.max()}")

    def posterior_params(self, tokens: torch.Tensor, length: torch.Tensor, groups: int = 1
                         ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """tokens (N, T), length (N,) >= 1 -> the sentence vector (N, dim) and, when variational, its
        log-variance (N, dim). Padding never reaches the vector (masked attention and pooling), so
        ``groups`` > 1 (``length_groups``) gives the same vectors for less work."""
        if groups > 1:
            mean = torch.empty(tokens.shape[0], self.dim, device=tokens.device, dtype=self.tok_emb.weight.dtype)
            logvar = torch.empty_like(mean) if self.variational else None
            for idx, width in length_groups(length, groups):
                mean[idx], part = self.posterior_params(tokens[idx, :width], length[idx])
                if logvar is not None:
                    logvar[idx] = part
            return mean, logvar
        self.check_tokens(tokens)
        real = torch.arange(tokens.shape[1], device=tokens.device)[None] < length[:, None]  # (N, T)
        h = bidirectional_blocks(self.encoder, self.tok_emb(tokens), self.head_dim, real)  # (N, T, dim)
        if self.pooling == "learned":
            score = self.pool_score(h).squeeze(-1).masked_fill(~real, float("-inf"))
            pooled = (score.softmax(-1)[..., None] * h).sum(1)
        else:
            pooled = (h * real[..., None]).sum(1)
            if self.pooling == "mean":
                pooled = pooled / length[:, None].clamp(min=1)
        z = self.pool_norm(pooled)  # (N, dim)
        if self.posterior is None:
            return z, None
        mean, logvar = self.posterior(z).chunk(2, -1)
        return mean, logvar.clamp(-10.0, 5.0)

    def encode(self, tokens: torch.Tensor, length: torch.Tensor, groups: int = 1) -> torch.Tensor:
        """tokens (N, T), length (N,) -> one vector per sentence (N, dim) (the posterior mean); with
        ``groups`` > 1 computed in length groups (``length_groups``), the same vectors for less work."""
        return self.posterior_params(tokens, length, groups)[0]

    def memory_terms(self, memory: torch.Tensor) -> list[torch.Tensor]:
        """memory (N, dim) -> each decoder layer's cross-attention output (N, 1, dim): computed once per
        sentence, not at every decoding step."""
        return [block.memory_term(memory) for block in self.decoder]

    def decode_logits(self, memory: torch.Tensor, tokens_in: torch.Tensor, cache: KVCache | None = None,
                      update_cache: bool = False, memory_terms: list[torch.Tensor] | None = None) -> torch.Tensor:
        """memory (N, dim), the decoder's input ids (N, L) at positions cache.length.. -> logits (N, L, V).
        ``memory_terms``: ``self.memory_terms(memory)`` kept from an earlier step of the same sentences."""
        terms = self.memory_terms(memory) if memory_terms is None else memory_terms
        h = causal_blocks(self.decoder, self.tok_emb(tokens_in), self.head_dim, self.max_sentence_len, cache,
                          update_cache, block_args=(terms,))
        return self.head(self.norm(h))

    def decode_step(self, tokens_in: torch.Tensor, position: int, key_valid: torch.Tensor, cache: KVCache,
                    memory_terms: list[torch.Tensor]) -> torch.Tensor:
        """One decoding step of rows that share the cache but not their sentences' starts: ids (N,) at
        RoPE position ``position``, key_valid (N, cache.length + 1) True on the keys of each row's own
        sentence (the new one last) -> logits (N, V); appends the step's keys to the cache. RoPE sees
        only offsets between positions, so a sentence begun at any position decodes as one begun at 0
        when the keys before it are masked out."""
        rope = rope_tables(torch.tensor([position], device=tokens_in.device), self.head_dim)
        h = run_blocks(self.decoder, self.tok_emb(tokens_in[:, None]), rope, key_valid[:, None, None], memory_terms,
                       cache=cache, update_cache=True)
        return self.head(self.norm(h))[:, -1]

    def forward(self, tokens: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
        """Teacher-forced reconstruction through the posterior mean: tokens (N, T) -> logits (N, T, V)."""
        return self.decode_logits(self.encode(tokens, length), shifted_input(tokens, self.eos_id))


class SentenceLM(nn.Module):
    """The sentence autoencoder plus a causal transformer over sentence vectors. Sentence i's vector
    goes in at position i; the output there, mapped to the decoder's memory, is decoded into sentence
    i + 1 (the reference's layout), and a 2-way head says whether a sentence follows (0) or the text
    stops (1). Strictly causal: position i attends to positions <= i only.

    Args: the autoencoder's, plus lm_depth (layers over sentences) and max_sentences (the LM's context).
    """

    trained_outside_forward = ("stop_head.weight", "stop_head.bias")  # forward returns the token logits only

    def __init__(self, vocab_size: int, dim: int, encoder_depth: int, decoder_depth: int, num_heads: int,
                 max_sentence_len: int, eos_id: int, lm_depth: int, max_sentences: int, pooling: str = "sum",
                 variational: bool = False, mlp_ratio: float = 4.0):
        super().__init__()
        self.autoencoder = SentenceAutoencoder(vocab_size, dim, encoder_depth, decoder_depth, num_heads,
                                               max_sentence_len, eos_id, pooling, variational, mlp_ratio)
        self.max_sentences, self.head_dim = max_sentences, dim // num_heads
        self.lm_in = nn.Linear(dim, dim)
        self.lm = nn.ModuleList(TransformerBlock(dim, num_heads, mlp_ratio) for _ in range(lm_depth))
        self.lm_norm = nn.LayerNorm(dim)
        self.to_memory = nn.Linear(dim, dim)
        self.stop_head = nn.Linear(dim, 2)
        for module in (self.lm_in, self.lm, self.to_memory, self.stop_head):
            module.apply(init_gpt_weights)

    @property
    def vocab_size(self) -> int:
        return self.autoencoder.vocab_size

    def encode_sentences(self, sentences: torch.Tensor, lengths: torch.Tensor, groups: int = 4) -> torch.Tensor:
        """sentences (B, S, T), lengths (B, S) (0 = none) -> vectors (B, S, dim); absent ones are zero."""
        b, s, t = sentences.shape
        z = torch.zeros(b * s, self.autoencoder.dim, device=sentences.device, dtype=self.lm_in.weight.dtype)
        present = lengths.reshape(-1) > 0
        if present.any():
            z[present] = self.autoencoder.encode(sentences.reshape(-1, t)[present], lengths.reshape(-1)[present],
                                                 groups)
        return z.reshape(b, s, -1)

    def context(self, vectors: torch.Tensor, cache: KVCache | None = None, update_cache: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sentence vectors (B, S, dim) at positions cache.length.. -> (decoder memory for the next
        sentence (B, S, dim), stop logits (B, S, 2))."""
        h = self.lm_norm(causal_blocks(self.lm, self.lm_in(vectors), self.head_dim, self.max_sentences, cache,
                                       update_cache))
        return self.to_memory(h), self.stop_head(h)

    def forward(self, sentences: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """sentences (B, S, T), lengths (B, S) -> logits of sentences 2..S (B, S-1, T, V)."""
        return self.logits_and_stop(sentences, lengths)[0]

    def logits_and_stop(self, sentences: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """sentences (B, S, T), lengths (B, S) -> (logits of sentences 2..S (B, S-1, T, V), stop logits
        after each sentence (B, S, 2)). Padding sentences (length 0) must come last."""
        b, s, t = sentences.shape
        memory, stop = self.context(self.encode_sentences(sentences, lengths))  # (B, S, dim), (B, S, 2)
        tokens_in = shifted_input(sentences[:, 1:], self.autoencoder.eos_id).reshape(-1, t)
        logits = self.autoencoder.decode_logits(memory[:, :-1].reshape(-1, memory.shape[-1]), tokens_in)
        return logits.reshape(b, s - 1, t, -1), stop


def focal_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-element focal loss -(1 - p)^gamma log p (gamma 0: cross-entropy): logits (..., V), targets (...)."""
    logp = F.log_softmax(logits.float(), -1).gather(-1, targets[..., None]).squeeze(-1)
    return -logp if gamma == 0 else -((1 - logp.exp()) ** gamma) * logp
