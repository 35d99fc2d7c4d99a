"""The toy domain's network, objective and data: 2-d points, four Gaussians, one class each."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from datamodules.base import DataCard, PROCEDURAL, TensorDataModule
from zoo.objectives.base import LossOutput
from zoo.objectives.flow import FlowMatching

CENTRES = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])


class PointFlow(nn.Module):
    def __init__(self, width: int, num_classes: int):
        super().__init__()
        self.embed = nn.Embedding(num_classes, width)
        self.inp = nn.Linear(3, width)
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 2))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:  # (B, 2)
        return self.out(self.inp(torch.cat([x, t[:, None].to(x.dtype)], 1)) + self.embed(cond))


class PointFlowLoss:
    """Flow matching on the points (zoo.objectives.flow), validated by the velocity error."""

    def __init__(self):
        self.flow = FlowMatching()

    def loss(self, net, x1: torch.Tensor, cond: torch.Tensor, generator=None) -> LossOutput:
        return self.flow.loss(net, x1, cond, generator=generator)

    @torch.no_grad()
    def evaluate(self, net, dataloader, generator=None) -> dict:
        losses = [self.loss(net, **batch, generator=generator).loss.item() for batch in dataloader]
        return {"val_velocity_mse": sum(losses) / max(len(losses), 1)}


def points(n: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    cond = torch.randint(0, len(CENTRES), (n,), generator=g)
    return {"x1": CENTRES[cond] + 0.1 * torch.randn(n, 2, generator=g), "cond": cond}


class ToyPoints(TensorDataModule):
    card = DataCard("toy-points", PROCEDURAL, "MIT")

    def __init__(self, batch_size: int = 64, seed: int = 0, debug: bool = False, num_train: int = 4096):
        super().__init__(batch_size, seed, debug)
        self.num_train = num_train

    def setup(self, stage: str | None = None) -> None:
        self.data = {"train": points(64 if self.debug else self.num_train, self.seed), "test": points(256, self.seed + 1)}


def spread(x: torch.Tensor, cond: torch.Tensor) -> float:
    """Mean distance of each point from its class's centre (the data's: 0.1 * sqrt(pi / 2))."""
    return (x - CENTRES[cond]).norm(dim=1).mean().item() / (0.1 * math.sqrt(math.pi / 2))
