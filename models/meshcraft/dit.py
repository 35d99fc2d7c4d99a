"""The flow DiT over face latents (MeshCraft section 3.2).

A set of F face latents (B, F, latent_dim), padded to the batch's longest mesh and masked, is denoised
by adaLN-Zero transformer blocks. The condition vector is time + category + face count: the face
count goes through the same sinusoidal MLP as time (of n / max_faces) and is added to the timestep
embedding, as in the paper. Classifier-free guidance drops both: category -> the null index,
face count -> a learned null vector (the mask still sets how many faces are generated).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from zoo.nn import AdaLNZero, TimestepEmbedding, TransformerBlock, bidirectional_blocks, modulate


def check_mesh_cond(cond: torch.Tensor, num_categories: int, max_faces: int) -> None:
    """cond (B, 2) = (category in [0, C], face count in [0, max_faces]); C and 0 mean none."""
    if cond.dim() != 2 or cond.shape[1] != 2:
        raise ValueError(f"cond must be (B, 2) = (category, face count); got {tuple(cond.shape)}")
    cat, count = cond[:, 0], cond[:, 1]
    if cat.min() < 0 or cat.max() > num_categories:
        raise ValueError(f"categories must lie in [0, {num_categories}] ({num_categories} = none)")
    if count.min() < 0 or count.max() > max_faces:
        raise ValueError(f"face counts must lie in [1, {max_faces}] (0 = none)")


class FaceCountEmbedding(nn.Module):
    """Face counts (B,) in [0, max_faces] -> (B, dim): the sinusoidal time MLP of n / max_faces, and a
    learned null vector for count 0 (none, the guidance-dropped rows). Shared by the DiT and the AR prefix."""

    def __init__(self, dim: int, max_faces: int):
        super().__init__()
        self.max_faces = max_faces
        self.mlp = TimestepEmbedding(dim)
        self.null = nn.Parameter(torch.zeros(dim))

    def forward(self, count: torch.Tensor) -> torch.Tensor:
        emb = self.mlp(count.float() / self.max_faces)
        return torch.where((count > 0)[:, None], emb, self.null.to(emb.dtype))


def drop_mesh_cond(cond: torch.Tensor, drop: torch.Tensor, num_categories: int) -> torch.Tensor:
    """Rows ``drop`` (B,) lose both conditions: category -> the null index, face count -> 0 (none).
    Shared by the DiT and the AR baseline, which are guided over the same two conditions."""
    null = torch.tensor([num_categories, 0], device=cond.device, dtype=cond.dtype)
    return torch.where(drop[:, None], null, cond)


class FaceLatentDiT(nn.Module):
    """Args:
        latent_dim: the mesh VAE's latent size per face.
        num_categories: categories 0..C-1 (C is the null category).
        max_faces: the largest face count trained on (the count embedding does not extrapolate).
        dim, depth, num_heads, mlp_ratio: transformer size.
        face_count_embedding: False leaves the count out of the condition (the ablation); the mask
            alone then says how many faces there are.
    """

    def __init__(self, latent_dim: int, num_categories: int, max_faces: int, dim: int, depth: int, num_heads: int,
                 mlp_ratio: float = 4.0, face_count_embedding: bool = True):
        super().__init__()
        self.latent_dim, self.num_categories, self.max_faces = latent_dim, num_categories, max_faces
        self.face_count_embedding = face_count_embedding
        self.head_dim = dim // num_heads
        self.x_in = nn.Linear(latent_dim, dim)
        self.time_emb = TimestepEmbedding(dim)
        self.count_emb = FaceCountEmbedding(dim, max_faces)
        self.category_emb = nn.Embedding(num_categories + 1, dim)
        nn.init.normal_(self.category_emb.weight, std=0.02)
        self.blocks = nn.ModuleList(TransformerBlock(dim, num_heads, mlp_ratio, cond_dim=dim) for _ in range(depth))
        self.final_norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.final_ada = AdaLNZero(dim, dim, 2)
        self.out = nn.Linear(dim, latent_dim)
        # Small, not zero (DiT zeroes it): the blocks start as the identity through adaLN-Zero anyway,
        # and a zero output layer would give every other weight a zero gradient at the first step.
        nn.init.normal_(self.out.weight, std=0.02)
        nn.init.zeros_(self.out.bias)

    def check_cond(self, cond: torch.Tensor) -> None:
        check_mesh_cond(cond, self.num_categories, self.max_faces)

    def drop_cond(self, cond: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
        return drop_mesh_cond(cond, drop, self.num_categories)

    def condition(self, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """(B, dim): time + category + face count embeddings."""
        self.check_cond(cond)
        c = self.time_emb(t) + self.category_emb(cond[:, 0])
        if self.face_count_embedding:
            c = c + self.count_emb(cond[:, 1])
        return c

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """Noisy latents x (B, F, latent_dim), times t (B,), cond (B, 2), mask (B, F) -> velocity."""
        c = self.condition(t, cond)
        h = bidirectional_blocks(self.blocks, self.x_in(x.to(self.x_in.weight.dtype)), self.head_dim, mask, c)
        shift, scale = self.final_ada(c)
        return self.out(modulate(self.final_norm(h), shift, scale))
