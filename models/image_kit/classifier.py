"""A small CNN digit classifier, trained in the project, that stands in for Inception in image metrics.

No Inception weights exist offline, so FID proper cannot be computed here. Its penultimate features
give "cls-FID" (the Frechet distance in this classifier's feature space) and k-NN precision/recall;
its predictions give the class accuracy of class-conditional samples. Figures are comparable only
between runs that use the same classifier checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo.checks import check_tensor
from zoo.objectives.base import LossOutput
from zoo.pipeline import Pipeline


class DigitClassifier(nn.Module):
    """Args:
        num_classes: output classes.
        width: channels of the first conv stage (the second has twice as many).
        num_features: the penultimate layer's width (the feature space of cls-FID).
        image_size: input side (28 for MNIST).
    """

    def __init__(self, num_classes: int = 10, width: int = 32, num_features: int = 128, image_size: int = 28):
        super().__init__()
        self.num_features, self.image_size = num_features, image_size
        self.conv = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.GELU(), nn.MaxPool2d(2))
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * (image_size // 4) ** 2, num_features), nn.GELU())
        self.out = nn.Linear(num_features, num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) in [0, 1] -> penultimate features (B, num_features)."""
        return self.fc(self.conv(images * 2 - 1))

    def forward(self, images: torch.Tensor, t=None, cond=None) -> torch.Tensor:
        """Class logits (B, num_classes)."""
        return self.out(self.features(images))


class ClassifierLoss:
    def loss(self, net: DigitClassifier, x1: torch.Tensor, cond: torch.Tensor, generator=None) -> LossOutput:
        logits = net(x1)
        loss = F.cross_entropy(logits, cond)
        return LossOutput(loss, {"acc": (logits.argmax(-1) == cond).float().mean().detach()})

    @torch.no_grad()
    def evaluate(self, net: DigitClassifier, dataloader, **unused) -> dict:
        right = count = 0
        for batch in dataloader:
            right += (net(batch["x1"]).argmax(-1) == batch["cond"]).sum().item()
            count += len(batch["cond"])
        return {"test_accuracy": right / count, "test_images": count}


@dataclass
class ClassifierOutput:
    probs: torch.Tensor  # (B, num_classes)
    nfe: int = 1

    @property
    def labels(self) -> torch.Tensor:  # (B,)
        return self.probs.argmax(-1)

    def describe(self) -> list[str]:
        return [f"predicted labels: {self.labels.tolist()}"]

    def save(self, out_dir: Path) -> Path:
        """predictions.json: each image's label and class probabilities."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        rows = [{"label": int(p.argmax()), "probs": [round(float(v), 6) for v in p]} for p in self.probs]
        (out_dir / "predictions.json").write_text(json.dumps(rows, indent=1))
        return out_dir / "predictions.json"


class ClassifierPipeline(Pipeline):
    """``pipe(images)`` -> ClassifierOutput: class probabilities (B, num_classes) of (B, 1, H, W) images."""

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, generator=None) -> ClassifierOutput:
        self.net.eval()
        side = self.net.image_size
        check_tensor("images", images, (None, 1, side, side), integer=False, low=0.0, high=1.0)
        return ClassifierOutput(torch.softmax(self.net(images.to(self.device, self.dtype)), -1))
