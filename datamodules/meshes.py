"""Procedural ShapeNet-like furniture meshes for MeshCraft, made offline with trimesh.

Four categories (chair, table, bench, lamp) assembled from boxes, cylinders, cones and balls with
random proportions and parts. Shapes above ``max_faces`` are reduced by quadric decimation
(fast-simplification) to a random count between half and all of ``max_faces``.

Each mesh is quantised and ordered by the shared codec (``datamodules/mesh_codec.py``) into (F, 9)
tokens: its faces' quantised coordinates, 9 per face.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import numpy as np
import torch
import trimesh
from torch.utils.data import DataLoader

from datamodules.base import DataCard, LatentData, PROCEDURAL, StepBatchSampler, TensorDataModule, TensorDictDataset, cached_tensors, progress
from datamodules.mesh_codec import CATEGORIES, LEVELS, canonical, quantize, to_tokens

SPLITS = ("train", "val", "test")
DEBUG_PER_CATEGORY = {"train": 6, "val": 2, "test": 2}  # debug=fast: 40 meshes in all
DATA_VERSION = 1  # bump when the generator changes, so old caches are not reused


def _box(size, center) -> trimesh.Trimesh:
    mesh = trimesh.creation.box(extents=size)
    mesh.apply_translation(center)
    return mesh


def _cylinder(radius, height, sections, center, axis="y", cone=False) -> trimesh.Trimesh:
    """A cylinder (4 * sections faces) or cone (2 * sections) along ``axis``, centred at ``center``
    (a cone's base at center - height / 2)."""
    if cone:
        mesh = trimesh.creation.cone(radius=radius, height=height, sections=sections)
        mesh.apply_translation((0, 0, -height / 2))
    else:
        mesh = trimesh.creation.cylinder(radius=radius, height=height, sections=sections)
    if axis == "y":  # trimesh builds along z
        mesh.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, (1, 0, 0)))
    elif axis == "x":
        mesh.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (0, 1, 0)))
    mesh.apply_translation(center)
    return mesh


def _post(rng, round_, thickness, height, center, sections) -> trimesh.Trimesh:
    """A vertical leg or pole: a square box or a round cylinder."""
    if round_:
        return _cylinder(thickness / 2, height, sections, center)
    return _box((thickness, height, thickness), center)


