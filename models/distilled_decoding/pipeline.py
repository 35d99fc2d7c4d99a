"""Sampling API of the student and of naive parallel sampling; same arguments as the teacher's
(models/image_kit/pipeline.py), so the benchmark calls all three alike."""

from __future__ import annotations

import torch

from models.distilled_decoding.objective import marginal_sample, student_sample
from models.image_kit.pipeline import ImageOutput, TokenImagePipeline, check_labels
from zoo import generators
from zoo.checks import check_tensor


class DistilledDecodingPipeline(TokenImagePipeline):
    """``pipe(class_labels=[3, 7], steps=1, generator=g)``: one network pass maps noise to all tokens;
    ``steps=2`` keeps the first ``keep`` tokens (default half) and runs once more on the same noise."""

    settings = ("loss_type",)  # the loss it was trained with (config.json)

    @torch.no_grad()
    def __call__(self, class_labels=None, batch_size: int | None = None, steps: int = 1, keep: int | None = None,
                 noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
                 output_type: str = "images") -> ImageOutput:
        labels = check_labels(class_labels, batch_size, self.net.num_classes, generator, self.device)
        shape = (labels.shape[0], self.net.seq_len, self.net.code_dim)
        if noise is None:
            noise = generators.randn(shape, generator, device=self.device, dtype=self.dtype)
        elif tuple(noise.shape) != shape:
            raise ValueError(f"noise has shape {tuple(noise.shape)}; expected {shape}")
        else:
            check_tensor("noise", noise, shape, integer=False)  # finite values
        loss_type = self.pipeline_kwargs.get("loss_type", "ce")
        out = student_sample(self.net, noise.to(self.device), labels, steps=steps, keep=keep, loss_type=loss_type)
        return self.output(out.tokens, labels, out.nfe, output_type)


class ParallelPipeline(TokenImagePipeline):
    """Naive one-step parallel sampling: every token drawn independently from its per-class marginal."""

    @torch.no_grad()
    def __call__(self, class_labels=None, batch_size: int | None = None, temperature: float = 1.0,
                 generator: torch.Generator | None = None, output_type: str = "images") -> ImageOutput:
        labels = check_labels(class_labels, batch_size, self.net.num_classes, generator, self.device)
        out = marginal_sample(self.net, labels, temperature, generator)
        return self.output(out.tokens, labels, out.nfe, output_type)
