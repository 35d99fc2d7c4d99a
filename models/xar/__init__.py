"""xar: next-X prediction (xAR) with a flow-matching head and noisy context learning, on MNIST latents.

- ``kl_ae-mnist``: the continuous latent (autoencoder.py): 28x28 digits <-> 8x8x4 latents.
- ``xar-mnist``: the next-X transformer (network.py) over a partition of that latent into entities
  (partitions.py: token, cell, subsample, scale, image), trained by next-X flow matching with noisy
  context learning (objective.py) and sampled entity by entity with a KV cache. With
  ``partition=image`` the same network is the DiT baseline (one entity, no AR).
"""

from __future__ import annotations

import torch

from models.xar.autoencoder import KLAutoencoder, KLAutoencoderLoss
from models.xar.network import NextXTransformer
from models.xar.objective import NextXFlowMatching, next_x_sample
from models.xar.partitions import KINDS, Partition
from models.xar.pipeline import AutoencoderPipeline, NextXPipeline
from zoo.registry import Example, register_ablation, register_benchmark, register_model


def autoencoder_example(net: KLAutoencoder, generator: torch.Generator) -> Example:
    x = torch.rand(2, 1, 28, 28, generator=generator)
    side = 32 // 2 ** net.downsample
    return Example(args=(x,), kwargs={}, out_shape=(2, 1, 28, 28),
                   sample=lambda n, g: n.decode(torch.randn(2, n.latent_channels, side, side, generator=g)))


@register_model("kl_ae-mnist", pipeline=AutoencoderPipeline, example=autoencoder_example)
def kl_ae_mnist(width: int = 32, downsample: int = 2, latent_channels: int = 4) -> KLAutoencoder:
    """28x28 -> 8x8x4 continuous latents. About 0.4M parameters."""
    return KLAutoencoder(1, width, downsample, latent_channels)


def next_x_example(net: NextXTransformer, generator: torch.Generator) -> Example:
    x = torch.randn(2, net.partition.num_tokens, net.latent_channels, generator=generator)
    t = torch.rand(2, net.partition.num_tokens, generator=generator)
    labels = torch.tensor([3, 7])
    return Example(args=(x, t, labels), kwargs={}, out_shape=tuple(x.shape),
                   sample=lambda n, g: next_x_sample(n, labels, steps=2, guidance_scale=2.0, generator=g).latents)


@register_model("xar-mnist", pipeline=NextXPipeline, example=next_x_example)
def xar_mnist(latent_channels: int = 4, grid: int = 8, num_classes: int = 10, partition: str = "cell",
              partition_size: int = 4, dim: int = 128, depth: int = 4, num_heads: int = 4,
              mlp_ratio: float = 4.0) -> NextXTransformer:
    """Cells of 4x4 latents by default: 4 AR steps, as the reference's 2x2 grid of cells. The width and
    depth of image_ar-mnist; about 1.3M parameters (adaLN adds a third)."""
    return NextXTransformer(latent_channels, grid, num_classes, partition, partition_size, dim, depth, num_heads,
                            mlp_ratio)


__all__ = ["KLAutoencoder", "KLAutoencoderLoss", "AutoencoderPipeline", "kl_ae_mnist", "NextXTransformer",
           "NextXFlowMatching", "next_x_sample", "Partition", "KINDS", "NextXPipeline", "xar_mnist"]

register_benchmark("xar", "models.xar.bench:run")
register_ablation("xar", "models.xar.ablation_study:ABLATION")
