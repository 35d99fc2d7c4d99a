"""``python recipes/eval.py model=meshcraft-tiny`` (task ``meshes``, the default for mesh models).

For each category, the first ``per_category`` test meshes are the reference set, and the model is
asked for one mesh per reference with the reference's category and face count; the generated set is
compared with the reference set by COV / MMD / 1-NNA on Chamfer distance (metrics.py), per category
and averaged. Face-count accuracy, validity, connectivity through manifold edges (loose faces, the
largest patch, parts, closed parts, non-manifold and boundary edges, corner coincidence, watertight),
the share the category classifier (``mesh_pointnet-furniture``) recognises as the category asked for,
seconds per mesh and NFE are over all generated meshes; the reference meshes' connectivity and
recognition is reported under ``reference/`` (the row a generator should reach).
Connectivity and face-count error are also given per band of requested size (``faces_100/...``,
``faces_400/...``, ``faces_800/...``: up to 250, 251-600, over 600 faces).
"""

from __future__ import annotations

import time

import numpy as np
import torch

import zoo
from datamodules.mesh_codec import CATEGORIES, unpadded
from datamodules.meshes import MeshDataModule, padded
from models.meshcraft.classifier import recognised
from models.meshcraft.metrics import connectivity, coverage_metrics, face_count_accuracy, surface_points, validity
from models.meshcraft.pipeline import tokens_to_mesh


BANDS = {"faces_100": (0, 250), "faces_400": (251, 600), "faces_800": (601, 10 ** 9)}  # requested faces


def by_band(requested: list[int], effective: list[int], meshes: list) -> dict:
    """Connectivity, face-count error and mesh count of each size band, as "<band>/<key>"."""
    out = {}
    for band, (lo, hi) in BANDS.items():
        idx = [i for i, n in enumerate(requested) if lo <= n <= hi]
        if idx:
            metrics = {**connectivity([meshes[i] for i in idx]), "meshes": len(idx),
                       **face_count_accuracy([requested[i] for i in idx], [effective[i] for i in idx])}
            out.update({f"{band}/{k}": v for k, v in metrics.items()})
    return out


def reference_meshes(per_category: int, test_size: int = 100, cache_dir: str = ".cache/meshes",
                     max_faces: int = 800, seed: int = 0, split: str = "test",
                     val_size: int = 25) -> dict[str, list[np.ndarray]]:
    """category -> the first ``per_category`` meshes' (F, 9) tokens of a held-out split (made if not
    cached): ``test`` (``test_size`` meshes a category, the split data/meshes.yaml trains beside) or
    ``val`` (``val_size`` a category, the training recipe's validation meshes), where sampling
    defaults are chosen so that the test split only reports them."""
    if split not in ("test", "val"):
        raise ValueError(f"split={split!r}: choose test or val")
    size = test_size if split == "test" else val_size
    if per_category > size:
        raise ValueError(f"per_category={per_category} exceeds the {split} split's {size} meshes per category")
    sizes = {"train": 0, "val": 0, "test": 0, split: size}
    dm = MeshDataModule(per_category=sizes, max_faces=max_faces, cache_dir=cache_dir, seed=seed)
    held_out = padded(dm.load_split(split), dm.max_faces)
    rows = unpadded(held_out["x1"], held_out["mask"])
    cats = held_out["cond"][:, 0].tolist()
    return {name: [r for r, c in zip(rows, cats) if c == i][:per_category] for i, name in enumerate(CATEGORIES)}


