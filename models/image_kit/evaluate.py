"""Sample quality of any class-conditional token-image pipeline, against the digits' test split.

    python recipes/eval.py model=distilled_decoding-mnist task=images +kwargs.steps=1
    python recipes/eval.py model=image_ar-mnist task=images
    python recipes/eval.py model=xar-mnist
"""

from __future__ import annotations

import statistics
import time

import torch

from datamodules.digits import reference_digits
from models.image_kit.metrics import image_metrics
from models.image_kit.objective import ClassConditionalAR
from zoo.pipeline import load
from zoo.timing import time_calls


@torch.no_grad()
def generate(pipe, labels: torch.Tensor, batch_size: int, generator: torch.Generator, **sample_kwargs):
    """(images, tokens, nfe, seconds) for all labels, in batches; tokens None for a model of continuous
    latents (models/xar)."""
    images, tokens, nfe, start = [], [], 0, time.perf_counter()
    for chunk in labels.split(batch_size):
        out = pipe(class_labels=chunk, generator=generator, **sample_kwargs)
        images.append(out.images.cpu())
        if out.tokens is not None:
            tokens.append(out.tokens.cpu())
        nfe = out.nfe
    return torch.cat(images), torch.cat(tokens) if tokens else None, nfe, time.perf_counter() - start


def seconds_per_image(pipe, batch: int, repeats: int, images: int, seed: int, name: str = "s_per_image",
                      **kwargs) -> dict:
    """Seconds per image over ``images`` images drawn ``batch`` at a time, end to end (the pipeline
    call), after one warm-up call: {name: the median of ``repeats``, name_min, name_max, how measured}."""
    labels = torch.arange(images) % 10

    def draw(r):
        g = torch.Generator().manual_seed(seed + r)
        for chunk in labels.split(batch):
            pipe(class_labels=chunk, generator=g, **kwargs)

    timing, _ = time_calls(draw, repeats=repeats, device=pipe.device,
                           warmup_fn=lambda r: pipe(class_labels=labels[:batch],
                                                    generator=torch.Generator().manual_seed(seed), **kwargs))
    return timing.fields(name, scale=images, digits=6)


@torch.no_grad()
def teacher_nll(teacher_net, tokens: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean NLL (bits per token) of sampled tokens under the class-conditional teacher (no guidance)."""
    return torch.cat([ClassConditionalAR().nll(teacher_net, t, c)
                      for t, c in zip(tokens.split(500), labels.split(500))]).mean().item()


def sample_quality(images: torch.Tensor, tokens: torch.Tensor | None, labels: torch.Tensor, classifier, teacher_net,
                   source: str = "mnist5k", reference: str = "test") -> dict:
    """cls-FID, precision, recall, class accuracy against the test split (or ``reference="train_ref"``,
    the train digits settings are chosen on: datamodules/digits.py), and teacher NLL (of token samples
    only: a continuous-latent sample has no tokens to score)."""
    real = reference_digits(source, reference)
    metrics = image_metrics(classifier, real, images, labels)
    if tokens is not None and teacher_net is not None:
        metrics["teacher_nll_bits_per_token"] = teacher_nll(teacher_net, tokens, labels)
    return metrics


def images_task(pipe, generator: torch.Generator, num_samples: int = 1000, batch_size: int = 250,
                classifier: str = "digit_cnn-mnist", teacher: str = "image_ar-mnist", reference: str = "test",
                **sample_kwargs) -> dict:
    """Samples ``num_samples`` images, an equal number of each class, and scores them against
    ``reference`` (``test``, or ``train_ref`` to choose settings)."""
    labels = torch.arange(num_samples) % 10
    images, tokens, nfe, seconds = generate(pipe, labels, batch_size, generator, **sample_kwargs)
    teacher_net = load(teacher).net if tokens is not None else None
    metrics = sample_quality(images, tokens, labels, load(classifier).net, teacher_net, reference=reference)
    return {**metrics, "num_samples": num_samples, "nfe": nfe, "seconds_per_image": seconds / num_samples,
            "reference": reference, "sample_kwargs": sample_kwargs}
