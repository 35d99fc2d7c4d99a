"""MeshCraft's ablation (``python recipes/ablate.py model=meshcraft``): latent dimension, the face-count
embedding, sampling steps, guidance scale, solvers, vertex welding and the sampling defaults.

- vae: a mesh VAE per latent size (4, 8, 16), each trained by recipes/train.py for the same
  ``vae_steps``, scored by test-split reconstruction (triangle accuracy, vertex L2).
- dit: two DiTs on the shipped model's VAE, with and without the face-count embedding, trained by the
  same recipe for the same ``dit_steps``.
- sampling: the shipped model (option ``model``) at each step count and guidance scale.
- weld: corners welded within each of ``welds`` levels, ``seeds`` generator seeds each.
- schedulers: the built-in Euler and the diffusers schedulers (unipc, dpmpp_2m, flow_heun) at 3, 4, 6
  and 10 steps, three seeds each; a row's setting is "<solver>@<steps>".
- grid: ``solvers`` (solver@steps) x ``guidances``, ``seeds`` seeds each, with connectivity beside
  COV / MMD / 1-NNA: the grid the sampling defaults are chosen on.
- seeds: the default setting with three generator seeds, the spread the generator alone puts on a row.
Every DiT row is scored by recipes/eval.py's meshes task (COV / MMD / 1-NNA, face-count error,
validity, connectivity, the category classifier's recognition, seconds per mesh) on a number of meshes
per category of ``split``: ``val`` (the default; where sampling defaults are chosen) or ``test`` (how
rows written before 2026-12-07 were scored). Trainings run all at once by default (``parallel``).
"""

from __future__ import annotations

import functools

import torch

import zoo
from datamodules.meshes import MeshDataModule
from models.meshcraft import MeshVAELoss
from models.meshcraft.evaluate import meshes_task
from models.meshcraft.metrics import CONNECTIVITY
from zoo.ablation import Ablation, AblationRun, Stage, Training

KEEP = ("cov", "mmd_x1e3", "nna_1", "recognised", "face_count_exact_pct", "face_count_rel_err_pct",
        "duplicate_faces_pct", "degenerate_faces_pct", *CONNECTIVITY, "seconds_per_mesh", "split")
SCHEDULER_GRID = (("euler", "unipc", "dpmpp_2m", "flow_heun"), (3, 4, 6, 10), (0, 1, 2))  # solvers, steps, seeds


@torch.no_grad()
def reconstruction(pipe) -> dict:
    """Reconstruction of the test split through the posterior mean."""
    test = MeshDataModule(batch_size=16).split("test")
    batches = [{k: v[i:i + 16] for k, v in test.items()} for i in range(0, len(test["mask"]), 16)]
    metrics = MeshVAELoss().evaluate(pipe.net, batches)
    return {k: metrics[k] for k in ("triangle_acc", "vertex_l2_steps")}


def score(run: AblationRun, pipe, seed: int | None = None, **kwargs) -> dict:
    per_category, num_points = (8, 1024) if run.quick else (16, 2048)
    seed = run.options.seed if seed is None else seed
    m = meshes_task(pipe, generator=torch.Generator().manual_seed(seed), per_category=per_category,
                    num_points=num_points, split=run.options.split, **kwargs)
    return {"seed": seed, **{k: m.get(k) for k in KEEP}}


def dit_row(run: AblationRun, pipe, factor: str, setting, seed: int | None = None, **kwargs) -> dict:
    return run.log({"factor": factor, "setting": setting, **score(run, pipe, seed, **kwargs)})


def seeds(run: AblationRun) -> range:
    return range(run.options.seed, run.options.seed + run.options.seeds)


def vae(run: AblationRun) -> list[dict]:
    return run.compare([Training("latent_dim", d, f"vae_d{d}", ("model=meshcraft_vae", f"++model.net.latent_dim={d}"))
                        for d in (4, 8, 16)], run.pick("vae_steps", 150, 300), reconstruction)


def dit(run: AblationRun) -> list[dict]:
    vae_dir = zoo.pretrained.resolve(run.options.model) / "vae"
    trainings = [Training("face_count_embedding", on, f"dit_count_{'on' if on else 'off'}",
                          ("model=meshcraft", f"model.net.face_count_embedding={str(on).lower()}",
                           f"data.vae={vae_dir}")) for on in (True, False)]
    return run.compare(trainings, run.pick("dit_steps", 200, 600), functools.partial(score, run))


def sampling(run: AblationRun) -> list[dict]:
    base = zoo.load(run.options.model)
    rows = [dit_row(run, base, "steps", s, steps=s) for s in ((5, 10, 25, 50) if run.quick else (5, 10, 25, 50, 100))]
    return rows + [dit_row(run, base, "guidance_scale", g, guidance_scale=g)
                   for g in ((1.0, 2.0, 3.0) if run.quick else (1.0, 1.5, 2.0, 3.0, 4.0))]


def weld(run: AblationRun) -> list[dict]:
    base = zoo.load(run.options.model)
    return [dit_row(run, base, "weld", w, seed, weld=w) for w in run.options.welds for seed in seeds(run)]


def schedulers(run: AblationRun) -> list[dict]:
    base = zoo.load(run.options.model)
    solvers, step_counts, seed_list = SCHEDULER_GRID
    return [dit_row(run, base, "scheduler", f"{solver}@{steps}", seed, solver=solver, steps=steps)
            for solver in solvers for steps in step_counts for seed in seed_list]


def grid(run: AblationRun) -> list[dict]:
    base = zoo.load(run.options.model)
    settings = [(x.split("@")[0], int(x.split("@")[1])) for x in run.options.solvers]
    return [dit_row(run, base, "defaults", f"{solver}@{steps} g{g}", seed, solver=solver, steps=steps, guidance_scale=g)
            for solver, steps in settings for g in run.options.guidances for seed in seeds(run)]


def seed_spread(run: AblationRun) -> list[dict]:
    base = zoo.load(run.options.model)
    return [dit_row(run, base, "seed", s, s) for s in range(run.options.seed, run.options.seed + 3)]


ABLATION = Ablation(
    title="MeshCraft ablations (one factor at a time)",
    stages={"vae": Stage(("latent_dim",), vae), "dit": Stage(("face_count_embedding",), dit),
            "sampling": Stage(("steps", "guidance_scale"), sampling), "weld": Stage(("weld",), weld),
            "seeds": Stage(("seed",), seed_spread), "schedulers": Stage(("scheduler",), schedulers),
            "grid": Stage(("defaults",), grid)},
    metrics=("triangle_acc", "mmd_x1e3", "loose_faces", "watertight"),
    options={"model": "meshcraft-tiny", "vae_steps": None, "dit_steps": None, "seed": 0, "seeds": 3,
             "welds": [0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0], "solvers": ["unipc@4", "euler@10"],
             "guidances": [1.5, 2.0, 3.0], "split": "val"},
    parallel=0,
)
