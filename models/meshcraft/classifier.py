"""A point-cloud classifier over the mesh categories: the recognisability measure of generated meshes.

COV / MMD / 1-NNA say whether a generated set is near the reference set, and connectivity says whether
faces form surfaces; neither says whether a mesh asked to be a chair looks like one. A PointNet
(shared per-point MLP, max-pooled) trained on surface samples of the training meshes does: the share of
generated meshes it assigns to the category they were asked for, beside the same share for the
reference test meshes (the ceiling). It is a metric network, like ``digit_cnn-mnist`` for images:
figures are comparable only between runs that use the same classifier checkpoint.

Trained with ``python recipes/train.py model=mesh_pointnet``; ``recipes/eval.py
model=mesh_pointnet-furniture`` reports its accuracy on the held-out test meshes.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from models.image_kit.classifier import ClassifierOutput
from zoo.checks import check_tensor
from zoo.objectives.base import LossOutput
from zoo.pipeline import Pipeline


class PointCloudClassifier(nn.Module):
    """Args:
        num_classes: output classes (the mesh categories, in ``CATEGORIES`` order).
        width: the per-point MLP's first width (then 2x, then ``num_features``).
        num_features: the max-pooled global feature's width.
        num_points: surface points a mesh is judged from (the pipeline samples this many).
    """

    def __init__(self, num_classes: int = 4, width: int = 64, num_features: int = 256, num_points: int = 1024):
        super().__init__()
        self.num_classes, self.num_points = num_classes, num_points
        self.point_mlp = nn.Sequential(nn.Linear(3, width), nn.GELU(), nn.Linear(width, 2 * width), nn.GELU(),
                                       nn.Linear(2 * width, num_features))
        self.head = nn.Sequential(nn.LayerNorm(num_features), nn.Linear(num_features, num_features // 2), nn.GELU(),
                                  nn.Linear(num_features // 2, num_classes))

    def forward(self, points: torch.Tensor, t=None, cond=None) -> torch.Tensor:
        """(B, P, 3) points in the [-0.5, 0.5] cube -> class logits (B, num_classes); any P (max over points)."""
        return self.head(self.point_mlp(points).amax(1))


def subsample(points: torch.Tensor, num_points: int, generator: torch.Generator | None) -> torch.Tensor:
    """(B, P, 3) -> (B, num_points, 3): a random subset of each row's points (without replacement)."""
    b, p, _ = points.shape
    if num_points >= p:
        return points
    idx = torch.rand(b, p, generator=generator).argsort(1)[:, :num_points]  # (B, num_points)
    return points.gather(1, idx[..., None].expand(-1, -1, 3))


class PointCloudLoss:
    """Cross-entropy on a random ``num_points`` subset of each mesh's surface samples, scaled per axis
    by up to ``scale_jitter`` (augmentation: a generated chair is rarely exactly a training one's size).

    Batches: {"x1": (B, P, 3) surface points, "cond": (B,) category index}."""

    def __init__(self, num_points: int = 1024, scale_jitter: float = 0.1):
        self.num_points, self.scale_jitter = num_points, scale_jitter

    def loss(self, net: PointCloudClassifier, x1: torch.Tensor, cond: torch.Tensor, generator=None,
             **unused) -> LossOutput:
        points = subsample(x1, self.num_points, generator)
        scale = 1 + self.scale_jitter * (2 * torch.rand(len(points), 1, 3, generator=generator) - 1)
        logits = net(points * scale.to(points))
        loss = F.cross_entropy(logits, cond)
        return LossOutput(loss, {"acc": (logits.argmax(-1) == cond).float().mean().detach()})

    @torch.no_grad()
    def evaluate(self, net: PointCloudClassifier, dataloader, **unused) -> dict:
        """Accuracy on the loader's meshes, judged from their first ``net.num_points`` samples (as the
        pipeline judges a mesh)."""
        right = count = 0
        for batch in dataloader:
            right += (net(batch["x1"][:, :net.num_points]).argmax(-1) == batch["cond"]).sum().item()
            count += len(batch["cond"])
        return {"accuracy": right / count, "meshes": count}


