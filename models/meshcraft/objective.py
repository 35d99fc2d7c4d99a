"""Rectified flow over padded face-latent sets (zoo's FlowMatching), cut to each batch's longest mesh."""

from __future__ import annotations

import torch

from models.meshcraft.vae import trimmed
from zoo import generators
from zoo.objectives.base import LossOutput
from zoo.objectives.flow import FlowMatching, FlowSample, flow_sample


class FaceLatentFlow(FlowMatching):
    """Batches {"x1": normalised latents (B, F_max, D), "mask": (B, F_max), "cond": (B, 2)}.
    Uniform or logit-normal times, ``cond_drop_prob`` of rows lose both conditions (for guidance)."""

    def loss(self, net, x1: torch.Tensor, mask: torch.Tensor, cond: torch.Tensor,
             generator: torch.Generator | None = None) -> LossOutput:
        mask, x1 = trimmed(mask, x1)
        return super().loss(net, x1, cond, mask=mask, generator=generator)

    @torch.no_grad()
    def evaluate(self, net, dataloader, generator: torch.Generator | None = None, **unused) -> dict:
        """Mean velocity MSE over the validation batches (fixed draws)."""
        total, n = 0.0, 0
        device = next(net.parameters()).device
        for batch in dataloader:
            out = self.loss(net, **{k: v.to(device) for k, v in batch.items()}, generator=generator)
            total, n = total + out.loss.item(), n + 1
        return {"val_velocity_mse": total / max(n, 1)}


def sample_latents(net, cond: torch.Tensor, mask: torch.Tensor, steps: int, guidance_scale: float,
                   solver="euler", generator: torch.Generator | None = None) -> FlowSample:
    """Normalised latents (B, F, D) for conditions (B, 2) and face masks (B, F); padded rows stay noise.
    The core's flow sampler (``flow_sample``) on noise drawn for the masked set."""
    x0 = generators.randn((*mask.shape, net.latent_dim), generator, device=mask.device)
    return flow_sample(net, x0=x0, steps=steps, solver=solver, cond=cond, guidance_scale=guidance_scale,
                                 mask=padding_mask(mask))


def padding_mask(mask: torch.Tensor) -> torch.Tensor | None:
    """The mask, or None where no row is padded (every mesh in the batch the same size, batch 1 always):
    the same attention, but without a mask SDPA skips building one per block and takes its faster path."""
    return None if bool(mask.all()) else mask
