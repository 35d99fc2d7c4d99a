"""Next-token prediction: the autoregressive baseline every domain compares against.

A causal network is called as ``net(x, t, cond, valid=..., cache=..., update_cache=...)`` and returns
logits (B, L, V) where position i predicts token i + 1. ``t`` is unused (None).
Sampling decodes one token per network evaluation with a KV cache: NFE = prompt pass + new tokens - 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from zoo.checks import MAX_BATCH, check_float, check_int
from zoo.nn import KVCache
from zoo.objectives.base import LossOutput
from zoo.objectives.masked_sampling import propose


@dataclass
class ARSample:
    tokens: torch.Tensor  # (B, P + G)
    nfe: int
    prompt_length: int

    @property
    def generated(self) -> torch.Tensor:  # (B, G)
        return self.tokens[:, self.prompt_length:]


class NextTokenPrediction:
    """Args:
        eos_id: stops a row once it emits EOS (the rest of the row is filled with EOS).
    """

    def __init__(self, eos_id: int | None = None):
        self.eos_id = eos_id

    def loss(self, net, x1: torch.Tensor, cond=None, fixed: torch.Tensor | None = None,
             valid: torch.Tensor | None = None, generator: torch.Generator | None = None) -> LossOutput:
        """Mean cross-entropy of tokens 1..L-1 given their prefix; fixed / invalid targets are skipped."""
        logits = net(x1, None, cond, valid=valid).float()[:, :-1]  # (B, L-1, V)
        targets = x1[:, 1:]
        keep = torch.ones_like(targets, dtype=torch.bool)
        if fixed is not None:
            keep &= ~fixed[:, 1:].bool()
        if valid is not None:
            keep &= valid[:, 1:].bool()
        ce = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
        loss = (ce * keep).sum() / keep.sum().clamp(min=1)
        return LossOutput(loss, {"nll_bpt": loss.detach() / math.log(2)})

    @torch.no_grad()
    def evaluate(self, net, dataloader, generator: torch.Generator | None = None, **unused) -> dict:
        """Exact bits per predicted token over a dataloader of {"x1"} batches."""
        total, count = 0.0, 0
        for batch in dataloader:
            x1 = batch["x1"].to(next(net.parameters()).device)
            logits = net(x1, None, None).float()[:, :-1]
            total += F.cross_entropy(logits.transpose(1, 2), x1[:, 1:], reduction="sum").item()
            count += x1[:, 1:].numel()
        return {"nll_bits_per_token": total / max(count, 1) / math.log(2), "eval_tokens": count}

    @torch.no_grad()
    def sample(self, net, *, gen_length: int, prompt: torch.Tensor | None = None,
               prompt_valid: torch.Tensor | None = None, batch_size: int | None = None,
               temperature: float = 0.0, max_seq_len: int | None = None, stop_at_eos: bool = True,
               generator: torch.Generator | None = None, device=None, bos_id: int | None = None) -> ARSample:
        """Decode ``gen_length`` tokens after a left-padded ``prompt`` (B, P) with a KV cache.
        Without a prompt, rows start from ``bos_id``."""
        gen_length = check_int("gen_length", gen_length, low=1, high=max_seq_len)
        check_float("temperature", temperature, low=0.0)
        if prompt is None:
            if batch_size is None or bos_id is None:
                raise ValueError("without a prompt, give batch_size and bos_id")
            batch_size = check_int("batch_size", batch_size, low=1, high=MAX_BATCH)
            prompt = torch.full((batch_size, 1), bos_id, dtype=torch.long, device=device)
        if prompt.shape[1] == 0:
            raise ValueError("an autoregressive model needs at least one prompt token")
        b, p = prompt.shape
        if max_seq_len is not None and p + gen_length > max_seq_len:
            raise ValueError(f"prompt length {p} + gen_length {gen_length} exceeds the model's context "
                             f"of {max_seq_len} tokens")
        valid = prompt_valid.bool() if prompt_valid is not None else None
        cache = KVCache()
        logits = net(prompt, None, None, valid=valid, cache=cache, update_cache=True)[:, -1].float()
        nfe, out = 1, []
        done = torch.zeros(b, dtype=torch.bool, device=prompt.device)
        for i in range(gen_length):
            token = propose(logits, temperature, generator)  # (B,)
            if self.eos_id is not None:
                token = torch.where(done, torch.full_like(token, self.eos_id), token)
                done |= token == self.eos_id
            out.append(token)
            if i == gen_length - 1 or (stop_at_eos and self.eos_id is not None and done.all()):
                break
            if valid is not None:
                valid = torch.cat([valid, torch.ones(b, 1, dtype=torch.bool, device=valid.device)], 1)
            logits = net(token[:, None], None, None, valid=valid, cache=cache, update_cache=True)[:, -1].float()
            nfe += 1
        gen = torch.stack(out, 1)
        if gen.shape[1] < gen_length:  # stopped early: every row has ended
            gen = torch.cat([gen, gen.new_full((b, gen_length - gen.shape[1]), self.eos_id)], 1)
        return ARSample(tokens=torch.cat([prompt, gen], 1), nfe=nfe, prompt_length=p)
