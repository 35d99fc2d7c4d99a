"""Ablations of MeshCraft: latent dimension, the face-count embedding, sampling steps, guidance scale,
vertex welding.

    python recipes/ablations/meshcraft.py [--quick] [--stages vae,dit,sampling] [--out outputs/ablations/meshcraft]

- latent dimension (stage ``vae``): a mesh VAE per latent size (4, 8, 16), each trained with
  recipes/train.py for the same ``--vae-steps``, scored by test-split reconstruction (triangle accuracy,
  vertex L2).
- face-count embedding (stage ``dit``): two DiTs on the shipped model's VAE, with and without it,
  trained by the same recipe for the same ``--dit-steps``.
- sampling steps and guidance scale (stage ``sampling``): the shipped meshcraft-tiny at each setting.
- welding (stage ``weld``): the shipped meshcraft-tiny with corners welded within 0, 1, 2, 3, 4, 6 levels
  (``--welds``), three generator seeds each (the seed is in the row).
- solvers (stage ``schedulers``): the built-in Euler and the diffusers schedulers (unipc,
  dpmpp_2m, flow_heun) at 3, 4, 6 and 10 steps, each with three generator seeds; a row's setting is
  "<scheduler>@<steps>" and its seed is in the row.
- defaults (stage ``grid``): solver@steps (unipc@4, euler@10) x guidance (1.5, 2, 3), three
  generator seeds each, with connectivity beside COV / MMD / 1-NNA: the grid the sampling defaults
  are chosen on.
- seeds (stage ``seeds``): the default setting with three generator seeds, the spread that the
  generator's noise alone puts on a row (the plot draws it as a band behind the sampling curves).
Budgets are steps, so the rows compare equal training and each cosine schedule runs to its end;
``--max-minutes`` only guards against a run that would never finish. Trainings run one thread each,
``--parallel`` at a time (all of a stage by default). A finished export is reused, so the stages can run
as separate calls (``--stages vae`` beside another job, then the rest); the CSV holds the rows of
the stages run in that call plus those of earlier calls kept in ``rows.jsonl``.
Every DiT row is scored by recipes/eval.py's meshes task (COV / MMD / 1-NNA, face-count error,
validity, connectivity, the category classifier's recognition, seconds per mesh) on ``per_category``
meshes per category of ``--split``: ``val`` (the default; where sampling defaults are chosen) or
``test`` (how rows written before 2026-12-07 were scored).
Writes ablation.csv and ablation.png in --out; the last stdout line is a JSON summary.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

import zoo
from datamodules.meshes import MeshDataModule
from models.meshcraft import MeshVAELoss
from models.meshcraft.evaluate import meshes_task
from models.meshcraft.metrics import CONNECTIVITY

sys.path.insert(0, str(Path(__file__).resolve().parent))  # recipes/ablations, also when imported by path
from common import finish, merged_rows, parse_staged, staged_parser, train  # noqa: E402

KEEP = ("cov", "mmd_x1e3", "nna_1", "recognised", "face_count_exact_pct", "face_count_rel_err_pct",
        "duplicate_faces_pct", "degenerate_faces_pct", *CONNECTIVITY, "seconds_per_mesh", "split")


@torch.no_grad()
def vae_row(path: Path, latent_dim: int) -> dict:
    """Reconstruction of the test split through the posterior mean."""
    net = zoo.load(path).net
    dm = MeshDataModule(batch_size=16)
    test = dm.split("test")
    batches = [{k: v[i:i + 16] for k, v in test.items()} for i in range(0, len(test["mask"]), 16)]
    metrics = MeshVAELoss().evaluate(net, batches)
    return {"factor": "latent_dim", "setting": latent_dim, "triangle_acc": metrics["triangle_acc"],
            "vertex_l2_steps": metrics["vertex_l2_steps"]}


def dit_row(pipe, factor: str, setting, per_category: int, num_points: int, seed: int, **kwargs) -> dict:
    m = meshes_task(pipe, generator=torch.Generator().manual_seed(seed), per_category=per_category,
                    num_points=num_points, **kwargs)
    row = {"factor": factor, "setting": setting, **{k: m.get(k) for k in KEEP}}
    print(json.dumps(row), flush=True)
    return row


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 5, figsize=(21, 3.8))
    sel = [r for r in rows if r["factor"] == "latent_dim"]
    axes[0].plot([str(r["setting"]) for r in sel], [100 * r["triangle_acc"] for r in sel], marker="o")
    axes[0].set(xlabel="latent dim per face", ylabel="VAE triangle accuracy (%)")
    sel = [r for r in rows if r["factor"] == "face_count_embedding"]
    x = range(len(sel))
    axes[1].bar([i - 0.2 for i in x], [r["mmd_x1e3"] for r in sel], width=0.4, label="MMD x1e3")
    axes[1].bar([i + 0.2 for i in x], [r["nna_1"] / 10 for r in sel], width=0.4, label="1-NNA / 10 (%)")
    axes[1].set_xticks(list(x), [str(r["setting"]) for r in sel])
    axes[1].set(xlabel="face-count embedding")
    axes[1].legend()
    seeds = [r["mmd_x1e3"] for r in rows if r["factor"] == "seed"]
    welds = sorted({r["setting"] for r in rows if r["factor"] == "weld"})
    for key in ("loose_faces", "corner_coincidence", "watertight"):  # the mean over a setting's seeds
        means = [float(np.mean([r[key] for r in rows if r["factor"] == "weld" and r["setting"] == w])) for w in welds]
        axes[4].plot(welds, means, marker="o", label=f"{key} (%)")
    axes[4].set(xlabel="weld tolerance (levels)")
    axes[4].legend()
    for ax, factor in zip(axes[2:4], ("steps", "guidance_scale")):
        if seeds:
            ax.axhspan(min(seeds), max(seeds), color="tab:blue", alpha=0.15,
                       label=f"MMD, default setting, {len(seeds)} seeds")
        sel = sorted((r for r in rows if r["factor"] == factor), key=lambda r: r["setting"])
        ax.plot([r["setting"] for r in sel], [r["mmd_x1e3"] for r in sel], marker="o", label="MMD x1e3")
        ax.plot([r["setting"] for r in sel], [r["nna_1"] / 10 for r in sel], marker="s", label="1-NNA / 10 (%)")
        ax.set(xlabel=factor, ylabel="lower is better")
        ax.legend()
    fig.suptitle("MeshCraft ablations (one factor at a time)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


STAGES = ("vae", "dit", "sampling", "weld", "seeds", "schedulers", "grid")
SCHEDULER_GRID = (("euler", "unipc", "dpmpp_2m", "flow_heun"), (3, 4, 6, 10), (0, 1, 2))  # solvers, steps, seeds
WELDS = (0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0)  # levels of 128
DEFAULTS_GRID = ((("unipc", 4), ("euler", 10)), (1.5, 2.0, 3.0))  # solver@steps, guidance (--solvers, --guidances)


def main() -> None:
    parser = staged_parser(__doc__, "meshcraft", STAGES, "fewer meshes, settings and steps", parallel=0)
    parser.add_argument("--model", default="meshcraft-tiny", help="the DiT whose sampling is swept (and whose VAE "
                                                                  "the count-embedding DiTs learn from)")
    parser.add_argument("--vae-steps", type=int, default=None, help="steps of each VAE (150 quick, 300)")
    parser.add_argument("--dit-steps", type=int, default=None, help="steps of each DiT (200 quick, 600)")
    parser.add_argument("--welds", type=float, nargs="+", default=list(WELDS),
                        help="stage weld: the tolerances, in quantisation levels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--solvers", nargs="+", default=[f"{a}@{b}" for a, b in DEFAULTS_GRID[0]],
                        help="stage grid: solver@steps settings")
    parser.add_argument("--guidances", type=float, nargs="+", default=list(DEFAULTS_GRID[1]),
                        help="stage grid: guidance scales")
    parser.add_argument("--seeds", type=int, default=3, help="generator seeds of each grid / weld setting")
    parser.add_argument("--split", choices=("val", "test"), default="val",
                        help="the held-out meshes the DiT rows compare with (val: where defaults are chosen)")
    args, stages, out = parse_staged(parser, STAGES)
    per_category, num_points = (8, 1024) if args.quick else (16, 2048)
    vae_steps = args.vae_steps or (150 if args.quick else 300)
    dit_steps = args.dit_steps or (200 if args.quick else 600)
    factors = {"vae": ["latent_dim"], "dit": ["face_count_embedding"], "sampling": ["steps", "guidance_scale"],
               "weld": ["weld"], "seeds": ["seed"], "schedulers": ["scheduler"], "grid": ["defaults"]}
    rows = []
    for stage in stages:  # each stage's rows are saved when it ends, so a later crash loses none of them
        if stage == "vae":
            dims = (4, 8, 16)
            vaes = train([(["model=meshcraft_vae", f"++model.net.latent_dim={d}"], out / f"vae_d{d}_{vae_steps}steps")
                          for d in dims], vae_steps, args.max_minutes, args.parallel)
            new = [vae_row(path, d) for d, path in zip(dims, vaes)]
            for row in new:
                print(json.dumps(row), flush=True)
        elif stage == "dit":
            vae_dir = zoo.pretrained.resolve(args.model) / "vae"
            dits = train([(["model=meshcraft", f"model.net.face_count_embedding={str(on).lower()}",
                            f"data.vae={vae_dir}"], out / f"dit_count_{'on' if on else 'off'}_{dit_steps}steps")
                          for on in (True, False)], dit_steps, args.max_minutes, args.parallel)
            new = [dit_row(zoo.load(path), "face_count_embedding", on, per_category, num_points, args.seed,
                           split=args.split)
                   for on, path in zip((True, False), dits)]
        elif stage == "weld":
            base = zoo.load(args.model)
            new = [{**dit_row(base, "weld", w, per_category, num_points, seed, weld=w, split=args.split),
                    "seed": seed}
                   for w in args.welds for seed in range(args.seed, args.seed + args.seeds)]
        elif stage == "schedulers":
            base = zoo.load(args.model)
            solvers, step_counts, seeds = SCHEDULER_GRID
            new = [{**dit_row(base, "scheduler", f"{solver}@{steps}", per_category, num_points, seed,
                              solver=solver, steps=steps, split=args.split), "seed": seed}
                   for solver in solvers for steps in step_counts for seed in seeds]
        elif stage == "grid":
            base = zoo.load(args.model)
            settings = [(x.split("@")[0], int(x.split("@")[1])) for x in args.solvers]
            new = [{**dit_row(base, "defaults", f"{solver}@{steps} g{g}", per_category, num_points, seed,
                              solver=solver, steps=steps, guidance_scale=g, split=args.split), "seed": seed}
                   for solver, steps in settings for g in args.guidances
                   for seed in range(args.seed, args.seed + args.seeds)]
        elif stage == "seeds":
            base = zoo.load(args.model)
            new = [dit_row(base, "seed", s, per_category, num_points, s, split=args.split)
                   for s in range(args.seed, args.seed + 3)]
        else:
            base = zoo.load(args.model)
            new = [dit_row(base, "steps", steps, per_category, num_points, args.seed, steps=steps, split=args.split)
                   for steps in ((5, 10, 25, 50) if args.quick else (5, 10, 25, 50, 100))]
            new += [dit_row(base, "guidance_scale", g, per_category, num_points, args.seed, guidance_scale=g,
                            split=args.split)
                    for g in ((1.0, 2.0, 3.0) if args.quick else (1.0, 1.5, 2.0, 3.0, 4.0))]
        rows = merged_rows(out / "rows.jsonl", new, factors[stage])
    finish(rows, out, plot, args.quick, stages)


if __name__ == "__main__":
    main()
