"""meshcraft: whole meshes generated at once by a flow DiT over per-face latents (MeshCraft).

- ``meshcraft_vae-tiny`` (vae.py): one KL-regularised latent per triangle, decoded to per-coordinate
  logits. Trained first: ``python recipes/train.py model=meshcraft_vae``.
- ``meshcraft-tiny`` (dit.py, objective.py): rectified flow over the VAE's face latents, conditioned
  on category and face count, guided over both. ``python recipes/train.py model=meshcraft``; its
  checkpoint carries the VAE (vae/), so ``zoo.load("meshcraft-tiny")`` samples meshes.
- ``meshgpt_ar-tiny`` (ar.py): the autoregressive baseline over the same coordinates, 9 tokens a face.
- ``mesh_pointnet-furniture`` (classifier.py): a point-cloud classifier over the four categories, the
  recognisability measure of generated meshes (never a generator). ``python recipes/train.py
  model=mesh_pointnet``.
"""

from __future__ import annotations

import torch

from datamodules.mesh_codec import CATEGORIES, LEVELS
from models.meshcraft.ar import MeshAR, MeshGPT, mesh_ar_sample
from models.meshcraft.classifier import PointCloudClassifier, PointCloudClassifierPipeline, PointCloudLoss
from models.meshcraft.dit import FaceLatentDiT
from models.meshcraft.objective import FaceLatentFlow, sample_latents
from models.meshcraft.pipeline import MeshCraftPipeline, MeshGPTPipeline, MeshOutput, MeshVAEPipeline
from models.meshcraft.vae import MeshVAE, MeshVAELoss
from zoo.pretrained import load_config, resolve
from zoo.registry import Example, create_model, register_ablation, register_benchmark, register_model, register_task