def meshes_task(pipe, generator: torch.Generator | None = None, per_category: int = 32, batch_size: int = 16,
                num_points: int = 2048, categories: list | None = None, test_size: int = 100,
                cache_dir: str = ".cache/meshes", classifier: str | None = "mesh_pointnet-furniture",
                split: str = "test", **sample_kwargs) -> dict:
    """Metrics dict; ``sample_kwargs`` go to the pipeline (steps, guidance_scale, temperature, ...).
    ``classifier`` (a mesh_pointnet checkpoint; None skips it) gives ``recognised``: the % of generated
    meshes it assigns to the category asked for, with ``reference/recognised`` the same for the
    reference meshes (per category under ``per_category``). ``split=val`` compares with the validation
    meshes instead (at most 25 a category): where a sampling default is chosen."""
    categories = list(categories or CATEGORIES)
    for cat in categories:
        if cat not in CATEGORIES:
            raise ValueError(f"unknown category {cat!r}; choose from {CATEGORIES}")
    refs = reference_meshes(per_category, test_size, cache_dir, max_faces=pipe.net.max_faces,  # the trained budget
                            split=split)
    judge = zoo.load(classifier) if classifier else None
    out: dict = {"per_category": {}}
    requested, effective, tokens, meshes, seconds, nfe, ref_meshes = [], [], [], [], 0.0, [], []
    for cat in categories:
        ref = refs[cat]
        counts = [len(r) for r in ref]
        gen = []
        for s in range(0, len(counts), batch_size):
            start = time.perf_counter()
            o = pipe(num_faces=counts[s:s + batch_size], category=cat, generator=generator, **sample_kwargs)
            seconds += time.perf_counter() - start
            gen += o.meshes
            tokens += o.tokens
            nfe.append(o.nfe)
        requested += counts
        effective += [len(m.faces) for m in gen]
        meshes += gen
        ref_meshes += [tokens_to_mesh(r) for r in ref]
        ref_points = [surface_points(m, num_points, seed=i) for i, m in enumerate(ref_meshes[-len(ref):])]
        gen_points = [surface_points(m, num_points, seed=i) for i, m in enumerate(gen)]
        out["per_category"][cat] = coverage_metrics(gen_points, ref_points)
        if judge is not None:
            asked = [CATEGORIES.index(cat)] * len(gen)
            out["per_category"][cat].update(recognised(judge, gen, asked))
            out["per_category"][cat].update(
                {f"reference/{k}": v for k, v in recognised(judge, ref_meshes[-len(ref):], asked).items()})
    keys = ("cov", "mmd_x1e3", "nna_1") + (("recognised", "p_asked", "reference/recognised") if judge else ())
    for key in keys:
        vals = [m[key] for m in out["per_category"].values() if m[key] is not None]
        out[key] = float(np.mean(vals)) if vals else None
    out.update(face_count_accuracy(requested, effective))
    out.update(validity(tokens))
    out.update(connectivity(meshes, tokens))
    out.update({f"reference/{k}": v for k, v in connectivity(ref_meshes).items()})
    out.update(by_band(requested, effective, meshes))
    out.update({"split": split, "meshes": len(meshes), "seconds_per_mesh": seconds / len(meshes), "batch_size": batch_size,
                "nfe_per_batch": float(np.mean(nfe)), "num_points": num_points,
                "requested_faces_mean": float(np.mean(requested))})
    return out


@torch.no_grad()
def reconstruction_task(pipe, generator: torch.Generator | None = None, test_size: int = 100, max_faces: int = 800,
                        cache_dir: str = ".cache/meshes", batch_size: int = 16, latent_noise: float = 0.0) -> dict:
    """The mesh VAE on the test split, through the posterior mean: triangle accuracy (all 9 coordinates
    right), coordinate accuracy, vertex L2 (``recipes/eval.py model=meshcraft_vae-tiny``), and the share
    of faces that survive cleanup after decoding (``faces_kept_pct``): the face-count accuracy a perfect
    flow model would get through this VAE. ``test_size`` meshes a category and ``max_faces`` pick the
    test set (the data settings the VAE was trained with; the shipped one: 100 and 800). The decoded
    meshes' connectivity (``decoded/...``) beside the test meshes' own (``reference/...``) tells whether
    the VAE keeps faces joined: the best a flow model's meshes could be through it. ``latent_noise``
    perturbs the posterior means first (``MeshVAELoss.evaluate``): how well the decoder joins faces
    from latents that are near, not at, the encoder's, as a flow model's are."""
    from models.meshcraft.vae import MeshVAELoss

    dm = MeshDataModule(per_category={"train": 0, "val": 0, "test": test_size}, max_faces=max_faces,
                        cache_dir=cache_dir)
    test = padded(dm.load_split("test"), dm.max_faces)
    batches = [{k: v[i:i + batch_size] for k, v in test.items()} for i in range(0, len(test["mask"]), batch_size)]
    decoded = []
    metrics = MeshVAELoss().evaluate(pipe.net, batches, faces_kept=True, decoded=decoded, latent_noise=latent_noise,
                                     generator=generator)
    real = unpadded(test["x1"], test["mask"])
    return {"split": "test", "test_meshes": len(test["mask"]), "latent_noise": latent_noise, **metrics,
            **{f"decoded/{k}": v for k, v in connectivity([tokens_to_mesh(t) for t in decoded], decoded).items()},
            **{f"reference/{k}": v for k, v in connectivity([tokens_to_mesh(t) for t in real]).items()}}
