"""(noise -> tokens) pairs from the teacher, with no real images (Distilled Decoding, sec. 3).

For a label and a noise sequence eps (L, D): for i = 0..L-1, p_i = teacher(class, q_<i) (guided),
q_i = flow_map(eps_i; p_i). So q_i depends only on eps_0..eps_i, and over noises the pairs' tokens
follow the teacher's guided distribution.
"""

from __future__ import annotations

import torch

from models.distilled_decoding.flow_map import flow_map
from models.image_kit.network import ImageARTransformer
from models.image_kit.objective import image_ar_sample


@torch.no_grad()
def generate_pairs(teacher: ImageARTransformer, codebook: torch.Tensor, noise: torch.Tensor, labels: torch.Tensor,
                   guidance_scale: float = 1.0, temperature: float = 1.0, ode_steps: int = 32) -> torch.Tensor:
    """Tokens (B, L) for noise (B, L, D) and labels (B,), under the teacher's guided distribution
    over the unit codebook (K, D)."""
    if noise.shape[1] != teacher.seq_len or noise.shape[2] != codebook.shape[1]:
        raise ValueError(f"noise has shape {tuple(noise.shape)}; expected (B, {teacher.seq_len}, "
                         f"{codebook.shape[1]})")

    def pick(i: int, probs: torch.Tensor) -> torch.Tensor:
        return flow_map(noise[:, i], probs, codebook, steps=ode_steps)[0]

    return image_ar_sample(teacher, labels, guidance_scale=guidance_scale, temperature=temperature, pick=pick).tokens


def teacher_settings(data: dict) -> dict:
    """A student's meta.json ``data`` -> the teacher's sampling settings its pairs were made with
    ({"guidance_scale", "temperature"}, those recorded). Checkpoints trained before the rename to
    ``guidance_scale`` (late November 2026) recorded ``guidance``."""
    data = {"guidance_scale": data["guidance"], **data} if "guidance" in data else data
    return {k: data[k] for k in ("guidance_scale", "temperature") if k in data}
