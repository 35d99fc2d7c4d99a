"""One thin LightningModule for every domain: a network, an objective, optimizer/scheduler factories.

The objective owns the math (``objective.loss(net, **batch, generator=g)``); this module only wires it
to Lightning. Randomness inside the loss comes from a generator seeded by (seed, step, rank), so a run
resumed from a Lightning checkpoint draws the same times and masks as the uninterrupted run.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import lightning as L
import torch
import torch.nn as nn

from zoo.objectives.base import check_objective


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int,
                  min_ratio: float = 0.1) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up to the base LR, then cosine decay to ``min_ratio`` of it at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class ZooModule(L.LightningModule):
    """Args:
        net: the network, called by the objective.
        objective: a ``zoo.objectives.base.Objective``: ``loss(net, **batch, generator=...) -> LossOutput``
            and ``evaluate(net, dataloader, generator=...) -> dict`` (checked here, by name).
        optimizer: ``params -> Optimizer`` (a Hydra ``_partial_``).
        lr_scheduler: ``optimizer -> LRScheduler`` stepped every step, or None.
        seed: seeds the objective's random draws.
        sharding: ``zoo.sharding.shard``'s options (activation_checkpointing, mixed_precision), applied
            when the trainer's strategy gives the module a device mesh (trainer=fsdp); else unused.
    """

    def __init__(self, net: nn.Module, objective, optimizer: Callable, lr_scheduler: Callable | None = None,
                 seed: int = 0, sharding: dict | None = None):
        super().__init__()
        check_objective(objective)
        self.net = net
        self.objective = objective
        self.optimizer_factory = optimizer
        self.lr_scheduler_factory = lr_scheduler
        self.seed = seed
        self.sharding = dict(sharding or {})

    def configure_model(self) -> None:
        # Lightning's ModelParallelStrategy sets a device mesh before this hook; other strategies do not.
        mesh = getattr(self, "_device_mesh", None)
        if mesh is not None and not getattr(self, "_sharded", False):
            from zoo.sharding import shard

            shard(self.net, mesh["data_parallel"], **self.sharding)
            self._sharded = True

    def on_fit_start(self) -> None:
        self._fit_started = time.monotonic()

    def on_validation_epoch_end(self) -> None:
        # Wall minutes since this fit began (a resumed run counts from its resume), beside every
        # validation: the x axis of the quality-against-CPU-minutes curves the READMEs report.
        if hasattr(self, "_fit_started"):
            self.log("val/wall_minutes", (time.monotonic() - self._fit_started) / 60, sync_dist=True)

    def _generator(self, index: int, stream: int) -> torch.Generator:
        g = torch.Generator(device=self.device)
        g.manual_seed(((self.seed * 1_000_003 + stream) * 1_000_003 + index) * self.trainer.world_size
                      + self.global_rank)
        return g

    def _step(self, batch: dict, generator: torch.Generator, stage: str) -> torch.Tensor:
        out = self.objective.loss(self.net, **batch, generator=generator)
        bs = next(iter(batch.values())).shape[0]
        self.log(f"{stage}/loss", out.loss, prog_bar=True, batch_size=bs, sync_dist=stage != "train")
        for name, value in out.metrics.items():
            self.log(f"{stage}/{name}", value, batch_size=bs, sync_dist=stage != "train")
        return out.loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._step(batch, self._generator(self.global_step, stream=0), "train")

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        # The same draws at every validation, so the curve compares weights, not luck.
        return self._step(batch, self._generator(batch_idx, stream=1), "val")

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.net.parameters())
        if self.lr_scheduler_factory is None:
            return optimizer
        scheduler = self.lr_scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