class PointCloudClassifierPipeline(Pipeline):
    """``pipe(meshes)`` -> ClassifierOutput: category probabilities (B, num_classes) of trimesh meshes
    (``net.num_points`` area-uniform surface samples each, seeded by the mesh's index) or of a (B, P, 3)
    tensor of points. A mesh without area has no surface to judge: its row is all zeros, so it is never
    counted as any category."""

    default_task = "mesh_categories"

    @torch.no_grad()
    def __call__(self, meshes, generator=None) -> ClassifierOutput:
        self.net.eval()
        if isinstance(meshes, torch.Tensor):
            check_tensor("points", meshes, (None, None, 3), integer=False)
            return ClassifierOutput(torch.softmax(self.net(meshes.to(self.device, self.dtype)).float(), -1).cpu())
        from models.meshcraft.metrics import surface_points

        clouds = [surface_points(m, self.net.num_points, seed=i) for i, m in enumerate(meshes)]
        probs = torch.zeros(len(clouds), self.net.num_classes)
        have = [i for i, c in enumerate(clouds) if c is not None]
        if have:
            points = torch.stack([clouds[i] for i in have]).to(self.device, self.dtype)
            probs[have] = torch.softmax(self.net(points).float(), -1).cpu()
        return ClassifierOutput(probs)


def recognised(pipe: PointCloudClassifierPipeline, meshes: list, asked: list[int]) -> dict:
    """% of ``meshes`` the classifier assigns to the category index each was ``asked`` for (argmax), and
    the mean probability it gives that category."""
    probs = pipe(meshes).probs
    asked_t = torch.as_tensor(asked)
    p_asked = probs[torch.arange(len(asked_t)), asked_t]
    hit = (probs.argmax(-1) == asked_t) & (probs.sum(-1) > 0)
    return {"recognised": 100 * hit.float().mean().item(), "p_asked": p_asked.mean().item()}


def exploded(tokens: np.ndarray, rng: np.random.Generator, spread: int = 24) -> np.ndarray:
    """A control: each face of a mesh's (F, 9) tokens moved by its own random offset of up to ``spread``
    levels on each axis (clipped to the grid). The silhouette survives, the surfaces do not; a measure
    that still calls it a chair cannot see what a person sees."""
    offsets = rng.integers(-spread, spread + 1, (len(tokens), 1, 3))
    return np.clip(tokens.reshape(-1, 3, 3) + offsets, 0, 127).reshape(-1, 9)


@torch.no_grad()
def categories_task(pipe: PointCloudClassifierPipeline, generator: torch.Generator | None = None,
                    per_category: int = 100, test_size: int = 100, max_faces: int = 800,
                    cache_dir: str = ".cache/meshes") -> dict:
    """``recipes/eval.py model=mesh_pointnet-furniture``: accuracy on the first ``per_category`` test
    meshes of each category (never trained on), per category and overall, and on the same meshes
    exploded (``exploded``: each face moved apart, a control for what the classifier is blind to).
    ``test_size`` and ``max_faces`` pick the test split (the data settings it was trained with)."""
    from datamodules.mesh_codec import CATEGORIES
    from models.meshcraft.evaluate import reference_meshes
    from models.meshcraft.pipeline import tokens_to_mesh

    refs = reference_meshes(per_category, test_size, cache_dir, max_faces)
    rng = np.random.default_rng(0)
    out: dict = {}
    hits, blown_hits = [], []
    for c, name in enumerate(CATEGORIES):
        meshes = [tokens_to_mesh(t) for t in refs[name]]
        blown = [tokens_to_mesh(exploded(t, rng)) for t in refs[name]]
        hit = pipe(meshes).labels == c
        blown_hit = pipe(blown).labels == c
        out[f"accuracy/{name}"] = 100 * hit.float().mean().item()
        hits.append(hit)
        blown_hits.append(blown_hit)
    out["accuracy"] = 100 * torch.cat(hits).float().mean().item()
    out["exploded_accuracy"] = 100 * torch.cat(blown_hits).float().mean().item()
    out["meshes"] = sum(len(h) for h in hits)
    return out
