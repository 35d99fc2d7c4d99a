"""Masked-diffusion sampling: semi-autoregressive blocks with pluggable unmasking policies.

One step predicts every masked position, then commits some of them (the rest stay masked):

- ``random``: commit a random subset (MDLM / "origin" order);
- ``low_confidence``: commit the highest probability of the proposed token (LLaDA);
- ``margin``: highest top-1 minus top-2 probability;
- ``entropy``: lowest predictive entropy (Dream, DiffuCoder);
- ``threshold``: commit every masked token of the block whose top-1 probability reaches ``threshold``,
  and at least the most confident one (Fast-dLLM); the number of steps is then adaptive.

A policy may also be a callable ``score(logits, x0, generator) -> (B, L)`` (higher = commit first).
The answer is cut into blocks of ``block_length`` decoded left to right, ``steps`` shared between them.
Returns the tokens with the number of network evaluations (NFE) spent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from zoo.nn.attention import KVCache


@dataclass
class MaskedSample:
    tokens: torch.Tensor  # (B, P + G): prompt then generated tokens
    nfe: int  # network evaluations spent
    prompt_length: int  # P

    @property
    def generated(self) -> torch.Tensor:  # (B, G)
        return self.tokens[:, self.prompt_length:]


def _top1_prob(logits, x0, generator):
    probs = logits.softmax(-1)
    return probs.gather(-1, x0[..., None])[..., 0]


def _random(logits, x0, generator):
    return torch.rand(x0.shape, generator=generator, device=x0.device)


def _margin(logits, x0, generator):
    top2 = logits.softmax(-1).topk(2, dim=-1).values
    return top2[..., 0] - top2[..., 1]


def _neg_entropy(logits, x0, generator):
    logp = logits.log_softmax(-1)
    return (logp.exp() * torch.nan_to_num(logp, neginf=0.0)).sum(-1)


POLICIES: dict[str, Callable] = {
    "random": _random,
    "low_confidence": _top1_prob,
    "margin": _margin,
    "entropy": _neg_entropy,
    "threshold": _top1_prob,
}


def propose(logits: torch.Tensor, temperature: float, generator=None) -> torch.Tensor:
    """Token proposals from logits (B, L, V): argmax at temperature 0, else Gumbel-max sampling."""
    if temperature == 0:
        return logits.argmax(-1)
    u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=torch.float64)
    gumbel = -torch.log(-torch.log(u.clamp_min(1e-20)))
    return (logits.double() / temperature + gumbel).argmax(-1)


def steps_per_block(steps: int, num_blocks: int) -> list[int]:
    """Spread ``steps`` over blocks as evenly as possible, earlier blocks first."""
    return [steps // num_blocks + (b < steps % num_blocks) for b in range(num_blocks)]


def _check_args(prompt, gen_length, block_length, steps, policy, temperature, threshold, x_init,
                max_seq_len, mask_id):
    if gen_length < 1:
        raise ValueError(f"gen_length={gen_length} must be at least 1")
    if block_length < 1 or gen_length % block_length:
        raise ValueError(f"gen_length={gen_length} must be a positive multiple of "
                         f"block_length={block_length}")
    num_blocks = gen_length // block_length
    if policy != "threshold":
        if steps is None or steps < 1:
            raise ValueError(f"steps={steps} must be at least 1")
        if steps < num_blocks:
            raise ValueError(f"steps={steps} is fewer than the {num_blocks} blocks "
                             f"(gen_length / block_length); every block needs a step")
        if steps > gen_length:
            raise ValueError(f"steps={steps} exceeds gen_length={gen_length}; a step commits at "
                             f"least one token")
    elif not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold={threshold} must lie in (0, 1]")
    if not callable(policy) and policy not in POLICIES:
        raise ValueError(f"policy={policy!r} is unknown; choose one of {sorted(POLICIES)} "
                         f"or pass a callable")
    if temperature < 0:
        raise ValueError(f"temperature={temperature} must be >= 0")
    if max_seq_len is not None and prompt.shape[1] + gen_length > max_seq_len:
        raise ValueError(f"prompt length {prompt.shape[1]} + gen_length {gen_length} exceeds the "
                         f"model's context of {max_seq_len} tokens")
    if (prompt == mask_id).any():
        raise ValueError("the prompt contains the mask token")
    if x_init is not None and tuple(x_init.shape) != (prompt.shape[0], gen_length):
        raise ValueError(f"x_init has shape {tuple(x_init.shape)}; expected "
                         f"(batch, gen_length) = ({prompt.shape[0]}, {gen_length})")


@torch.no_grad()
def sample(net, *, mask_id: int, gen_length: int, steps: int | None = None,
           prompt: torch.Tensor | None = None, prompt_valid: torch.Tensor | None = None,
           batch_size: int | None = None, block_length: int | None = None,
           policy: str | Callable = "low_confidence", temperature: float = 0.0,
           threshold: float = 0.9, x_init: torch.Tensor | None = None, cond=None,
           eos_id: int | None = None, eos_fill: bool = False, max_seq_len: int | None = None,
           cache: str | None = None, refresh_every: int | None = None,
           generator: torch.Generator | None = None, device: torch.device | str | None = None
           ) -> MaskedSample:
    """Decode ``gen_length`` tokens after ``prompt``.

    Args:
        prompt: (B, P) token ids, left-padded; ``prompt_valid`` (B, P) is False on the padding.
            Without a prompt, ``batch_size`` unconditional sequences are drawn.
        steps: total denoising steps over all blocks (ignored by ``policy="threshold"``).
        block_length: semi-autoregressive block size; defaults to one block of gen_length.
        x_init: (B, G) infilling: tokens other than ``mask_id`` are kept and never change.
        eos_id / eos_fill: once an EOS is committed, fill every masked position after it with EOS
            (the trailing EOS run is one unit), which ends decoding early.
        max_seq_len: the network's context, checked against P + G.
        cache: Fast-dLLM's approximate KV caching. Each block starts with a full pass whose keys and
            values are kept for the prefix ("prefix": later steps recompute the block and the suffix)
            or for prefix and suffix ("dual": later steps recompute the block alone). The network
            must accept ``cache``, ``positions`` and ``valid`` over all keys (zoo.nn attention does).
        refresh_every: with a cache, redo the full pass every this many steps of a block (1 = every
            step, which is exact); None = once per block.
    """
    if prompt is None:
        if batch_size is None and x_init is not None:
            batch_size = x_init.shape[0]
        if batch_size is None:
            raise ValueError("give a prompt, a batch_size or x_init")
        prompt = torch.zeros(batch_size, 0, dtype=torch.long, device=device)
    elif batch_size is not None and batch_size != prompt.shape[0]:
        raise ValueError(f"batch_size={batch_size} differs from the {prompt.shape[0]} prompts")
    block_length = gen_length if block_length is None else block_length
    _check_args(prompt, gen_length, block_length, steps, policy, temperature, threshold, x_init,
                max_seq_len, mask_id)
    if eos_fill and eos_id is None:
        raise ValueError("eos_fill=True needs eos_id")
    if cache not in (None, "prefix", "dual"):
        raise ValueError(f"cache={cache!r} must be None, 'prefix' or 'dual'")
    if cache == "dual" and getattr(net, "causal", False):
        raise ValueError("cache='dual' needs a bidirectional network; use 'prefix' for a causal one")
    if refresh_every is not None and refresh_every < 1:
        raise ValueError(f"refresh_every={refresh_every} must be at least 1")
    score_fn = policy if callable(policy) else POLICIES[policy]

    b, p = prompt.shape
    dev = prompt.device
    gen = torch.full((b, gen_length), mask_id, dtype=torch.long, device=dev)
    if x_init is not None:
        gen = x_init.to(dev).long().clone()
    x = torch.cat([prompt.long(), gen], 1)  # (B, L)
    seq_len = x.shape[1]
    valid = None
    if prompt_valid is not None:
        valid = torch.cat([prompt_valid.bool(), torch.ones_like(gen, dtype=torch.bool)], 1)
    # Absolute positions, counted from each row's first valid token. (B|1, L)
    abs_pos = (valid.long().cumsum(1) - 1).clamp(min=0) if valid is not None else torch.arange(seq_len, device=dev)[None]
    n_gen_free = (gen == mask_id).sum(1).clamp(min=1)  # (B,) for the time passed to the net
    ranks = torch.arange(block_length, device=dev)
    num_blocks = gen_length // block_length
    plan = steps_per_block(steps, num_blocks) if policy != "threshold" else [block_length] * num_blocks
    nfe = 0
    for blk in range(num_blocks):
        lo, hi = p + blk * block_length, p + (blk + 1) * block_length
        n_steps = plan[blk]
        remaining = (x[:, lo:hi] == mask_id).sum(1)  # (B,)
        # LLaDA's schedule: commit remaining / n_steps per step, the remainder in the first steps.
        per_step = torch.stack([remaining // n_steps + (s < remaining % n_steps).long()
                                for s in range(n_steps)], 1)  # (B, n_steps)
        if cache is not None:  # fixed for the whole block: which cached keys to keep, their validity
            kept = torch.arange(lo, device=dev) if cache == "prefix" else \
                torch.cat([torch.arange(lo, device=dev), torch.arange(hi, seq_len, device=dev)])
            key_valid = None if valid is None or cache == "prefix" else \
                torch.cat([valid[:, :lo], valid[:, hi:], valid[:, lo:hi]], 1)  # dual's key order
        block_cache = None
        step = 0
        while True:
            candidates = x[:, lo:hi] == mask_id  # (B, bl)
            if not candidates.any():
                break
            t = 1.0 - (x[:, p:] == mask_id).sum(1) / n_gen_free  # (B,) share of the answer decoded
            if cache is None:
                logits = net(x, t, cond, valid=valid)[:, lo:hi]
            elif step % (refresh_every or n_steps + block_length) == 0:  # a full pass, keeping its keys
                full = KVCache()
                logits = net(x, t, cond, valid=valid, cache=full, update_cache=True)[:, lo:hi]
                block_cache = full.select(kept)
            elif cache == "prefix":  # recompute the block and everything after it
                logits = net(x[:, lo:], t, cond, valid=valid, cache=block_cache)[:, :hi - lo]
            else:  # dual: recompute the block alone; cached keys are [prefix, suffix], then the block
                logits = net(x[:, lo:hi], t, cond, valid=key_valid, cache=block_cache, positions=abs_pos[:, lo:hi])
            nfe += 1
            logits = logits.float()  # (B, bl, V)
            logits[..., mask_id] = -torch.inf
            x0 = propose(logits, temperature, generator)
            score = score_fn(logits, x0, generator).float()
            score = torch.where(candidates, score, torch.full_like(score, -torch.inf))
            if policy == "threshold":
                commit = candidates & (score >= threshold)
                best = score.argmax(1)  # at least one per row that still has masks
                has = candidates.any(1)
                commit[has, best[has]] = True
            else:
                k = per_step[:, step] if step < n_steps else candidates.sum(1)
                order = torch.sort(score, dim=1, descending=True, stable=True).indices
                rank = torch.empty_like(order).scatter_(1, order, ranks.expand_as(order))
                commit = candidates & (rank < k[:, None])
            x[:, lo:hi] = torch.where(commit, x0, x[:, lo:hi])
            if eos_fill:
                x = _fill_after_eos(x, p, eos_id, mask_id)
            step += 1
    return MaskedSample(tokens=x, nfe=nfe, prompt_length=p)


def _fill_after_eos(x: torch.Tensor, p: int, eos_id: int, mask_id: int) -> torch.Tensor:
    """Set every masked answer position after the first committed EOS to EOS. x (B, L)."""
    ans = x[:, p:]
    is_eos = ans == eos_id
    after = is_eos.long().cumsum(1) > 0  # at or after the first EOS
    fill = after & (ans == mask_id)
    return torch.cat([x[:, :p], torch.where(fill, torch.full_like(ans, eos_id), ans)], 1)
