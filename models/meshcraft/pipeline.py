"""Mesh pipelines: ``zoo.load("meshcraft-tiny")(num_faces=200, category="chair", batch_size=4)`` returns a
``MeshOutput`` whose ``meshes`` are ``trimesh.Trimesh`` objects (cleaned up: corners within ``weld``
levels of each other welded, equal vertices merged, degenerate and duplicate faces dropped).

A MeshCraft checkpoint carries its VAE in a ``vae/`` sub-folder (itself a checkpoint directory) and
the latent normalisation in ``latent_stats.json``, so one folder is enough to sample.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import trimesh

from datamodules.mesh_codec import CATEGORIES, LEVELS, from_tokens, weld as weld_corners
from models.meshcraft.ar import mesh_ar_sample
from models.meshcraft.objective import padding_mask, sample_latents
from zoo import generators
from zoo.checks import MAX_BATCH, check_bool, check_float, check_int, check_tensor
from zoo.objectives.flow import check_solver
from zoo.pipeline import Pipeline, load_latent_components, save_latent_components

MESH_FORMATS = ("obj", "glb", "ply")


def tokens_to_mesh(tokens: np.ndarray, levels: int = LEVELS, weld: float = 0.0) -> trimesh.Trimesh:
    """(F, 9) coordinates -> a cleaned mesh in [-0.5, 0.5]^3: corners within ``weld`` levels welded
    (``datamodules.mesh_codec.weld``), equal vertices merged, degenerate and duplicate faces dropped
    (``canonical``)."""
    tokens = weld_corners(tokens, weld, levels)
    vertices, faces = from_tokens(tokens)
    return trimesh.Trimesh(vertices / (levels - 1) - 0.5, faces, process=False)


@dataclass
class MeshOutput:
    meshes: list  # trimesh.Trimesh, cleaned
    tokens: list  # (F_i, 9) int arrays as generated, before cleanup
    categories: list[str]
    requested: list[int]  # face counts asked for
    nfe: int  # forward passes of the generating network (CONTRIBUTING.md, "NFE")
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    decoder_calls: int = 0  # passes of the mesh VAE's decoder, counted apart from nfe

    @property
    def effective_faces(self) -> list[int]:
        return [len(m.faces) for m in self.meshes]

    def describe(self) -> list[str]:
        """What recipes/sample.py prints: each mesh's category and faces kept."""
        return [f"mesh {i}: {cat}, {got} faces after cleanup ({asked} asked for)"
                for i, (cat, got, asked) in enumerate(zip(self.categories, self.effective_faces, self.requested))]

    def save(self, out_dir: Path, formats: tuple[str, ...] = MESH_FORMATS, grid: str = "meshes.png") -> Path:
        """Each mesh as mesh_<i>.<format>, plus a PNG grid of rendered views; returns the grid's path."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        for fmt in formats:
            if fmt not in MESH_FORMATS:
                raise ValueError(f"format {fmt!r}; choose from {MESH_FORMATS}")
        for i, mesh in enumerate(self.meshes):
            for fmt in formats:
                mesh.export(out_dir / f"mesh_{i:03d}.{fmt}")
        titles = [f"{c} {e}/{r} faces" for c, e, r in zip(self.categories, self.effective_faces, self.requested)]
        return render_grid(self.meshes, out_dir / grid, titles)


def render_grid(meshes: list, path: Path, titles: list[str] | None = None, ncol: int = 4,
                azimuths: tuple[float, ...] = (-60, 120)) -> Path:
    """Shaded views (matplotlib, no GL needed) from a fixed camera, one per azimuth for each mesh
    (default two: front-left and back-right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    n = len(meshes)
    ncol = min(ncol, n) if n else 1
    nrow = max(1, -(-n // ncol))
    views = len(azimuths)
    fig = plt.figure(figsize=(2 * views * ncol, 2.2 * nrow))
    light = np.array([0.4, 0.8, 0.5]) / np.linalg.norm([0.4, 0.8, 0.5])
    for i, mesh in enumerate(meshes):
        for j, azim in enumerate(azimuths):
            ax = fig.add_subplot(nrow, views * ncol, views * i + j + 1, projection="3d")
            if len(mesh.faces):
                tris = mesh.vertices[mesh.faces][:, :, [0, 2, 1]]  # y up -> matplotlib's z up
                shade = 0.35 + 0.65 * np.abs(mesh.face_normals[:, [0, 2, 1]] @ light)
                ax.add_collection3d(Poly3DCollection(tris, facecolors=np.outer(shade, [0.55, 0.65, 0.85]),
                                                     edgecolors=(0, 0, 0, 0.25), linewidths=0.2))
            ax.set(xlim=(-0.5, 0.5), ylim=(-0.5, 0.5), zlim=(-0.5, 0.5))
            ax.view_init(elev=20, azim=azim)
            ax.set_axis_off()
            if j == 0 and titles:
                ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def check_request(num_faces, category, batch_size: int | None, max_faces: int,
                  generator: torch.Generator | None) -> tuple[torch.Tensor, list[str]]:
    """num_faces (int or list) and category (name, list of names, or None: drawn at random) ->
    cond (B, 2) = (category index, face count) and the category names. Errors say what is allowed."""
    if isinstance(num_faces, (np.ndarray, torch.Tensor)) and num_faces.ndim == 0:
        num_faces = num_faces.item()  # a 0-d array is one count (check_int then refuses a float)
    counts = list(num_faces) if isinstance(num_faces, (list, tuple, np.ndarray, torch.Tensor)) else [num_faces]
    if not (category is None or isinstance(category, (str, list, tuple))):
        raise ValueError(f"category must be a name, a list of names or None (drawn at random), one of "
                         f"{CATEGORIES}; got {category!r}")
    cats = [category] if category is None or isinstance(category, str) else list(category)
    batch_size = check_int("batch_size", batch_size, low=1, high=MAX_BATCH, optional=True)
    b = batch_size or max(len(counts), len(cats))
    for name, values in (("num_faces", counts), ("category", cats)):
        if len(values) not in (1, b):
            raise ValueError(f"{name} has {len(values)} values for a batch of {b}")
    counts, cats = counts * (b // len(counts)), cats * (b // len(cats))
    counts = [check_int("num_faces", n, low=1, high=max_faces, why="the trained maximum") for n in counts]
    drawn = generators.randint(0, len(CATEGORIES), (b,), generator).tolist()
    names = [CATEGORIES[d] if c is None else c for c, d in zip(cats, drawn)]
    for c in names:
        if c not in CATEGORIES:
            raise ValueError(f"unknown category {c!r}; choose one of {CATEGORIES}")
    cond = torch.tensor([[CATEGORIES.index(c), int(n)] for c, n in zip(names, counts)])
    return cond, names


class MeshCraftPipeline(Pipeline):
    """The flow DiT + the VAE decoder: all faces of a mesh at once, ``steps`` Euler steps (2 NFE each
    with guidance). ``guidance_scale`` guides over category and face count together."""

    settings = ("steps", "guidance_scale", "solver", "weld")  # sampling defaults (config.json)
    default_task = "meshes"  # recipes/eval.py

    def __init__(self, net, meta=None, vae=None, latent_stats: dict | None = None, **pipeline_kwargs):
        super().__init__(net.eval(), meta=meta, **pipeline_kwargs)
        if vae is None or latent_stats is None:
            raise ValueError("MeshCraftPipeline needs its VAE and latent_stats")
        self.vae = vae.eval()
        self.latent_mean = torch.tensor(latent_stats["mean"])
        self.latent_std = torch.tensor(latent_stats["std"])

    @classmethod
    def load_components(cls, directory: Path, net) -> dict:
        return load_latent_components(directory, net.latent_dim, "latent_dim", "DiT")

    def save_components(self, directory: Path) -> None:
        save_latent_components(directory, self.vae, self.latent_mean, self.latent_std)

    @torch.inference_mode()
    def __call__(self, num_faces=200, category="chair", batch_size: int | None = None, steps: int | None = None,
                 guidance_scale: float | None = None, solver=None, weld: float | None = None,
                 generator: torch.Generator | None = None, output_type: str = "mesh") -> MeshOutput:
        """``solver``: the flow solver, as every flow pipeline names it (zoo.objectives.flow.check_solver:
        euler, midpoint, heun, euler_maruyama, a diffusers scheduler's name or object); ``weld``: corners
        closer than this many quantisation levels become one vertex (0: none). Defaults: config.json's."""
        start = time.perf_counter()
        cond, names = check_request(num_faces, category, batch_size, self.net.max_faces, generator)
        cond = cond.to(self.device)
        steps, guidance_scale = self.setting("steps", steps), self.setting("guidance_scale", guidance_scale)
        solver = check_solver(self.setting("solver", solver))
        weld = check_float("weld", self.setting("weld", weld), low=0.0, high=8.0)
        counts = cond[:, 1]
        mask = torch.arange(int(counts.max()), device=self.device)[None] < counts[:, None]
        flow = sample_latents(self.net, cond, mask, steps=steps, guidance_scale=guidance_scale, solver=solver,
                              generator=generator)
        z = flow.x * self.latent_std + self.latent_mean
        tokens = self.vae.decode(z, padding_mask(mask)).argmax(-1)  # (B, F, 9)
        rows = [t[m].cpu().numpy() for t, m in zip(tokens, mask)]
        return finish(rows, names, counts.tolist(), flow.nfe, start, output_type, self.vae.levels, weld, decoder_calls=1)


def finish(rows: list, names: list[str], requested: list[int], nfe: int, start: float, output_type: str,
           levels: int, weld: float = 0.0, decoder_calls: int = 0) -> MeshOutput:
    if output_type not in ("mesh", "tokens"):
        raise ValueError(f"output_type={output_type!r}; choose 'mesh' or 'tokens'")
    meshes = [tokens_to_mesh(r, levels, weld) for r in rows] if output_type == "mesh" else []
    return MeshOutput(meshes, rows, names, requested, nfe, time.perf_counter() - start, decoder_calls=decoder_calls)


class MeshGPTPipeline(Pipeline):
    """The AR baseline: one token per network evaluation, 9 per face. ``exact_faces=True`` keeps it
    from stopping before (or after) the requested count, which is how the benchmark times a size."""

    settings = ("temperature", "weld")  # the sampling defaults (config.json)
    default_task = "meshes"

    def __init__(self, net, meta=None, **pipeline_kwargs):
        super().__init__(net.eval(), meta=meta, **pipeline_kwargs)

    @torch.inference_mode()
    def __call__(self, num_faces=200, category="chair", batch_size: int | None = None,
                 temperature: float | None = None, exact_faces: bool = False, weld: float | None = None,
                 generator: torch.Generator | None = None, output_type: str = "mesh") -> MeshOutput:
        start = time.perf_counter()
        cond, names = check_request(num_faces, category, batch_size, self.net.max_faces, generator)
        temperature = self.setting("temperature", temperature)
        weld = check_float("weld", self.setting("weld", weld), low=0.0, high=8.0)
        out = mesh_ar_sample(self.net, cond.to(self.device), exact_faces=check_bool("exact_faces", exact_faces),
                             temperature=temperature,
                                generator=generator)
        rows = [f.cpu().numpy() for f in out.faces]
        return finish(rows, names, cond[:, 1].tolist(), out.nfe, start, output_type, self.net.levels, weld)


MAX_VAE_FACES = 4 * 800  # faces a mesh the VAE pipeline takes: 4x the trained budget, seconds on a CPU


class MeshVAEPipeline(Pipeline):
    """The VAE alone: ``pipe(tokens (B, F, 9), mask (B, F))`` -> reconstructions through the posterior mean."""

    default_task = "reconstruction"  # recipes/eval.py

    def __init__(self, net, meta=None, **pipeline_kwargs):
        super().__init__(net.eval(), meta=meta, **pipeline_kwargs)

    @torch.inference_mode()
    def __call__(self, tokens: torch.Tensor, mask: torch.Tensor | None = None, generator=None) -> MeshOutput:
        start = time.perf_counter()
        check_tensor("tokens", tokens, (None, None, 9), integer=True, low=0, high=self.net.levels - 1)
        if tokens.shape[1] > MAX_VAE_FACES:  # attention over faces: the cost grows with their square
            raise ValueError(f"tokens: {tokens.shape[1]} faces a mesh; at most {MAX_VAE_FACES} (the VAE was "
                             f"trained on up to 800)")
        mask = (torch.ones(tokens.shape[:2], dtype=torch.bool) if mask is None
                else check_tensor("mask", mask, tuple(tokens.shape[:2])).bool())
        pred = self.net(tokens.to(self.device), mask=mask.to(self.device)).argmax(-1)
        rows = [p[m].cpu().numpy() for p, m in zip(pred, mask)]
        return finish(rows, ["?"] * len(rows), mask.sum(1).tolist(), 1, start, "mesh", self.net.levels)
