"""Sample quality of any class-conditional token-image pipeline, against the digits' test split.

    python recipes/eval.py model=distilled_decoding-mnist task=images +kwargs.steps=1
    python recipes/eval.py model=image_ar-mnist task=images
"""

from __future__ import annotations

import time

import torch

from datamodules.digits import digits_split
from models.image_ar.metrics import image_metrics
from models.image_ar.objective import ClassConditionalAR
from zoo.pipeline import load


@torch.no_grad()
def generate(pipe, labels: torch.Tensor, batch_size: int, generator: torch.Generator, **sample_kwargs):
    """(images, tokens, nfe, seconds) for all labels, in batches."""
    images, tokens, nfe, start = [], [], 0, time.perf_counter()
    for chunk in labels.split(batch_size):
        out = pipe(class_labels=chunk, generator=generator, **sample_kwargs)
        images.append(out.images.cpu())
        tokens.append(out.tokens.cpu())
        nfe = out.nfe
    return torch.cat(images), torch.cat(tokens), nfe, time.perf_counter() - start


@torch.no_grad()
def teacher_nll(teacher_net, tokens: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean NLL (bits per token) of sampled tokens under the class-conditional teacher (no guidance)."""
    return torch.cat([ClassConditionalAR().nll(teacher_net, t, c)
                      for t, c in zip(tokens.split(500), labels.split(500))]).mean().item()


def sample_quality(images: torch.Tensor, tokens: torch.Tensor, labels: torch.Tensor, classifier, teacher_net,
                   source: str = "mnist5k") -> dict:
    """cls-FID, precision, recall, class accuracy against the test split, and teacher NLL."""
    real, _ = digits_split(source, "test")
    metrics = image_metrics(classifier, real, images, labels)
    metrics["teacher_nll_bits_per_token"] = teacher_nll(teacher_net, tokens, labels)
    return metrics


def images_task(pipe, generator: torch.Generator, num_samples: int = 1000, batch_size: int = 250,
                classifier: str = "digit_cnn-mnist", teacher: str = "image_ar-mnist", **sample_kwargs) -> dict:
    """Samples ``num_samples`` images, an equal number of each class, and scores them."""
    labels = torch.arange(num_samples) % 10
    images, tokens, nfe, seconds = generate(pipe, labels, batch_size, generator, **sample_kwargs)
    metrics = sample_quality(images, tokens, labels, load(classifier).net, load(teacher).net)
    return {**metrics, "num_samples": num_samples, "nfe": nfe, "seconds_per_image": seconds / num_samples,
            "sample_kwargs": sample_kwargs}
