"""Ablations of Distilled Decoding on MNIST: ODE steps used to make the pairs, number of pairs, the
student's loss, and 1 vs 2 sampling steps, each student scored by cls-FID against the test digits.

    python recipes/ablations/distilled_decoding.py [--quick] [--out outputs/ablations/distilled_decoding]

Every setting trains a student with recipes/train.py (a shorter budget than the shipped one, the
same for all settings, without EMA) from the shipped teacher, then samples ``--samples`` images at 1
and 2 steps.
Pairs are cached per (ode_steps, shard) in .cache/dd_pairs, so settings share what they can.
Writes ablation.csv and ablation.png in --out; the last stdout line is a JSON summary.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

import zoo
from models.distilled_decoding.pairs import teacher_settings
from models.image_ar.evaluate import generate, sample_quality

ROOT = Path(__file__).resolve().parents[2]
BASE = {"ode_steps": 32, "num_pairs": 20000, "loss_type": "ce"}


def settings(quick: bool) -> list[dict]:
    """One factor varied at a time around BASE."""
    grid = [dict(BASE)]
    grid += [{**BASE, "ode_steps": s} for s in ([4] if quick else [4, 8])]
    grid += [{**BASE, "num_pairs": n} for n in ([4000] if quick else [4000, 40000])]
    grid += [{**BASE, "loss_type": lt} for lt in ("l2", "ce+l2")]
    return grid


def train_student(setting: dict, train_steps: int, out_dir: Path) -> Path:
    name = f"ode{setting['ode_steps']}-n{setting['num_pairs']}-{setting['loss_type']}-steps{train_steps}"
    export = out_dir / "students" / name
    if not (export / "model.safetensors").is_file():
        cmd = [sys.executable, "recipes/train.py", "model=distilled_decoding", "rich_progress=false",
               "trainer.enable_progress_bar=false", f"trainer.max_steps={train_steps}",
               # No EMA: at these short budgets an EMA of 0.999 would still weigh the initial weights.
               "ema_decay=null",
               f"trainer.val_check_interval={train_steps}", f"data.ode_steps={setting['ode_steps']}",
               f"data.num_pairs={setting['num_pairs']}", f"model.objective.loss_type={setting['loss_type']}",
               f"hydra.run.dir={out_dir / 'runs' / name}", f"export_dir={export}"]
        result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError(f"training {name} failed:\n{result.stderr[-3000:]}")
    return export


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    teacher = [r for r in rows if r["method"] == "teacher"]
    for ax, factor in zip(axes, ("ode_steps", "num_pairs", "loss_type")):
        if teacher:
            ax.axhline(teacher[0]["cls_fid"], color="grey", ls="--", label=f"teacher ({teacher[0]['steps']} steps)")
        others = {k: v for k, v in BASE.items() if k != factor}
        for steps, marker in ((1, "o"), (2, "s")):
            sel = [r for r in rows if r["steps"] == steps and all(r[k] == v for k, v in others.items())]
            sel.sort(key=lambda r: (str(r[factor]) if factor == "loss_type" else r[factor]))
            ax.plot([str(r[factor]) for r in sel], [r["cls_fid"] for r in sel], marker=marker, label=f"{steps} step")
        ax.set_xlabel(factor)
        ax.set_ylabel("cls-FID (lower is better)")
        ax.legend()
    fig.suptitle("Distilled Decoding on MNIST: one factor at a time")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer settings and a shorter training budget")
    parser.add_argument("--out", default="outputs/ablations/distilled_decoding")
    parser.add_argument("--samples", type=int, default=1000, help="images per setting and step count")
    parser.add_argument("--train-steps", type=int, default=None, help="student training steps per setting")
    args = parser.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_steps = args.train_steps or (1000 if args.quick else 2000)
    classifier, teacher = zoo.load("digit_cnn-mnist").net, zoo.load("image_ar-mnist")
    labels = torch.arange(args.samples) % 10

    def score(pipe, **kwargs) -> dict:
        images, tokens, nfe, seconds = generate(pipe, labels, 250, torch.Generator().manual_seed(0), **kwargs)
        return {"nfe": nfe, **sample_quality(images, tokens, labels, classifier, teacher.net)}

    start = time.perf_counter()
    rows = []
    for setting in settings(args.quick):
        pipe = zoo.load(train_student(setting, train_steps, out_dir))
        for steps in (1, 2):
            rows.append({"method": "student", **setting, "steps": steps, **score(pipe, steps=steps)})
            print(json.dumps(rows[-1]), flush=True)
    # The teacher at the guidance its pairs were made with: the distribution every student distils.
    teacher_row = {"method": "teacher", **{k: "" for k in BASE}, "steps": teacher.net.seq_len,
                   **score(teacher, **teacher_settings(pipe.meta["data"]))}
    rows.insert(0, teacher_row)
    with open(out_dir / "ablation.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, out_dir / "ablation.png")
    print(json.dumps({"rows": len(rows), "train_steps": train_steps, "csv": str(out_dir / "ablation.csv"),
                      "png": str(out_dir / "ablation.png"), "seconds": round(time.perf_counter() - start, 1)}))


if __name__ == "__main__":
    main()
