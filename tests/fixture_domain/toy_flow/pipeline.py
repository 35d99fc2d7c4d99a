"""``pipe(cond=[0, 1], steps=8, generator=g)`` -> PointsOutput."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from zoo import generators
from zoo.checks import check_int
from zoo.objectives.flow import flow_sample
from zoo.pipeline import Pipeline


@dataclass
class PointsOutput:
    points: torch.Tensor  # (B, 2)
    cond: list[int]
    nfe: int

    def describe(self) -> list[str]:
        return [f"class {c}: ({x:.2f}, {y:.2f})" for c, (x, y) in zip(self.cond, self.points.tolist())]

    def save(self, out_dir) -> Path:
        path = Path(out_dir) / "points.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"cond": self.cond, "points": self.points.tolist()}))
        return path


class PointFlowPipeline(Pipeline):
    default_task = "toy_points"
    settings = ("steps",)

    @torch.no_grad()
    def __call__(self, cond=None, batch_size: int | None = None, steps: int | None = None,
                 generator=None) -> PointsOutput:
        batch_size = check_int("batch_size", batch_size, low=1, optional=True)
        labels = list(cond) if cond is not None else generators.randint(0, 4, (batch_size or 1,), generator).tolist()
        steps = check_int("steps", self.setting("steps", steps), low=1)
        x0 = generators.randn((len(labels), 2), generator, dtype=self.dtype)
        out = flow_sample(self.net, x0=x0, steps=steps, cond=torch.tensor(labels), generator=generator)
        return PointsOutput(out.x.float(), labels, out.nfe)
