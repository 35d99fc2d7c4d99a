"""What every objective shares: the loss record and antithetic time draws."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LossOutput:
    loss: torch.Tensor  # scalar, what the optimizer minimises
    metrics: dict[str, torch.Tensor]  # detached scalars for logging


def antithetic_times(batch_size: int, generator: torch.Generator | None = None,
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """t_i = (u + i / B) mod 1: one uniform draw spread evenly over the batch (lower variance). (B,)"""
    u = torch.rand((), generator=generator, device=device)
    return (u + torch.arange(batch_size, device=device) / batch_size) % 1.0
