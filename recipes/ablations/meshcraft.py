"""Ablations of MeshCraft: latent dimension, the face-count embedding, sampling steps, guidance scale.

    python recipes/ablations/meshcraft.py [--quick] [--sampling-only] [--out outputs/ablations/meshcraft]

- latent dimension: a mesh VAE per latent size (4, 8, 16), each trained with recipes/train.py for the
  same ``--vae-minutes``, scored by test-split reconstruction (triangle accuracy, vertex L2).
- face-count embedding: two DiTs on the shipped VAE, with and without it, trained side by side by the
  same recipe for the same ``--dit-minutes`` (one thread each).
- sampling steps and guidance scale: the shipped meshcraft-tiny, sampled at each setting.
Every DiT row is scored by recipes/eval.py's meshes task (COV / MMD / 1-NNA, face-count error,
validity, seconds per mesh) on ``per_category`` test meshes per category.
Writes ablation.csv and ablation.png in --out; the last stdout line is a JSON summary.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

import zoo
from datamodules.meshes import MeshDataModule
from models.meshcraft import MeshVAELoss
from models.meshcraft.evaluate import meshes_task

ROOT = Path(__file__).resolve().parents[2]
KEEP = ("cov", "mmd_x1e3", "nna_1", "face_count_exact_pct", "face_count_rel_err_pct", "duplicate_faces_pct",
        "degenerate_faces_pct", "watertight_pct", "seconds_per_mesh")


def train(jobs: list[tuple[list[str], Path]], minutes: float) -> list[Path]:
    """recipes/train.py with each job's args for at most ``minutes`` (Lightning's max_time), the jobs
    side by side, one thread each (so they share the machine evenly); finished exports are kept."""
    running = []
    for args, export in jobs:
        if (export / "model.safetensors").is_file():
            continue
        cmd = [sys.executable, "recipes/train.py", *args, "rich_progress=false", "trainer.enable_progress_bar=false",
               f"trainer.max_time={{minutes: {minutes}}}", f"hydra.run.dir={export.parent / 'runs' / export.name}",
               f"export_dir={export}"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        running.append((export, subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                                 stderr=subprocess.PIPE, text=True)))
    for export, proc in running:
        _, err = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"training {export.name} failed:\n{err[-3000:]}")
    return [export for _, export in jobs]


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
    row = {"factor": factor, "setting": setting, **{k: m[k] for k in KEEP}}
    print(json.dumps(row), flush=True)
    return row


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
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
    for ax, factor in zip(axes[2:], ("steps", "guidance_scale")):
        sel = sorted((r for r in rows if r["factor"] == factor), key=lambda r: r["setting"])
        ax.plot([r["setting"] for r in sel], [r["mmd_x1e3"] for r in sel], marker="o", label="MMD x1e3")
        ax.plot([r["setting"] for r in sel], [r["nna_1"] / 10 for r in sel], marker="s", label="1-NNA / 10 (%)")
        ax.set(xlabel=factor, ylabel="lower is better")
        ax.legend()
    fig.suptitle("MeshCraft ablations (one factor at a time)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer meshes and settings, shorter VAE budgets")
    parser.add_argument("--out", default="outputs/ablations/meshcraft")
    parser.add_argument("--model", default="meshcraft-tiny", help="the DiT whose sampling is swept")
    parser.add_argument("--vae-minutes", type=float, default=None, help="budget of each VAE (4 quick, 15)")
    parser.add_argument("--dit-minutes", type=float, default=None, help="budget of each DiT (6 quick, 20)")
    parser.add_argument("--sampling-only", action="store_true",
                        help="only the steps and guidance sweeps of --model (no training)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    per_category, num_points = (8, 1024) if args.quick else (16, 2048)
    vae_minutes = args.vae_minutes or (4.0 if args.quick else 15.0)
    dit_minutes = args.dit_minutes or (6.0 if args.quick else 20.0)
    rows = []
    base = zoo.load(args.model)
    if not args.sampling_only:
        rows += trained_rows(args, out, vae_minutes, dit_minutes, per_category, num_points)
    for steps in ((5, 10, 25, 50) if args.quick else (5, 10, 25, 50, 100)):
        rows.append(dit_row(base, "steps", steps, per_category, num_points, args.seed, steps=steps))
    for g in ((1.0, 2.0, 3.0) if args.quick else (1.0, 1.5, 2.0, 3.0, 4.0)):
        rows.append(dit_row(base, "guidance_scale", g, per_category, num_points, args.seed, guidance_scale=g))
    keys = sorted({k for r in rows for k in r}, key=lambda k: (k not in ("factor", "setting"), k))
    with open(out / "ablation.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, out / "ablation.png")
    print(json.dumps({"csv": str(out / "ablation.csv"), "png": str(out / "ablation.png"), "rows": len(rows),
                      "quick": args.quick, "sampling_only": args.sampling_only}))


def trained_rows(args, out: Path, vae_minutes: float, dit_minutes: float, per_category: int,
                 num_points: int) -> list[dict]:
    """The latent-dimension VAEs and the face-count embedding on / off DiTs, trained here."""
    rows = []
    dims = (4, 8, 16)
    vaes = train([(["model=meshcraft_vae", f"model.net.latent_dim={d}"], out / f"vae_d{d}_{vae_minutes:g}min")
                  for d in dims], vae_minutes)
    for d, path in zip(dims, vaes):
        rows.append(vae_row(path, d))
        print(json.dumps(rows[-1]), flush=True)
    vae_dir = zoo.pretrained.resolve(args.model) / "vae"
    dits = train([(["model=meshcraft", f"model.net.face_count_embedding={str(on).lower()}", f"data.vae={vae_dir}"],
                   out / f"dit_count_{'on' if on else 'off'}_{dit_minutes:g}min") for on in (True, False)], dit_minutes)
    for on, path in zip((True, False), dits):
        rows.append(dit_row(zoo.load(path), "face_count_embedding", on, per_category, num_points, args.seed))
    return rows


if __name__ == "__main__":
    main()
