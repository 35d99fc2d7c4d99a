"""Image metrics in the feature space of the project's own digit classifier (classifier.py).

- cls-FID: torchmetrics' Frechet distance with the classifier's penultimate layer as the feature
  module. Not FID: no Inception network is involved; never report it as FID.
- precision / recall: k-NN manifold estimates (Kynkaenniemi et al., 2019) in the same features.
- class accuracy: how often the classifier assigns a class-conditional sample its requested class.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from models.image_kit.classifier import DigitClassifier


class ClassifierFeatures(nn.Module):
    """The classifier's penultimate features as a torchmetrics feature extractor."""

    def __init__(self, classifier: DigitClassifier):
        super().__init__()
        self.classifier = classifier
        self.num_features = classifier.num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(images.float())


@torch.no_grad()
def cls_fid(classifier: DigitClassifier, real: torch.Tensor, fake: torch.Tensor, batch: int = 500) -> float:
    """Frechet distance between real and generated images (N, 1, H, W) in [0, 1], in the classifier's
    feature space (torchmetrics' FID machinery with a custom feature module)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=ClassifierFeatures(classifier.eval()), normalize=True)
    for images, is_real in ((real, True), (fake, False)):
        for chunk in images.split(batch):
            metric.update(chunk, real=is_real)
    return float(metric.compute())


def knn_radii(features: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest other point. (N,)"""
    d = torch.cdist(features, features)
    return d.kthvalue(k + 1, dim=1).values  # +1: the point itself is at distance 0


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Precision: share of fake features inside the real manifold (the union of k-NN balls around
    real points); recall: share of real features inside the fake manifold. real (N, F), fake (M, F)."""
    d = torch.cdist(fake, real)  # (M, N)
    precision = (d <= knn_radii(real, k)[None]).any(1).float().mean().item()
    recall = (d.T <= knn_radii(fake, k)[None]).any(1).float().mean().item()
    return precision, recall


@torch.no_grad()
def image_metrics(classifier: DigitClassifier, real: torch.Tensor, fake: torch.Tensor,
                  fake_labels: torch.Tensor | None = None, k: int = 3) -> dict:
    """cls-FID, precision, recall and (given the requested labels) class accuracy of ``fake``."""
    classifier.eval()
    out = {"cls_fid": cls_fid(classifier, real, fake)}
    real_f = torch.cat([classifier.features(c) for c in real.split(500)])
    fake_f = torch.cat([classifier.features(c) for c in fake.split(500)])
    out["precision"], out["recall"] = precision_recall(real_f, fake_f, k)
    if fake_labels is not None:
        pred = torch.cat([classifier(c).argmax(-1) for c in fake.split(500)])
        out["class_accuracy"] = (pred == fake_labels).float().mean().item()
    return out
