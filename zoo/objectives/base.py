"""What every objective shares: the loss record, the sample record and antithetic time draws."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Sample:
    """What every token sampler returns (masked diffusion, AR decoding, one-step students): the tokens
    and the network evaluations (NFE) they cost. A prompted sampler's tokens start with the prompt."""

    tokens: torch.Tensor  # (B, P + G), or (B, L) without a prompt
    nfe: int
    prompt_length: int = 0  # P

    @property
    def generated(self) -> torch.Tensor:  # (B, G)
        return self.tokens[:, self.prompt_length:]


def cfg(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance, the one mix of the zoo: u + scale (c - u); scale 1 is the conditional."""
    return uncond + scale * (cond - uncond)


@dataclass
class LossOutput:
    loss: torch.Tensor  # scalar, what the optimizer minimises
    metrics: dict[str, torch.Tensor]  # detached scalars for logging


def antithetic_times(batch_size: int, generator: torch.Generator | None = None,
                     device: torch.device | str = "cpu") -> torch.Tensor:
    """t_i = (u + i / B) mod 1: one uniform draw spread evenly over the batch (lower variance). (B,)"""
    u = torch.rand((), generator=generator, device=device)
    return (u + torch.arange(batch_size, device=device) / batch_size) % 1.0
