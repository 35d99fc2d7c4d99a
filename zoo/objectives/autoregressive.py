"""Next-token prediction: the autoregressive baseline every domain compares against.

A causal network is called as ``net(x, t, cond, valid=..., cache=..., update_cache=...)`` and returns
logits (B, L, V) where position i predicts token i + 1. ``t`` is unused (None).

``decode`` is the one KV-cache decoding loop of the zoo (the code baseline, the image teacher and the
mesh baseline all run it): the domain supplies ``step``, which feeds a token to its network and
returns the next logits; the loop owns guidance, token choice, EOS and stopping. NFE = the prefix pass
+ new tokens - 1.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import torch
import torch.nn.functional as F

from zoo.checks import MAX_BATCH, check_float, check_int
from zoo.nn import KVCache
from zoo.objectives.base import LossOutput, Sample, cfg
from zoo.objectives.masked_sampling import propose


@torch.no_grad()
def bits_per_token(batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]) -> dict:
    """Exact NLL in bits per predicted token, the one likelihood loop of the zoo's AR models.
    batches: (logits (B, L, V), targets (B, L), keep (B, L) bool or None = every target counts)."""
    total, count = 0.0, 0
    for logits, targets, keep in batches:
        ce = F.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")  # (B, L)
        total += (ce if keep is None else ce * keep).sum().item()
        count += targets.numel() if keep is None else int(keep.sum().item())
    return {"nll_bits_per_token": total / max(count, 1) / math.log(2), "eval_tokens": count}


@torch.no_grad()
def decode(step: Callable[[torch.Tensor | None], torch.Tensor], max_new: int, *, temperature: float = 0.0,
           generator: torch.Generator | None = None, guidance_scale: float = 1.0,
           choose: Callable[[int, torch.Tensor], torch.Tensor] | None = None, eos_id: int | None = None,
           finished: Callable[[int, torch.Tensor], torch.Tensor] | None = None, stop: bool = True,
           logits_hook: Callable[[int, torch.Tensor], torch.Tensor] | None = None) -> Sample:
    """Up to ``max_new`` tokens, one network evaluation each.

    step(token): ``None`` for the first call (the prefix, already in the domain's cache), then the
    last chosen token (B,) (repeated for the unconditional rows when guided); returns next-token
    logits (B, V), or (2B, V) = [conditional; unconditional] when ``guidance_scale != 1``.
    choose(i, logits (B, V)) -> tokens (B,): the token-choice hook (masking logits, a flow map);
    default: ``propose`` at ``temperature``. logits_hook(i, logits (B, V)) -> logits constrains the
    i-th new token's logits (after guidance) before any choice (token healing masks i = 0). Once a row emits ``eos_id`` (or ``finished(i, tokens)``
    says it is done) it gets ``eos_id`` from then on; with ``stop``, decoding ends once every row is done.
    """
    check_int("max_new", max_new, low=1)
    check_float("temperature", temperature, low=0.0)
    guidance_scale = check_float("guidance_scale", guidance_scale)
    logits, nfe, out, done = step(None).float(), 1, [], None
    for i in range(max_new):
        if guidance_scale != 1.0:
            logits = cfg(*logits.chunk(2), guidance_scale)  # rows [conditional; unconditional]
        if logits_hook is not None:
            logits = logits_hook(i, logits)
        token = choose(i, logits) if choose is not None else propose(logits, temperature, generator)
        if done is None:
            done = torch.zeros(token.shape[0], dtype=torch.bool, device=token.device)
        if eos_id is not None:
            token = torch.where(done, torch.full_like(token, eos_id), token)
            done |= token == eos_id
        if finished is not None:
            done |= finished(i, token)
        out.append(token)
        if i == max_new - 1 or (stop and (eos_id is not None or finished is not None) and done.all()):
            break
        logits = step(torch.cat([token, token]) if guidance_scale != 1.0 else token).float()
        nfe += 1
    return Sample(torch.stack(out, 1), nfe)


def kept_targets(targets: torch.Tensor, fixed: torch.Tensor | None, valid: torch.Tensor | None) -> torch.Tensor:
    """(B, L-1) bool: the targets x1[:, 1:] that count, neither fixed (a prompt) nor padding."""
    keep = torch.ones_like(targets, dtype=torch.bool)
    if fixed is not None:
        keep &= ~fixed[:, 1:].bool()
    if valid is not None:
        keep &= valid[:, 1:].bool()
    return keep


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
        keep = kept_targets(targets, fixed, valid)
        ce = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
        loss = (ce * keep).sum() / keep.sum().clamp(min=1)
        return LossOutput(loss, {"nll_bpt": loss.detach() / math.log(2)})

    @torch.no_grad()
    def evaluate(self, net, dataloader, generator: torch.Generator | None = None, **unused) -> dict:
        """Exact bits per predicted token over a dataloader of {"x1"} batches; with "fixed" (a prompt)
        and "valid" (False on padding), only the free, valid targets count, as in the loss; "cond" (a
        driving frame, say) reaches the network as in the loss."""
        device = next(net.parameters()).device

        def scored(batch):
            x1, fixed, valid, cond = (batch[k].to(device) if k in batch else None for k in ("x1", "fixed", "valid", "cond"))
            keep = kept_targets(x1[:, 1:], fixed, valid) if fixed is not None or valid is not None else None
            return net(x1, None, cond, valid=valid)[:, :-1], x1[:, 1:], keep

        return bits_per_token(scored(batch) for batch in dataloader)

    def sample(self, *args, **kwargs):
        """``ar_sample`` (the sampler lives apart from the loss; this keeps the objective contract)."""
        return ar_sample(*args, eos_id=self.eos_id, **kwargs)


@torch.no_grad()
def ar_sample(net, *, eos_id: int, gen_length: int, prompt: torch.Tensor | None = None,
              prompt_valid: torch.Tensor | None = None, batch_size: int | None = None,
              temperature: float = 0.0, max_seq_len: int | None = None, stop_at_eos: bool = True,
              generator: torch.Generator | None = None, device=None, bos_id: int | None = None,
              logits_hook: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
              stop_ids: tuple[int, ...] = ()) -> Sample:
    """Decode ``gen_length`` tokens after a left-padded ``prompt`` (B, P) with a KV cache.
    Without a prompt, rows start from ``bos_id``. A row ends at ``eos_id`` or at any of ``stop_ids``
    (an instruct model's end of turn), and is filled with ``eos_id`` after it. ``logits_hook(i, logits (B, V)) -> logits``
    constrains the i-th new token's logits before it is chosen (token healing masks i = 0)."""
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

    def step(token):
        nonlocal valid
        if token is None:
            return net(prompt, None, None, valid=valid, cache=cache, update_cache=True)[:, -1]
        if valid is not None:
            valid = torch.cat([valid, torch.ones(b, 1, dtype=torch.bool, device=valid.device)], 1)
        return net(token[:, None], None, None, valid=valid, cache=cache, update_cache=True)[:, -1]

    stops = torch.tensor(sorted(set(stop_ids)), dtype=torch.long, device=prompt.device)
    finished = (lambda i, token: torch.isin(token, stops)) if len(stops) else None
    out = decode(step, gen_length, temperature=temperature, generator=generator, eos_id=eos_id,
                 stop=stop_at_eos, logits_hook=logits_hook, finished=finished)
    gen = out.tokens
    if gen.shape[1] < gen_length:  # stopped early: every row has ended
        gen = torch.cat([gen, gen.new_full((b, gen_length - gen.shape[1]), eos_id)], 1)
    return Sample(tokens=torch.cat([prompt, gen], 1), nfe=out.nfe, prompt_length=p)