def example_mesh(generator: torch.Generator, levels: int, faces: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Two padded random meshes (2, faces, 9) and their mask (the second is shorter)."""
    tokens = torch.randint(0, levels, (2, faces, 9), generator=generator)
    mask = torch.arange(faces)[None] < torch.tensor([[faces], [faces - 2]])
    return tokens, mask


def vae_example(net: MeshVAE, generator: torch.Generator) -> Example:
    tokens, mask = example_mesh(generator, net.levels)
    return Example(args=(tokens,), kwargs={"mask": mask}, out_shape=(2, 6, 9, net.levels),
                   sample=lambda n, g: n.decode(torch.randn(2, 6, n.latent_dim, generator=g), mask).argmax(-1))


@register_model("meshcraft_vae-tiny", pipeline=MeshVAEPipeline, example=vae_example)
def meshcraft_vae_tiny(levels: int = LEVELS, latent_dim: int = 8, dim: int = 160, enc_depth: int = 2,
                       dec_depth: int = 3, num_heads: int = 5) -> MeshVAE:
    """Triangle -> 8-d latent -> 9 x 128 logits. About 1.8M parameters."""
    return MeshVAE(levels, latent_dim, dim, enc_depth, dec_depth, num_heads)


@register_model("meshcraft_vae-small", pipeline=MeshVAEPipeline, example=vae_example)
def meshcraft_vae_small(levels: int = LEVELS, latent_dim: int = 16, dim: int = 256, enc_depth: int = 3,
                        dec_depth: int = 5, num_heads: int = 4) -> MeshVAE:
    """The GPU size (recipes/gpu_train.sh, model=meshcraft_vae_small): 8 layers of 256."""
    return MeshVAE(levels, latent_dim, dim, enc_depth, dec_depth, num_heads)


def dit_example(net: FaceLatentDiT, generator: torch.Generator) -> Example:
    x = torch.randn(2, 6, net.latent_dim, generator=generator)
    t = torch.rand(2, generator=generator)
    cond = torch.tensor([[0, 6], [net.num_categories, 0]])  # row 1: both conditions dropped
    mask = torch.arange(6)[None] < torch.tensor([[6], [4]])
    asked = torch.tensor([[0, 6], [3, 4]])
    return Example(args=(x, t, cond), kwargs={"mask": mask}, out_shape=(2, 6, net.latent_dim),
                   sample=lambda n, g: sample_latents(n, asked, mask, steps=2, guidance_scale=2.0,
                                                                 generator=g).x)


@register_model("meshcraft-tiny", pipeline=MeshCraftPipeline, example=dit_example)
def meshcraft_tiny(latent_dim: int = 8, num_categories: int = len(CATEGORIES), max_faces: int = 800,
                   dim: int = 160, depth: int = 4, num_heads: int = 5, mlp_ratio: float = 4.0,
                   face_count_embedding: bool = True) -> FaceLatentDiT:
    """The flow DiT over face latents. About 2M parameters, like meshgpt_ar-tiny; with its VAE the
    checkpoint stays under 16 MB."""
    return FaceLatentDiT(latent_dim, num_categories, max_faces, dim, depth, num_heads, mlp_ratio,
                         face_count_embedding)


@register_model("meshcraft-small", pipeline=MeshCraftPipeline, example=dit_example)
def meshcraft_small(latent_dim: int = 16, num_categories: int = len(CATEGORIES), max_faces: int = 800,
                    dim: int = 320, depth: int = 8, num_heads: int = 5, mlp_ratio: float = 4.0,
                    face_count_embedding: bool = True) -> FaceLatentDiT:
    """The GPU size of the flow DiT (model=meshcraft_small, on meshcraft_vae-small's latents)."""
    return FaceLatentDiT(latent_dim, num_categories, max_faces, dim, depth, num_heads, mlp_ratio,
                         face_count_embedding)


def init_dit(vae: str = "checkpoints/meshcraft_vae-tiny", name: str = "meshcraft-tiny", **overrides) -> FaceLatentDiT:
    """A DiT whose latent size is the VAE checkpoint's."""
    latent_dim = load_config(resolve(vae))["model_kwargs"]["latent_dim"]
    return create_model(name, latent_dim=latent_dim, **overrides)


def ar_example(net: MeshGPT, generator: torch.Generator) -> Example:
    tokens = torch.randint(0, net.levels, (2, 19), generator=generator)
    cond = torch.tensor([[0, 2], [net.num_categories, 0]])  # row 1: both conditions dropped
    asked = torch.tensor([[0, 2], [3, 1]])
    return Example(args=(tokens, None, cond), kwargs={}, out_shape=(2, 19, net.levels + 1),
                   sample=lambda n, g: torch.cat(mesh_ar_sample(n, asked, exact_faces=True, generator=g).faces))


@register_model("meshgpt_ar-tiny", pipeline=MeshGPTPipeline, example=ar_example)
def meshgpt_ar_tiny(levels: int = LEVELS, num_categories: int = len(CATEGORIES), max_faces: int = 800,
                    dim: int = 160, depth: int = 6, num_heads: int = 5, mlp_ratio: float = 4.0) -> MeshGPT:
    """The AR baseline: 9 tokens a face, KV cache. About 2M parameters, like meshcraft-tiny."""
    return MeshGPT(levels, num_categories, max_faces, dim, depth, num_heads, mlp_ratio)


def pointnet_example(net: PointCloudClassifier, generator: torch.Generator) -> Example:
    points = torch.rand(2, 64, 3, generator=generator) - 0.5
    return Example(args=(points,), kwargs={}, out_shape=(2, net.num_classes), sample=lambda n, g: n(points).argmax(-1),
                   stochastic=False)


@register_model("mesh_pointnet-furniture", pipeline=PointCloudClassifierPipeline, example=pointnet_example)
def mesh_pointnet_furniture(num_classes: int = len(CATEGORIES), width: int = 64, num_features: int = 256,
                            num_points: int = 1024) -> PointCloudClassifier:
    """The mesh metrics' category classifier (classifier.py). About 0.08M parameters."""
    return PointCloudClassifier(num_classes, width, num_features, num_points)


register_task("meshes", "models.meshcraft.evaluate:meshes_task")
register_task("mesh_categories", "models.meshcraft.classifier:categories_task")
register_task("reconstruction", "models.meshcraft.evaluate:reconstruction_task")
register_benchmark("meshcraft", "models.meshcraft.bench:run")
register_ablation("meshcraft", "models.meshcraft.ablation_study:ABLATION")

__all__ = ["MeshVAE", "MeshVAELoss", "FaceLatentDiT", "FaceLatentFlow", "MeshGPT", "MeshAR", "MeshCraftPipeline",
           "MeshGPTPipeline", "MeshVAEPipeline", "MeshOutput", "init_dit", "meshcraft_vae_tiny", "meshcraft_tiny",
           "meshgpt_ar_tiny", "PointCloudClassifier", "PointCloudLoss", "PointCloudClassifierPipeline",
           "mesh_pointnet_furniture"]
