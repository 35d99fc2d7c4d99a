"""xAR pipelines: the autoencoder on its own, and the next-X generator, which samples normalised latents
entity by entity and decodes them. Both return ``models.image_kit.pipeline.ImageOutput`` (no tokens).

A generator's checkpoint carries its autoencoder in ``vae/`` and the latent normalisation in
``latent_stats.json``, so one folder is enough to sample.
"""

from __future__ import annotations

from pathlib import Path

import torch

from models.image_kit.pipeline import ImageOutput, check_labels
from models.xar.objective import next_x_sample
from zoo.checks import check_bool, check_tensor
from zoo.objectives.flow import check_solver
from zoo.pipeline import Pipeline, load_latent_components, save_latent_components

OUTPUT_TYPES = ("images", "latents")


class AutoencoderPipeline(Pipeline):
    """``pipe(images)``: reconstructions of (B, 1, 28, 28) images in [0, 1] through the posterior mean."""

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, generator=None) -> ImageOutput:
        self.net.eval()
        check_tensor("images", images, (None, 1, 28, 28), integer=False, low=0.0, high=1.0)
        z = self.net.encode(images.to(self.device, self.dtype))
        return ImageOutput(self.net.decode(z), None, None, nfe=1, latents=z)


class NextXPipeline(Pipeline):
    """``pipe(class_labels=[3, 7], steps=20, guidance_scale=2.0, generator=g)`` -> ImageOutput with
    ``nfe`` = every forward pass of the network: the flow steps summed over the entities (a separate
    cache pass, when asked for, counts too; ``pipe.last_sample`` keeps each count). ``steps`` is one count for every entity or a list with one per entity.
    ``use_cache``, ``fuse_cache_pass`` and ``cfg_batched`` switch the sampler's shortcuts off one by
    one (same latents; for measuring what each buys: models/xar/objective.py)."""

    settings = ("steps", "guidance_scale", "cfg_ramp", "solver")  # sampling defaults (config.json)
    default_task = "images"  # recipes/eval.py: models/image_kit/evaluate.py

    def __init__(self, net, meta=None, vae=None, latent_stats: dict | None = None, **pipeline_kwargs):
        super().__init__(net.eval(), meta=meta, **pipeline_kwargs)
        if vae is None or latent_stats is None:
            raise ValueError("NextXPipeline needs its autoencoder and latent_stats")
        self.vae = vae.eval()
        self.latent_mean = torch.tensor(latent_stats["mean"])
        self.latent_std = torch.tensor(latent_stats["std"])
        self.last_sample = None

    @classmethod
    def load_components(cls, directory: Path, net) -> dict:
        return load_latent_components(directory, net.latent_channels, "latent_channels", "xAR transformer")

    def save_components(self, directory: Path) -> None:
        save_latent_components(directory, self.vae, self.latent_mean, self.latent_std)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents (B, C, h, w) -> images (B, 1, 28, 28) in [0, 1]."""
        z = latents * self.latent_std[:, None, None].to(latents) + self.latent_mean[:, None, None].to(latents)
        return self.vae.decode(z.to(next(self.vae.parameters()).dtype))

    @torch.no_grad()
    def __call__(self, class_labels=None, batch_size: int | None = None, steps: int | None = None,
                 guidance_scale: float | None = None, cfg_ramp: bool | None = None, solver: str | None = None,
                 generator: torch.Generator | None = None, output_type: str = "images", use_cache: bool = True,
                 fuse_cache_pass: bool = True, cfg_batched: bool = True) -> ImageOutput:
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type={output_type!r}; choose one of {OUTPUT_TYPES}")
        labels = check_labels(class_labels, batch_size, self.net.num_classes, generator, self.device)
        solver = check_solver(self.setting("solver", solver))
        sample = next_x_sample(self.net, labels, steps=self.setting("steps", steps), solver=solver,
                               guidance_scale=self.setting("guidance_scale", guidance_scale),
                               cfg_ramp=check_bool("cfg_ramp", self.setting("cfg_ramp", cfg_ramp)),
                               use_cache=check_bool("use_cache", use_cache),
                               fuse_cache_pass=check_bool("fuse_cache_pass", fuse_cache_pass),
                               cfg_batched=check_bool("cfg_batched", cfg_batched), generator=generator)
        self.last_sample = sample
        images = self.decode(sample.latents) if output_type == "images" else None
        return ImageOutput(images, None, labels, sample.net_calls, latents=sample.latents, decoder_calls=int(images is not None))
