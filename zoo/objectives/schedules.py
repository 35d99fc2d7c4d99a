"""Masking schedules for absorbing-state diffusion, in the zoo's time convention.

t = 0 is all-mask, t = 1 is data. ``kappa(t)`` is the probability that a free token is *unmasked*
(clean) at time t, so a token is masked with probability ``1 - kappa(t)``. The ELBO weight of the
cross-entropy on masked tokens is ``kappa'(t) / (1 - kappa(t))`` (MDLM eq. 10, with time flipped).
"""

from __future__ import annotations

import math

import torch


class Schedule:
    """kappa(t): share of clean tokens at time t; kappa(0) = 0, kappa(1) = 1, increasing."""

    name = "base"

    def kappa(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def dkappa(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def mask_prob(self, t: torch.Tensor) -> torch.Tensor:
        return 1.0 - self.kappa(t)

    def loss_weight(self, t: torch.Tensor) -> torch.Tensor:
        """ELBO weight kappa'(t) / (1 - kappa(t)) of the masked-token cross-entropy."""
        return self.dkappa(t) / (1.0 - self.kappa(t))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class LinearSchedule(Schedule):
    """kappa(t) = t: the LLaDA / MDLM default; weight 1 / (1 - t) = 1 / mask rate."""

    name = "linear"

    def kappa(self, t):
        return t

    def dkappa(self, t):
        return torch.ones_like(t)


class CosineSchedule(Schedule):
    """kappa(t) = 1 - cos(pi t / 2): masks more of the sequence for longer (MaskGIT-style)."""

    name = "cosine"

    def kappa(self, t):
        return 1.0 - torch.cos(0.5 * math.pi * t)

    def dkappa(self, t):
        return 0.5 * math.pi * torch.sin(0.5 * math.pi * t)


SCHEDULES = {"linear": LinearSchedule, "cosine": CosineSchedule}


def get_schedule(schedule: str | Schedule) -> Schedule:
    if isinstance(schedule, Schedule):
        return schedule
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule={schedule!r} is unknown; choose one of {sorted(SCHEDULES)}")
    return SCHEDULES[schedule]()
