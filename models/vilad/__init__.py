"""vilad: ViLaD, a masked-diffusion vision-language driving planner, on highway-env scenes.

- ``vilad-highway``: the bidirectional planner (network.py) trained by the core's masked diffusion with
  the context fixed; it decodes the 14 decision slots most-confident first, in one pass by default.
- ``vilad_ar-highway``: the same network with causal attention, trained by next-token prediction on
  the same tokens, decoding the slots one by one with a KV cache (the AR VLM baseline).
Either takes ``waypoint_codec="codebook"``: one path token from a k-means codebook instead of twelve
coordinate slots (datamodules/driving_codec.py; ``model=vilad_codebook`` trains it).
"""

from __future__ import annotations

import torch

from datamodules.driving_codec import CONTEXT_LEN, codec_vocab_size, template
from models.vilad.network import DrivingPlanner
from models.vilad.pipeline import ViladARPipeline, ViladPipeline, ar_plan, masked_plan
from zoo.registry import Example, register_ablation, register_benchmark, register_model, register_task


def planner_example(net: DrivingPlanner, generator: torch.Generator) -> Example:
    from datamodules.driving_codec import Context

    frames = torch.randint(0, 256, (2, 64, 64, 3), generator=generator, dtype=torch.uint8)
    context = torch.tensor([Context("highway", 25.0, 0.0).tokens(), Context("intersection", 8.0, 1.5, "left").tokens()])
    slots = len(template(net.waypoint_codec))
    x = torch.cat([context, torch.randint(3, net.vocab_size, (2, slots), generator=generator)], 1)

    def two_step(n, g):
        if n.causal:
            return ar_plan(n, context, frames, temperature=1.0, generator=g).tokens
        return masked_plan(n, context, frames, steps=2, temperature=1.0, generator=g).tokens

    return Example(args=(x, None, frames), kwargs={}, out_shape=(2, CONTEXT_LEN + slots, net.vocab_size),
                   sample=two_step)


@register_model("vilad-highway", pipeline=ViladPipeline, example=planner_example)
def vilad_highway(vocab_size: int | None = None, dim: int = 128, depth: int = 4, num_heads: int = 4,
                  mlp_ratio: float = 4.0, use_image: bool = True, waypoint_codec: str = "grid") -> DrivingPlanner:
    """Four 128-wide bidirectional layers over 64 image tokens + 18 text tokens (7 with the codebook
    codec); 0.89M parameters (grid). vocab_size: the codec's by default."""
    return DrivingPlanner(vocab_size or codec_vocab_size(waypoint_codec), CONTEXT_LEN + len(template(waypoint_codec)), dim,
                          depth, num_heads, mlp_ratio, causal=False, use_image=use_image, waypoint_codec=waypoint_codec)


@register_model("vilad_ar-highway", pipeline=ViladARPipeline, example=planner_example)
def vilad_ar_highway(vocab_size: int | None = None, dim: int = 128, depth: int = 4, num_heads: int = 4,
                     mlp_ratio: float = 4.0, use_image: bool = True, waypoint_codec: str = "grid") -> DrivingPlanner:
    """vilad-highway with causal attention: the equal-size AR baseline."""
    return DrivingPlanner(vocab_size or codec_vocab_size(waypoint_codec), CONTEXT_LEN + len(template(waypoint_codec)), dim,
                          depth, num_heads, mlp_ratio, causal=True, use_image=use_image, waypoint_codec=waypoint_codec)


register_task("vilad_open_loop", "models.vilad.evaluate:open_loop")
register_task("vilad_closed_loop", "models.vilad.evaluate:closed_loop")
register_benchmark("vilad", "models.vilad.bench:run")
register_ablation("vilad", "models.vilad.ablation_study:ABLATION")
