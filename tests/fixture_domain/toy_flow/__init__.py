"""A throwaway domain, as CONTRIBUTING.md describes one: 2-d points from four Gaussians, a flow-matching
MLP that draws them by class. Everything it needs is in this folder (its configs under configs/);
tests/fixture_domain/test_fixture_domain.py registers it through an entry point of its own and runs
every recipe on it."""

import torch

from toy_flow.network import PointFlow
from toy_flow.pipeline import PointFlowPipeline
from zoo.registry import Example, register_ablation, register_benchmark, register_model, register_task


def example(net: PointFlow, generator: torch.Generator) -> Example:
    x = torch.randn(3, 2, generator=generator)
    cond = torch.tensor([0, 1, 2])
    return Example(args=(x, torch.rand(3, generator=generator), cond), kwargs={}, out_shape=(3, 2),
                   sample=lambda n, g: PointFlowPipeline(n, steps=2)(cond=[0, 1, 2], generator=g).points)


@register_model("toy_flow-points", pipeline=PointFlowPipeline, example=example)
def toy_flow_points(width: int = 32, num_classes: int = 4) -> PointFlow:
    """An MLP velocity field over 2-d points, by class."""
    return PointFlow(width=width, num_classes=num_classes)


register_task("toy_points", "toy_flow.evaluate:points_task")
register_benchmark("toy_flow", "toy_flow.evaluate:bench")
register_ablation("toy_flow", "toy_flow.evaluate:ABLATION")
