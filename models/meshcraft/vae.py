"""The mesh VAE: one continuous latent per triangle (MeshCraft section 3.1).

Encoder: each face's 9 quantised coordinates (embedded per slot, and as numbers) plus its normal,
area and corner angles -> a bidirectional transformer over the face sequence (RoPE on the face index, padding
masked) -> a diagonal Gaussian per face, (B, F, latent_dim). Decoder: face latents -> a bidirectional
transformer -> logits over the ``levels`` values of each of the 9 coordinates, (B, F, 9, levels), each
coordinate's logits a discretised Gaussian plus free residual logits (``CoordinateHead``).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from datamodules.mesh_codec import from_tokens, unpadded
from zoo import generators
from zoo.nn import TransformerBlock, bidirectional_blocks, init_gpt_weights
from zoo.objectives.base import LossOutput


def face_geometry(tokens: torch.Tensor, levels: int) -> torch.Tensor:
    """Tokens (..., 9) -> (..., 16): the 9 coordinates in [-1, 1], unit normal (3), area (1, scaled),
    the three corner angles / pi. The coordinates as numbers give the encoder their order, which the
    per-value embeddings lack."""
    v = tokens.float().reshape(*tokens.shape[:-1], 3, 3) / (levels - 1)  # (..., corner, zyx) in [0, 1]
    e1, e2 = v[..., 1, :] - v[..., 0, :], v[..., 2, :] - v[..., 0, :]
    cross = torch.linalg.cross(e1, e2)
    norm = cross.norm(dim=-1, keepdim=True)
    normal = cross / norm.clamp(min=1e-8)
    angles = []
    for i in range(3):
        a = v[..., (i + 1) % 3, :] - v[..., i, :]
        b = v[..., (i + 2) % 3, :] - v[..., i, :]
        cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp(min=1e-8)
        angles.append(torch.arccos(cos.clamp(-1, 1)) / math.pi)
    return torch.cat([2 * v.flatten(-2) - 1, normal, 10 * norm / 2, torch.stack(angles, -1)], -1)


class FaceTransformer(nn.Module):
    """Bidirectional transformer over a padded face sequence (B, F, dim), RoPE on the face index."""

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.head_dim = dim // num_heads
        self.blocks = nn.ModuleList(TransformerBlock(dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.norm(bidirectional_blocks(self.blocks, h, self.head_dim, mask))


class CoordinateHead(nn.Module):
    """Hidden states (..., dim) -> logits (..., 9, levels): for each coordinate a discretised Gaussian,
    -((k - mean) / scale)^2 / 2 over the levels k, with its mean and scale predicted, plus free residual
    logits that start at zero.

    Why: a plain linear head must learn a bump per level before the cross-entropy says anything about
    *how far* a wrong level is; with the Gaussian term the same cross-entropy pulls the mean towards the
    right level from anywhere (a regression signal) and then sharpens the scale (README: the retrained
    VAE's corner error fell sevenfold in fewer steps). The residual keeps the full categorical (two likely levels, say).
    """

    def __init__(self, dim: int, levels: int):
        super().__init__()
        self.levels = levels
        self.gaussian = nn.Linear(dim, 2 * 9)  # 9 means, 9 log-scales
        self.residual = nn.Linear(dim, 9 * levels)

    def reset_parameters(self) -> None:
        """Start near a broad Gaussian (scale 8 levels) at the middle of the range, residual zero."""
        nn.init.normal_(self.gaussian.weight, std=0.02)
        nn.init.zeros_(self.gaussian.bias)
        nn.init.constant_(self.gaussian.bias[9:], math.log(8.0))
        nn.init.zeros_(self.residual.weight)
        nn.init.zeros_(self.residual.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        mean, log_scale = self.gaussian(h).float().unflatten(-1, (2, 9)).unbind(-2)  # (..., 9) each
        mean = (self.levels - 1) * (0.5 + 0.5 * mean)
        scale = log_scale.clamp(math.log(0.02), math.log(self.levels)).exp()
        k = torch.arange(self.levels, device=h.device, dtype=mean.dtype)
        gaussian = -0.5 * ((k - mean[..., None]) / scale[..., None]) ** 2  # (..., 9, levels)
        return gaussian + self.residual(h).float().unflatten(-1, (9, self.levels))


class MeshVAE(nn.Module):
    """Args:
        levels: quantisation levels of a coordinate (128).
        latent_dim: dimensions of each face's latent (the paper's best: 8).
        dim, enc_depth, dec_depth, num_heads: transformer sizes.
        slot_dim: width of each coordinate's embedding before the 9 are joined.
    """

    def __init__(self, levels: int, latent_dim: int, dim: int, enc_depth: int, dec_depth: int, num_heads: int,
                 slot_dim: int = 32):
        super().__init__()
        self.levels, self.latent_dim = levels, latent_dim
        self.coord_emb = nn.Embedding(levels, slot_dim)
        self.slot_emb = nn.Parameter(torch.zeros(9, slot_dim))
        self.face_in = nn.Linear(9 * slot_dim, dim)
        self.geometry_in = nn.Linear(16, dim)
        self.encoder = FaceTransformer(dim, enc_depth, num_heads)
        self.to_posterior = nn.Linear(dim, 2 * latent_dim)
        self.latent_in = nn.Linear(latent_dim, dim)
        self.decoder = FaceTransformer(dim, dec_depth, num_heads)
        self.to_logits = CoordinateHead(dim, levels)
        self.apply(init_gpt_weights)
        self.to_logits.reset_parameters()
        # posteriors start narrow (std 0.05): with std 1 the decoder would first see mostly noise
        nn.init.constant_(self.to_posterior.bias[latent_dim:], -6.0)

    def encode(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens (B, F, 9) -> posterior mean and log-variance, each (B, F, latent_dim)."""
        tokens = tokens.long()
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= self.levels):
            raise ValueError(f"coordinates must lie in [0, {self.levels})")
        slots = self.coord_emb(tokens) + self.slot_emb  # (B, F, 9, slot_dim)
        h = self.face_in(slots.flatten(2)) + self.geometry_in(face_geometry(tokens, self.levels).to(slots.dtype))
        mean, logvar = self.to_posterior(self.encoder(h, mask)).chunk(2, -1)
        return mean, logvar.clamp(-12, 6)

    def decode(self, z: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Latents (B, F, latent_dim) -> coordinate logits (B, F, 9, levels)."""
        return self.to_logits(self.decoder(self.latent_in(z.to(self.latent_in.weight.dtype)), mask))

    def forward(self, tokens: torch.Tensor, t=None, cond=None, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Reconstruction logits through the posterior mean (no sampling). (B, F, 9, levels)"""
        return self.decode(self.encode(tokens, mask)[0], mask)


def trimmed(mask: torch.Tensor, *tensors: torch.Tensor):
    """Cut padded (B, F_max, ...) tensors to the batch's longest mesh: attention cost follows it."""
    n = max(int(mask.sum(1).max()), 1)
    return (mask[:, :n], *(x[:, :n] for x in tensors))


def latent_spread(mean: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, F, D) latents, (B, F) mask -> (D,) the standard deviation of each dimension over the real
    faces: the unit the flow DiT works in (MeshLatents normalises each dimension by it), so noise of
    size s here is noise of size s in the DiT's latent space."""
    real = mean.detach().float()[mask]
    return real.std(0).clamp(min=1e-6) if len(real) > 1 else torch.ones(mean.shape[-1], device=mean.device)


def latent_perturbation(mean: torch.Tensor, mask: torch.Tensor, size, generator: torch.Generator | None = None):
    """Gaussian noise shaped like ``mean`` (B, F, D), of std ``size`` (a number, or (B, 1, 1) per mesh)
    times each dimension's ``latent_spread``: the error a flow model's latents carry, in its units.
    Drawn where the generator lives (the CPU without one), then moved to the latents' device."""
    noise = generators.randn(mean.shape, generator, device=generators.device_of(generator), dtype=mean.dtype)
    noise = noise.to(mean.device)
    return size * latent_spread(mean, mask) * noise


class MeshVAELoss:
    """Cross-entropy of the 9 coordinates + kl_weight * KL(q(z | face) || N(0, I)), over real faces.

    Args:
        kl_weight: weight of the KL term (per face, summed over latent dimensions).
        latent_noise: the decoder also sees its latents perturbed by Gaussian noise: each mesh draws a
            size s uniformly from [0, latent_noise] and every latent dimension gets noise of std s times
            its spread over the batch's faces (``latent_spread``: the DiT's units). Why: a flow model
            places latents near, not at, the encoder's; a decoder trained only on the posterior (std
            about 0.05 of the spread at kl_weight 1e-4) sends each face's corners a few levels off on its
            own, so faces that should share a corner do not. Trained on perturbed latents, it must take
            the corners from the neighbouring faces as well (models/meshcraft/results/2026-11-28_2026-12-07_notes.md). 0: off.
        train_encoder: False runs the encoder without gradients, so its latents (and a DiT trained on
            them) stay exactly as they are while the decoder fine-tunes (``init_from`` a trained VAE).
    """

    def __init__(self, kl_weight: float = 1e-3, latent_noise: float = 0.0, train_encoder: bool = True):
        if kl_weight < 0:
            raise ValueError(f"kl_weight={kl_weight} must be >= 0")
        if latent_noise < 0:
            raise ValueError(f"latent_noise={latent_noise} must be >= 0")
        self.kl_weight, self.latent_noise, self.train_encoder = kl_weight, latent_noise, train_encoder

    def loss(self, net: MeshVAE, x1: torch.Tensor, mask: torch.Tensor, cond=None,
             generator: torch.Generator | None = None) -> LossOutput:
        mask, x1 = trimmed(mask, x1)
        x1 = x1.long()
        with torch.set_grad_enabled(self.train_encoder and torch.is_grad_enabled()):
            mean, logvar = net.encode(x1, mask)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        z = mean + (0.5 * logvar).exp() * noise
        if self.latent_noise:
            size = self.latent_noise * torch.rand(len(z), 1, 1, generator=generator, device=z.device, dtype=z.dtype)
            z = z + latent_perturbation(mean, mask, size, generator)
        logits = net.decode(z, mask).float()
        w = mask.float()
        ce = F.cross_entropy(logits.flatten(0, 2), x1.flatten(), reduction="none").view_as(x1).mean(-1)
        kl = 0.5 * (mean.float() ** 2 + logvar.float().exp() - 1 - logvar.float()).sum(-1)
        faces = w.sum().clamp(min=1)
        ce, kl = (ce * w).sum() / faces, (kl * w).sum() / faces
        right = ((logits.argmax(-1) == x1).all(-1).float() * w).sum() / faces
        total = ce + self.kl_weight * kl if self.train_encoder else ce  # a frozen encoder: KL is a constant
        return LossOutput(total, {"ce": ce.detach(), "kl": kl.detach(), "triangle_acc": right.detach()})

    @torch.no_grad()
    def evaluate(self, net: MeshVAE, dataloader, faces_kept: bool = False, decoded: list | None = None,
                 latent_noise: float = 0.0, generator: torch.Generator | None = None, **unused) -> dict:
        """Through the posterior mean (plus ``latent_perturbation`` of size ``latent_noise`` when given: how
        far the decoder tolerates a flow model's error): triangle accuracy (all 9 coordinates right),
        coordinate accuracy, vertex L2 (mean corner distance, in quantisation steps and in unit-cube
        units), latent std; with ``faces_kept`` also the share of decoded faces that survive cleanup
        (merged vertices, degenerate and duplicate faces dropped), ``faces_kept_pct``. ``decoded``: a list that receives each decoded
        mesh's (F, 9) tokens."""
        if latent_noise < 0:
            raise ValueError(f"latent_noise={latent_noise} must be >= 0")
        right = coords = l2 = faces = kept = 0.0
        sq = 0.0
        device = next(net.parameters()).device
        for batch in dataloader:
            mask, x1 = trimmed(batch["mask"].to(device), batch["x1"].to(device))
            x1 = x1.long()
            mean, _ = net.encode(x1, mask)
            z = mean + latent_perturbation(mean, mask, latent_noise, generator) if latent_noise else mean
            pred = net.decode(z, mask).argmax(-1)
            w = mask.float()
            right += ((pred == x1).all(-1).float() * w).sum().item()
            coords += ((pred == x1).float().mean(-1) * w).sum().item()
            dist = (pred - x1).float().view(*x1.shape[:2], 3, 3).norm(dim=-1).mean(-1)  # (B, F)
            l2 += (dist * w).sum().item()
            sq += ((mean.float() ** 2).sum(-1) * w).sum().item()
            faces += w.sum().item()
            rows = unpadded(pred.cpu(), mask.cpu()) if faces_kept or decoded is not None else []
            if faces_kept:
                kept += sum(len(from_tokens(tokens)[1]) for tokens in rows)
            if decoded is not None:
                decoded += rows
        return {"triangle_acc": right / faces, "coord_acc": coords / faces,
                "vertex_l2_steps": l2 / faces, "vertex_l2_unit": l2 / faces / (net.levels - 1),
                "latent_rms": math.sqrt(sq / faces / net.latent_dim), "eval_faces": int(faces),
                **({"faces_kept_pct": 100 * kept / faces} if faces_kept else {})}
