"""Masked (absorbing-state) diffusion: corruption, the weighted training loss and a Monte-Carlo ELBO.

Time convention: t = 0 is all-mask, t = 1 is data. A free token is masked at time t with probability
``1 - kappa(t)`` (see schedules.py). Tokens can be excluded from the process in two ways:

- ``fixed`` (B, L) bool: conditioning such as a prompt; never masked, never a target, always attended.
- ``valid`` (B, L) bool, False on padding. With ``pad_mode="ignore"`` padding is never masked, never a
  target and hidden from attention. With ``pad_mode="eos"`` (LLaDA) padding is replaced by ``eos_id``
  and trained on like any other token, which teaches the model to end variable-length answers.

A network is called as ``net(x_t, t, cond, valid=valid)`` and returns logits (B, L, V). A network
with ``shift = True`` (adapted from an AR model) returns at position i the logits of token i + 1:
``logits`` realigns them, and position 0, which nothing predicts, is never masked (``_prepare``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from zoo.objectives.base import LossOutput, antithetic_times
from zoo.objectives.masked_sampling import network_shift, sample
from zoo.objectives.schedules import Schedule, get_schedule


class MaskedDiffusion:
    """Absorbing-state diffusion objective; samplers live in masked_sampling.py.

    Args:
        mask_id: the absorbing [MASK] token; never predicted (its logit is set to -inf).
        schedule: "linear", "cosine" or a Schedule object.
        antithetic: draw training times antithetically across the batch.
        pad_mode: "ignore" or "eos" (see module docstring).
        eos_id: required when pad_mode == "eos".
        t_max: training times are clamped to [0, t_max] so the 1 / mask-rate weight stays finite.
    """

    def __init__(self, mask_id: int, schedule: str | Schedule = "linear", antithetic: bool = True,
                 pad_mode: str = "ignore", eos_id: int | None = None, t_max: float = 1.0 - 1e-3):
        if pad_mode not in ("ignore", "eos"):
            raise ValueError(f"pad_mode={pad_mode!r} must be 'ignore' or 'eos'")
        if pad_mode == "eos" and eos_id is None:
            raise ValueError("pad_mode='eos' needs eos_id")
        self.mask_id = mask_id
        self.schedule = get_schedule(schedule)
        self.antithetic = antithetic
        self.pad_mode = pad_mode
        self.eos_id = eos_id
        self.t_max = t_max

    # ----------------------------------------------------------------------------- helpers
    def _prepare(self, x1, fixed, valid, shift: int = 0):
        """Returns (x1, free, attn_valid): targets after EOS padding, the positions in the process,
        and the positions the network may attend to. With ``shift`` the first position is fixed."""
        free = torch.ones_like(x1, dtype=torch.bool) if fixed is None else ~fixed.bool()
        if shift:
            free[:, :shift] = False
        if valid is None:
            return x1, free, None
        valid = valid.bool()
        if self.pad_mode == "eos":
            return torch.where(valid, x1, torch.full_like(x1, self.eos_id)), free, None
        return x1, free & valid, valid

    def logits(self, net, xt, t, cond=None, valid=None) -> torch.Tensor:
        """Network logits in fp32 for each position's own token, the mask token made impossible.
        (B, L, V); a shifted network's position-0 row is a placeholder (that position is never free)."""
        logits = net(xt, t, cond, valid=valid).float()
        shift = network_shift(net)
        if shift:
            logits = torch.cat([logits[:, :shift], logits[:, :-shift]], 1)
        logits[..., self.mask_id] = -torch.inf
        return logits

    def corrupt(self, x1: torch.Tensor, t: torch.Tensor, free: torch.Tensor,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask each free token with probability 1 - kappa(t). x1 (B, L), t (B,) -> (x_t, masked)."""
        p_mask = self.schedule.mask_prob(t)[:, None]  # (B, 1)
        u = torch.rand(x1.shape, generator=generator, device=x1.device)
        masked = (u < p_mask) & free
        return torch.where(masked, torch.full_like(x1, self.mask_id), x1), masked

    # ----------------------------------------------------------------------------- training
    def loss(self, net, x1: torch.Tensor, cond=None, fixed: torch.Tensor | None = None,
             valid: torch.Tensor | None = None, generator: torch.Generator | None = None) -> LossOutput:
        """Per-token negative ELBO estimate: sum_b w(t_b) * sum_masked CE / number of free tokens."""
        x1, free, attn_valid = self._prepare(x1, fixed, valid, network_shift(net))
        b = x1.shape[0]
        if self.antithetic:
            t = antithetic_times(b, generator, x1.device)
        else:
            t = torch.rand(b, generator=generator, device=x1.device)
        t = t.clamp(max=self.t_max)
        xt, masked = self.corrupt(x1, t, free, generator)
        logits = self.logits(net, xt, t, cond, attn_valid)
        ce = F.cross_entropy(logits.transpose(1, 2), x1, reduction="none")  # (B, L)
        ce = torch.where(masked, ce, torch.zeros_like(ce))  # -inf logits elsewhere never reach the sum
        weighted = self.schedule.loss_weight(t) * ce.sum(1)  # (B,)
        n_free = free.sum().clamp(min=1)
        loss = weighted.sum() / n_free
        n_masked = masked.sum().clamp(min=1)
        metrics = {
            "nelbo_bpt": loss.detach() / math.log(2),
            "masked_ce": (ce.sum() / n_masked).detach(),
            "mask_rate": (masked.sum() / n_free).detach(),
        }
        return LossOutput(loss, metrics)

    # ----------------------------------------------------------------------------- likelihood
    @torch.no_grad()
    def elbo_nll(self, net, x1: torch.Tensor, cond=None, fixed: torch.Tensor | None = None,
                 valid: torch.Tensor | None = None, num_samples: int = 8,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Monte-Carlo upper bound on -log p(x1) in nats per sequence, and the free-token counts.

        Uses the stratified masked-count form (LLaDA eq. 6): for sample k draw l in {1..n} (n free
        tokens) stratified over k, mask l free tokens uniformly, and score (n / l) * sum_masked CE.
        Its expectation is the continuous-time NELBO, whatever the schedule.
        Returns (nll (B,), n_free (B,)).
        """
        if num_samples < 1:
            raise ValueError(f"num_samples={num_samples} must be at least 1")
        x1, free, attn_valid = self._prepare(x1, fixed, valid, network_shift(net))
        n_free = free.sum(1)  # (B,)
        total = torch.zeros(x1.shape[0], device=x1.device)
        u = torch.rand(x1.shape[0], generator=generator, device=x1.device)
        for k in range(num_samples):
            frac = (u + k / num_samples) % 1.0  # stratified over k
            n_mask = (frac * n_free).floor().long().clamp(max=n_free - 1) + 1  # (B,) in [1, n]
            scores = torch.rand(x1.shape, generator=generator, device=x1.device)
            scores = torch.where(free, scores, torch.full_like(scores, 2.0))  # non-free rank last
            rank = scores.argsort(1).argsort(1)
            masked = (rank < n_mask[:, None]) & free
            xt = torch.where(masked, torch.full_like(x1, self.mask_id), x1)
            t = 1.0 - n_mask / n_free.clamp(min=1)
            logits = self.logits(net, xt, t, cond, attn_valid)
            ce = F.cross_entropy(logits.transpose(1, 2), x1, reduction="none")
            ce = torch.where(masked, ce, torch.zeros_like(ce)).sum(1)
            total += ce * n_free / n_mask
        nll = torch.where(n_free > 0, total / num_samples, torch.zeros_like(total))
        return nll, n_free

    @torch.no_grad()
    def evaluate(self, net, dataloader, num_samples: int = 8, generator: torch.Generator | None = None) -> dict:
        """Monte-Carlo ELBO over a dataloader of {"x1", ...} batches: bits per free token."""
        total, count = 0.0, 0
        for batch in dataloader:
            batch = {k: v.to(next(net.parameters()).device) for k, v in batch.items()}
            nll, n = self.elbo_nll(net, **batch, num_samples=num_samples, generator=generator)
            total, count = total + nll.sum().item(), count + n.sum().item()
        return {"elbo_bits_per_token": total / max(count, 1) / math.log(2), "eval_tokens": count,
                "elbo_samples": num_samples}

    def sample(self, net, **kwargs):
        """Masked-diffusion sampling with this objective's mask token; see masked_sampling.sample."""
        return sample(net, mask_id=self.mask_id, **kwargs)