def _legs(rng, width, depth, height, thickness, round_, sections, count=4) -> list[trimesh.Trimesh]:
    dx, dz = width / 2 - thickness / 2, depth / 2 - thickness / 2
    xs = np.linspace(-dx, dx, count // 2)
    return [_post(rng, round_, thickness, height, (x, height / 2, sz * dz), sections) for x in xs for sz in (-1, 1)]


def _seat_like(rng, category) -> list[trimesh.Trimesh]:
    """Chair, table, bench: legs (square or round, or a pedestal), a top (box or round), optional back,
    slats, arms, stretchers and shelf. The options and section counts set the face count."""
    u = rng.uniform
    simple = rng.random() < 0.2  # boxes only: the small end of the face-count range
    sections = int(np.exp(u(np.log(4), np.log(96))))  # log-uniform: face counts spread over the range
    round_legs = not simple and rng.random() < 0.5
    width = u(1.6, 2.4) if category == "bench" else u(0.8, 1.2)
    depth = u(0.5, 0.8) if category == "bench" else u(0.8, 1.2)
    height = u(0.8, 1.1) if category == "table" else u(0.4, 0.6)
    leg, top = u(0.06, 0.14), u(0.05, 0.12)
    parts = []
    if category == "table" and not simple and rng.random() < 0.3:  # pedestal table
        parts.append(_cylinder(u(0.05, 0.12), height, sections, (0, height / 2, 0)))
        parts.append(_cylinder(u(0.25, 0.4), u(0.03, 0.06), sections, (0, 0.02, 0)))
    elif category == "bench" and simple:  # two slab legs
        parts += [_box((leg, height, depth), (sx * (width / 2 - leg / 2), height / 2, 0)) for sx in (-1, 1)]
    else:
        count = 6 if category == "bench" and rng.random() < 0.5 else 4
        parts += _legs(rng, width, depth, height, leg, round_legs, sections, count)
    if category == "table" and not simple and rng.random() < 0.4:  # round top
        parts.append(_cylinder(min(width, depth) / 2 * u(1.0, 1.2), top, int(rng.integers(8, 65)),
                               (0, height + top / 2, 0)))
    elif category == "bench" and not simple and rng.random() < 0.5:  # slatted seat
        n = int(rng.integers(2, 6))
        gap = depth / n
        parts += [_box((width, top, gap * 0.8), (0, height + top / 2, -depth / 2 + gap * (i + 0.5))) for i in range(n)]
    else:
        parts.append(_box((width, top, depth), (0, height + top / 2, 0)))
    if category == "chair" or (category == "bench" and rng.random() < 0.5):  # a back
        back, y0, z = u(0.4, 0.8), height + top, -depth / 2 + top / 2
        if simple or rng.random() < 0.4:
            parts.append(_box((width, back, top), (0, y0 + back / 2, z)))
        else:  # two posts, a top rail and slats (vertical or horizontal)
            parts += [_post(rng, round_legs, leg, back, (sx * (width / 2 - leg / 2), y0 + back / 2, z), sections)
                      for sx in (-1, 1)]
            parts.append(_box((width, top, top), (0, y0 + back - top / 2, z)))
            n = int(rng.integers(1, 6))
            if rng.random() < 0.5:
                xs = np.linspace(-width / 2 + leg, width / 2 - leg, n + 2)[1:-1]
                parts += [_box((leg * 0.6, back - top, top * 0.6), (x, y0 + (back - top) / 2, z)) for x in xs]
            else:
                ys = np.linspace(y0, y0 + back - top, n + 2)[1:-1]
                parts += [_box((width - 2 * leg, top * 0.6, top * 0.6), (0, y, z)) for y in ys]
    if category == "chair" and not simple and rng.random() < 0.4:  # arms
        arm_y = height + top + u(0.15, 0.3)
        for sx in (-1, 1):
            parts.append(_box((leg, top * 0.8, depth), (sx * (width / 2 - leg / 2), arm_y, 0)))
            parts.append(_post(rng, round_legs, leg * 0.8, arm_y - height - top,
                               (sx * (width / 2 - leg / 2), (arm_y + height + top) / 2, depth / 2 - leg), sections))
    if not simple and rng.random() < 0.4:  # stretchers between the legs
        y = height * u(0.15, 0.35)
        for sz in (-1, 1):
            parts.append(_cylinder(leg / 3, width - leg, sections, (0, y, sz * (depth / 2 - leg / 2)), axis="x")
                         if round_legs else _box((width - leg, leg / 2, leg / 2), (0, y, sz * (depth / 2 - leg / 2))))
    if category == "table" and rng.random() < 0.3:  # a shelf between the legs
        parts.append(_box((width - 2 * leg, top / 2, depth - 2 * leg), (0, height * u(0.2, 0.4), 0)))
    return parts


def _lamp(rng) -> list[trimesh.Trimesh]:
    """Base, pole (one or two segments with a ball joint), shade (cone, cylinder or ball)."""
    u = rng.uniform
    sections = int(np.exp(u(np.log(3), np.log(128))))
    base_h, pole_h = u(0.04, 0.1), u(0.8, 1.4)
    parts = [_cylinder(u(0.2, 0.4), base_h, sections, (0, base_h / 2, 0)) if rng.random() < 0.8
             else _box((u(0.3, 0.6), base_h, u(0.3, 0.6)), (0, base_h / 2, 0))]
    pole_r = u(0.02, 0.05)
    if rng.random() < 0.3:  # two segments and a ball joint
        joint = trimesh.creation.icosphere(subdivisions=int(rng.integers(0, 2)), radius=pole_r * 2)
        joint.apply_translation((0, base_h + pole_h / 2, 0))
        parts += [_cylinder(pole_r, pole_h / 2, sections, (0, base_h + pole_h / 4, 0)),
                  _cylinder(pole_r, pole_h / 2, sections, (0, base_h + 3 * pole_h / 4, 0)), joint]
    else:
        parts.append(_cylinder(pole_r, pole_h, sections, (0, base_h + pole_h / 2, 0)))
    top = base_h + pole_h
    kind = rng.choice(["cone", "cylinder", "ball"], p=[0.45, 0.35, 0.2])
    if kind == "ball":
        shade = trimesh.creation.icosphere(subdivisions=int(rng.integers(1, 4)), radius=u(0.15, 0.3))
        shade.apply_translation((0, top, 0))
        parts.append(shade)
    else:
        shade_h = u(0.2, 0.5)
        parts.append(_cylinder(u(0.2, 0.45), shade_h, sections, (0, top, 0), cone=kind == "cone"))
    return parts


def make_shape(category: str, rng: np.random.Generator) -> trimesh.Trimesh:
    """One random piece of furniture of ``category``, y up, assembled from boxes, cylinders, cones and
    balls. Raw face counts run from 24 to about 3,000; ``mesh_tokens`` decimates the large ones."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; choose one of {CATEGORIES}")
    parts = _lamp(rng) if category == "lamp" else _seat_like(rng, category)
    return trimesh.util.concatenate(parts)


def mesh_tokens(mesh: trimesh.Trimesh, max_faces: int, rng: np.random.Generator,
                levels: int = LEVELS) -> np.ndarray | None:
    """A raw mesh -> its (F, 9) tokens with F <= max_faces, decimating (quadric) when it has more; None
    when decimation cannot get it under the budget (many small closed parts resist collapsing)."""
    v, f = canonical(quantize(mesh.vertices, levels), mesh.faces)
    if len(f) <= max_faces:
        return to_tokens(v, f)
    target = int(rng.integers(max_faces // 2, max_faces + 1))
    for factor in (1.0, 0.8, 0.6):  # the decimator may stop above its target
        small = mesh.simplify_quadric_decimation(face_count=max(4, int(target * factor)), aggression=7)
        v, f = canonical(quantize(small.vertices, levels), small.faces)
        if 0 < len(f) <= max_faces:
            return to_tokens(v, f)
    return None


def draw_mesh(category: str, max_faces: int, rng: np.random.Generator, levels: int = LEVELS,
              bands: int = 4, tries: int = 40) -> np.ndarray:
    """One mesh's (F, 9) tokens whose face count falls in a band of (0, max_faces] drawn uniformly
    (shapes are redrawn until one does, at most ``tries`` times), so face counts spread evenly over
    the budget instead of piling up where the raw generator puts most shapes (below 200)."""
    band = int(rng.integers(bands))
    lo, hi = band * max_faces // bands, (band + 1) * max_faces // bands
    best = None
    for _ in range(tries):
        tokens = mesh_tokens(make_shape(category, rng), max_faces, rng, levels)
        if tokens is None:
            continue
        if lo < len(tokens) <= hi:
            return tokens
        if best is None or abs(len(tokens) - (lo + hi) / 2) < abs(len(best) - (lo + hi) / 2):
            best = tokens
    return best


def _draw(job: tuple) -> np.ndarray:
    """One mesh of a split, fixed by (seed, split, category, i): the unit of work of a pool."""
    seed, split, c, i, max_faces, levels = job
    return draw_mesh(CATEGORIES[c], max_faces, np.random.default_rng([seed, SPLITS.index(split), c, i]), levels)


def make_split(split: str, per_category: int, max_faces: int, seed: int, levels: int = LEVELS,
               workers: int | None = None) -> dict:
    """{"tokens": (T, 9) uint8 of all meshes' faces, "offsets": (N + 1,), "category": (N,)}.
    Mesh i of category c in a split is fixed by (seed, split, c, i), so splits never share a shape and
    the result is the same byte for byte whatever the number of ``workers`` (default: every core, for
    64 meshes or more; below that a pool's start-up costs more than it saves). Shows a progress bar
    with a count and an ETA."""
    jobs = [(seed, split, c, i, max_faces, levels) for c in range(len(CATEGORIES)) for i in range(per_category)]
    if workers is None:
        workers = (os.cpu_count() or 1) if len(jobs) >= 64 else 1
    workers = min(workers, len(jobs))
    label = f"meshes: {split} split ({len(jobs)})"
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            drawn = list(progress(pool.imap(_draw, jobs, chunksize=4), len(jobs), label))
    else:
        drawn = list(progress(map(_draw, jobs), len(jobs), label))
    tokens, counts, category = [], [], []
    for job, t in zip(jobs, drawn):
        tokens.append(t)
        counts.append(len(t))
        category.append(job[2])
    return {"tokens": torch.from_numpy(np.concatenate(tokens).astype(np.uint8)),
            "offsets": torch.from_numpy(np.concatenate([[0], np.cumsum(counts)])),
            "category": torch.tensor(category)}


def padded(split: dict, max_faces: int) -> dict[str, torch.Tensor]:
    """Flat split -> {"x1": (N, max_faces, 9) uint8 zero-padded, "mask": (N, max_faces) bool,
    "cond": (N, 2) = (category, face count)}."""
    offsets = split["offsets"]
    n = len(offsets) - 1
    counts = offsets.diff()
    x1 = torch.zeros(n, max_faces, 9, dtype=torch.uint8)
    mask = torch.arange(max_faces)[None] < counts[:, None]
    x1[mask] = split["tokens"]
    return {"x1": x1, "mask": mask, "cond": torch.stack([split["category"], counts], 1)}


class LengthGroupedBatchSampler(StepBatchSampler):
    """Endless train batches of meshes of similar face counts; batch s depends only on (seed, s, rank).

    Every ``group`` steps share one draw of ``group * batch_size`` meshes (uniform, with replacement,
    as ``StepBatchSampler``), sorted by face count and cut into ``group`` batches, served in a shuffled
    order. Each mesh is still drawn as often as before; what changes is that a batch's meshes have
    similar lengths, so less of each (B, longest, ...) batch is padding (models/meshcraft/README.md: a
    VAE step in half the time).
    """

    def __init__(self, lengths: torch.Tensor, batch_size: int, seed: int, group: int = 16, start_step: int = 0,
                 rank: int = 0, world_size: int = 1):
        if group < 1:
            raise ValueError(f"group={group} must be at least 1")
        super().__init__(len(lengths), batch_size, seed, start_step, rank, world_size)
        self.lengths, self.group = lengths.numpy(), group

    def batch(self, step: int) -> list[int]:
        rng = np.random.default_rng([self.seed, step // self.group, self.rank, self.world_size])
        drawn = rng.integers(0, len(self.lengths), self.group * self.batch_size)
        drawn = drawn[np.argsort(self.lengths[drawn], kind="stable")].reshape(self.group, self.batch_size)
        return drawn[rng.permutation(self.group)[step % self.group]].tolist()


class MeshDataModule(TensorDataModule):
    """Batches {"x1": tokens (B, max_faces, 9) uint8, "mask": (B, max_faces) bool, "cond": (B, 2) long
    (category index, face count)}. The splits are generated once per setting and cached as safetensors
    (written to a temporary name and renamed, so a crash never leaves half a file).

    Args:
        per_category: meshes per category of each split, e.g. {"train": 800, "val": 25, "test": 100}.
        max_faces: the face budget; larger shapes are decimated.
        cache_dir: where the splits are kept.
        length_grouped: train batches of similar face counts (``LengthGroupedBatchSampler``) instead of
            independent draws: less padding per step, the same meshes over a run.
    """

    card = DataCard("procedural-furniture",
                    "chairs, tables, benches and lamps assembled from boxes, cylinders, cones and balls with trimesh",
                    PROCEDURAL)

    def __init__(self, per_category: dict | None = None, max_faces: int = 800, levels: int = LEVELS,
                 cache_dir: str = ".cache/meshes", batch_size: int = 16, seed: int = 0, length_grouped: bool = False,
                 debug: bool = False):
        super().__init__(batch_size, seed, debug)
        self.length_grouped = length_grouped
        self.per_category = dict(per_category or {"train": 800, "val": 25, "test": 100})
        if set(self.per_category) != set(SPLITS):
            raise ValueError(f"per_category needs exactly the splits {SPLITS}; got {sorted(self.per_category)}")
        if debug:  # debug=fast: at most a few dozen meshes, cached under their own names, instead of 3,700
            self.per_category = {k: min(v, DEBUG_PER_CATEGORY[k]) for k, v in self.per_category.items()}
        self.max_faces, self.levels, self.cache_dir = max_faces, levels, Path(cache_dir)

    def split_path(self, split: str) -> Path:
        return (self.cache_dir / f"v{DATA_VERSION}-f{self.max_faces}-q{self.levels}-s{self.seed}"
                / f"{split}_{self.per_category[split]}.safetensors")

    def load_split(self, split: str) -> dict:
        return cached_tensors(self.split_path(split), lambda: make_split(split, self.per_category[split], self.max_faces,
                                                                         self.seed, self.levels))

    def setup(self, stage: str | None = None) -> None:
        if self.data:
            return
        for split in SPLITS:
            self.data[split] = padded(self.load_split(split), self.max_faces)

    def batch_sampler(self, num_rows: int, start_step: int, rank: int, world_size: int) -> StepBatchSampler:
        if not self.length_grouped:
            return super().batch_sampler(num_rows, start_step, rank, world_size)
        return LengthGroupedBatchSampler(self.data["train"]["mask"].sum(1), self.batch_size, self.seed,
                                         start_step=start_step, rank=rank, world_size=world_size)

    def val_dataloader(self) -> DataLoader:  # validate on val; the test split is for recipes/eval.py
        return DataLoader(TensorDictDataset(self.data["val"]), batch_size=self.batch_size)

    def split(self, name: str) -> dict[str, torch.Tensor]:
        """A split's padded tensors (train, val or test)."""
        self.setup()
        return self.data[name]

    def stats(self) -> dict:
        out = {}
        for name in SPLITS:
            counts = self.split(name)["mask"].sum(1).float()
            out[name] = {"meshes": len(counts), "faces_min": int(counts.min()), "faces_median": float(counts.median()),
                         "faces_mean": float(counts.mean()), "faces_max": int(counts.max())}
        return out




class MeshLatents(LatentData, MeshDataModule):
    """The meshes encoded by a mesh-VAE checkpoint: batches {"x1": latents (B, max_faces, D) normalised
    per dimension by the train split's mean and std, "mask", "cond"} (the flow DiT trains on them).
    Encoded at setup (on the GPU when there is one) through the posterior mean.

    Args:
        vae: the VAE checkpoint; the rest as MeshDataModule.
    """

    def __init__(self, vae: str = "checkpoints/meshcraft_vae-tiny", per_category: dict | None = None,
                 max_faces: int = 800, levels: int = LEVELS, cache_dir: str = ".cache/meshes", batch_size: int = 16,
                 seed: int = 0, length_grouped: bool = False, debug: bool = False):
        super().__init__(per_category, max_faces, levels, cache_dir, batch_size, seed, length_grouped, debug)
        self.vae = vae

    @torch.no_grad()
    def setup(self, stage: str | None = None) -> None:
        if self.data:
            return
        from zoo.pretrained import load_net, resolve

        super().setup(stage)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        net = load_net(resolve(self.vae))[0].to(device).eval()
        for split, data in self.data.items():
            latents = torch.zeros(*data["mask"].shape, net.latent_dim)
            order = data["mask"].sum(1).argsort()  # similar lengths together: less padding
            chunks = order.split(64)
            for idx in progress(chunks, len(chunks), f"latents: {split} split ({len(order)} meshes, by 64)"):
                n = int(data["mask"][idx].sum(1).max())
                mask = data["mask"][idx, :n].to(device)
                latents[idx, :n] = net.encode(data["x1"][idx, :n].to(device), mask)[0].float().cpu()
            data["x1"] = latents
        real = self.data["train"]["x1"][self.data["train"]["mask"]]  # (faces, D)
        mean, std = real.mean(0), real.std(0).clamp(min=1e-6)
        self.normalise_latents(mean, std, lambda data: data.update(
            x1=torch.where(data["mask"][..., None], (data["x1"] - mean) / std, 0.0)))

    @property
    def encoder_checkpoint(self) -> str:
        return self.vae


class MeshPoints(MeshDataModule):
    """The meshes as surface samples, for the category classifier (models/meshcraft/classifier.py):
    batches {"x1": (B, points_per_mesh, 3) float points in the [-0.5, 0.5] cube, area-uniform on the
    mesh (seeded by the mesh's index in its split), "cond": (B,) category index}. Sampled at setup.

    Args:
        points_per_mesh: samples kept per mesh (the loss draws its subsets from them).
        the rest as MeshDataModule.
    """

    def __init__(self, points_per_mesh: int = 2048, per_category: dict | None = None, max_faces: int = 800,
                 levels: int = LEVELS, cache_dir: str = ".cache/meshes", batch_size: int = 32, seed: int = 0,
                 debug: bool = False):
        super().__init__(per_category, max_faces, levels, cache_dir, batch_size, seed, False, debug)
        self.points_per_mesh = points_per_mesh

    def setup(self, stage: str | None = None) -> None:
        if self.data:
            return
        from datamodules.mesh_codec import from_tokens

        for split in SPLITS:
            flat = self.load_split(split)
            offsets, tokens = flat["offsets"].tolist(), flat["tokens"].numpy()
            clouds = []
            for i in progress(range(len(offsets) - 1), len(offsets) - 1, f"points: {split} split"):
                vertices, faces = from_tokens(tokens[offsets[i]:offsets[i + 1]].astype(np.int64))
                mesh = trimesh.Trimesh(vertices / (self.levels - 1) - 0.5, faces, process=False)
                points, _ = trimesh.sample.sample_surface(mesh, self.points_per_mesh, seed=i)
                clouds.append(torch.as_tensor(points, dtype=torch.float32))
            self.data[split] = {"x1": torch.stack(clouds), "cond": flat["category"].long()}

    def stats(self) -> dict:
        return {name: {"meshes": len(self.split(name)["cond"]), "points_per_mesh": self.points_per_mesh}
                for name in SPLITS}
