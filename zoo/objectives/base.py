"""What every objective shares: the contract (``Objective``), the loss record, the sample record and
antithetic time draws."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

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


@runtime_checkable
class Objective(Protocol):
    """What the training module (zoo.lit) and the export (recipes/train.py) ask of an objective:

    - ``loss(net, **batch, generator=None) -> LossOutput``: the training loss of one batch, every
      random draw from ``generator`` (so a step's loss is a function of its seed);
    - ``evaluate(net, dataloader, generator=None, **kwargs) -> dict``: the validation metrics an export
      records in meta.json.

    An objective that samples also has ``sample(...)``, which forwards to the domain's sampler function.
    ``check_objective`` checks the signatures, which a Protocol alone does not."""

    def loss(self, net, *args, generator: torch.Generator | None = None, **kwargs) -> LossOutput: ...

    def evaluate(self, net, dataloader, *args, generator: torch.Generator | None = None, **kwargs) -> dict: ...


def check_objective(objective) -> None:
    """Raises a TypeError naming what an objective lacks: the methods of ``Objective``, ``net`` first,
    ``dataloader`` second in ``evaluate``, and a ``generator`` each of them accepts."""
    name = type(objective).__name__
    if not isinstance(objective, Objective):
        missing = [m for m in ("loss", "evaluate") if not callable(getattr(objective, m, None))]
        raise TypeError(f"objective {name} lacks {missing} (zoo.objectives.base.Objective)")
    for method, first in (("loss", ["net"]), ("evaluate", ["net", "dataloader"])):
        params = inspect.signature(getattr(objective, method)).parameters
        names = list(params)
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        if names[:len(first)] != first or not ("generator" in params or takes_any):
            raise TypeError(f"objective {name}.{method}{inspect.signature(getattr(objective, method))}: expected "
                            f"({', '.join(first)}, ..., generator=None) (zoo.objectives.base.Objective)")
