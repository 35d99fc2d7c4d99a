"""Pipelines over token grids: every image model here returns an ``ImageOutput``.

A checkpoint that makes images from tokens carries its tokenizer in a ``tokenizer/`` sub-folder
(itself a checkpoint directory), so one folder is enough to sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from models.image_kit.objective import image_ar_sample
from zoo import generators
from zoo.checks import MAX_BATCH, check_int, check_tensor
from zoo.pipeline import Pipeline
from zoo.pretrained import TOKENIZER_DIR, CheckpointError, load_net, save_pretrained

OUTPUT_TYPES = ("images", "tokens")


@dataclass
class ImageOutput:
    images: torch.Tensor | None  # (B, C, H, W) in [0, 1]; None with output_type="tokens"
    tokens: torch.Tensor | None  # (B, L) raster order
    labels: torch.Tensor | None  # (B,)
    nfe: int  # forward passes of the generating network (CONTRIBUTING.md, "NFE")
    latents: torch.Tensor | None = None  # (B, C, h, w): a continuous-latent model's sample (models/xar)
    decoder_calls: int = 0  # passes of the tokenizer's / autoencoder's decoder, counted apart from nfe

    def describe(self) -> list[str]:
        """What recipes/sample.py prints."""
        return [] if self.labels is None else [f"class labels: {self.labels.tolist()}"]

    def save(self, out_dir: Path, name: str = "samples.png", nrow: int = 8) -> Path:
        """A PNG grid of the images (rows of ``nrow``)."""
        from torchvision.utils import save_image

        if self.images is None:
            raise ValueError("no images to save: sampled with output_type='tokens'")
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / name
        save_image(self.images.float().cpu(), path, nrow=min(nrow, len(self.images)), padding=1, pad_value=0.5)
        return path


def check_labels(class_labels, batch_size: int | None, num_classes: int, generator, device) -> torch.Tensor:
    """class_labels (list or tensor) as a (B,) tensor; without them, ``batch_size`` labels drawn
    uniformly. Raises a ValueError that says what is allowed."""
    batch_size = check_int("batch_size", batch_size, low=1, high=MAX_BATCH, optional=True)
    if class_labels is None:
        if batch_size is None:
            raise ValueError("give class_labels (a list of digits) or a batch_size >= 1")
        return generators.randint(0, num_classes, (batch_size,), generator, device=device)
    try:
        labels = torch.as_tensor(class_labels, device=device)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"class_labels={class_labels!r}: expected a list of integers in [0, {num_classes - 1}]") from None
    if labels.dim() > 1:
        raise ValueError(f"class_labels must be one label a row (1-d); got shape {tuple(labels.shape)}")
    labels = labels.flatten()  # a single integer is one row
    if labels.numel() == 0:
        raise ValueError("class_labels is empty")
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"class_labels={class_labels!r}: expected integers in [0, {num_classes - 1}], got {labels.dtype}")
    labels = labels.long()
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"class_labels must lie in [0, {num_classes - 1}]; got {labels.tolist()}")
    if batch_size is not None and batch_size != labels.numel():
        raise ValueError(f"batch_size={batch_size} disagrees with {labels.numel()} class_labels")
    return labels


class TokenImagePipeline(Pipeline):
    """Base: a network that makes token grids + the tokenizer that decodes them. Both are put in eval
    mode once, here, not at every call: at batch 1 a recursive ``.eval()`` costs a tenth of a
    one-step sample."""

    default_task = "images"

    def __init__(self, net, meta=None, tokenizer=None, **pipeline_kwargs):
        super().__init__(net.eval(), meta=meta, **pipeline_kwargs)
        if tokenizer is None:
            raise ValueError(f"{type(self).__name__} needs its tokenizer (a VQAutoencoder)")
        self.tokenizer = tokenizer.eval()

    @classmethod
    def load_components(cls, directory: Path, net) -> dict:
        path = directory / TOKENIZER_DIR
        if not path.is_dir():
            raise CheckpointError(f"{path}: missing; this checkpoint needs its tokenizer")
        tokenizer, config = load_net(path)
        if getattr(tokenizer, "codebook_size", None) != net.num_codes:
            raise CheckpointError(f"{path}: holds {config['model']!r} with {getattr(tokenizer, 'codebook_size', 'no')} "
                                  f"codes, but the network draws {net.num_codes}: not this model's tokenizer")
        return {"tokenizer": tokenizer}

    def save_components(self, directory: Path) -> None:
        save_pretrained(self.tokenizer, directory / TOKENIZER_DIR)

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L) raster tokens -> images (B, C, H, W)."""
        side = int(round(tokens.shape[1] ** 0.5))
        return self.tokenizer.decode(tokens.view(-1, side, side))

    def output(self, tokens: torch.Tensor, labels: torch.Tensor, nfe: int, output_type: str) -> ImageOutput:
        """output_type "images" decodes the tokens; "tokens" skips the tokenizer (as diffusers'
        output_type="latent"), which is how the benchmark times token generation alone."""
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type={output_type!r}; choose one of {OUTPUT_TYPES}")
        images = output_type == "images"
        return ImageOutput(self.decode(tokens) if images else None, tokens, labels, nfe, decoder_calls=int(images))


class ImageARPipeline(TokenImagePipeline):
    """The AR teacher: ``pipe(class_labels=[3, 7], guidance_scale=2.0, temperature=1.0, generator=g)``;
    one network evaluation per token."""

    settings = ("guidance_scale", "temperature")  # sampling defaults (config.json)

    @torch.no_grad()
    def __call__(self, class_labels=None, batch_size: int | None = None, guidance_scale: float | None = None,
                 temperature: float | None = None, generator: torch.Generator | None = None,
                 output_type: str = "images") -> ImageOutput:
        labels = check_labels(class_labels, batch_size, self.net.num_classes, generator, self.device)
        guidance_scale, temperature = self.setting("guidance_scale", guidance_scale), self.setting("temperature", temperature)
        out = image_ar_sample(self.net, labels, guidance_scale=guidance_scale, temperature=temperature,
                                          generator=generator)
        return self.output(out.tokens, labels, out.nfe, output_type)


class VQPipeline(Pipeline):
    """The tokenizer on its own: ``pipe(images)`` returns their reconstructions and tokens."""

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, generator=None) -> ImageOutput:
        self.net.eval()
        check_tensor("images", images, (None, 1, None, None), integer=False, low=0.0, high=1.0)
        stride = 2 ** self.net.downsample
        if images.shape[-1] % stride or images.shape[-2] % stride:  # the strided encoder would drop the rest
            raise ValueError(f"images: height and width must be multiples of {stride} (the tokenizer's grid "
                             f"stride); got {tuple(images.shape[-2:])}")
        codes = self.net.encode(images.to(self.device, self.dtype))
        return ImageOutput(self.net.decode(codes), codes.flatten(1), None, nfe=1)
