"""Ablations of ViLaD on highway-env: decoding steps, the remasking (unmasking-order) policy, and the
planner with against without its image.

    python recipes/ablations/vilad.py [--quick] [--stages sampling,image] [--out outputs/ablations/vilad]

- steps and policy (stage ``sampling``): the shipped planner (``--model``) at 1, 2, 4, 7 and 14 passes
  (low-confidence order) and, at its default steps, with each unmasking order: low confidence, margin,
  entropy, random.
- image (stage ``image``): two planners trained by recipes/train.py model=vilad for the same
  ``--train-steps`` (one thread each, side by side), one reading the frame and one with
  ``use_image=false`` (context only: scenario, speed, heading, route).
Every row is scored open loop on the first ``--samples`` test samples (evaluate.open_loop: L2, meta-action
F1, collisions with logged vehicles) and closed loop on ``--episodes`` test episodes per scenario (crash
rate, distance), with NFE and milliseconds per decision at batch 64. The waypoint codec (a k-means
codebook instead of quantised coordinates) is not built yet. Writes ablation.csv and ablation.png in
--out (rows of stages run in earlier calls are kept in rows.jsonl); the last stdout line is a JSON summary.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

import zoo
from datamodules.driving_codec import ENVS
from models.vilad.closed_loop import closed_loop, pipeline_planner
from models.vilad.evaluate import open_loop

sys.path.insert(0, str(Path(__file__).resolve().parent))  # recipes/ablations, also when imported by path
from common import finish, merged_rows, parse_staged, staged_parser, train  # noqa: E402

STAGES = ("sampling", "image")
IMAGE_SETTINGS = [("with image", []), ("without image", ["++model.net.use_image=false"])]  # train.py overrides
OPEN_KEYS = ("l2_avg", "ade", "fde", "lateral_macro_f1", "longitudinal_macro_f1", "collision_rate", "nfe",
             "ms_per_sample", "parse_failure_rate")


def score(pipe, samples: int, episodes: int, seed: int, **kwargs) -> dict:
    opened = open_loop(pipe, generator=torch.Generator().manual_seed(seed), max_samples=samples, **kwargs)
    driven = closed_loop(pipeline_planner(pipe, torch.Generator().manual_seed(seed), **kwargs), ENVS, episodes)
    return {**{k: opened[k] for k in OPEN_KEYS}, "crash_rate": driven["crash_rate"],
            "distance_m": driven["distance_m"], "mean_speed": driven["mean_speed"]}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    steps = sorted((r for r in rows if r["factor"] == "steps"), key=lambda r: r["setting"])
    if steps:
        axes[0].plot([r["setting"] for r in steps], [r["l2_avg"] for r in steps], marker="o", label="L2 avg (m)")
        axes[0].plot([r["setting"] for r in steps], [r["crash_rate"] for r in steps], marker="s", label="crash rate")
        axes[0].set_xlabel("decoding passes (14 slots)")
        axes[0].legend(fontsize=7)
        axes[0].set_title("steps")
    for ax, factor in ((axes[1], "policy"), (axes[2], "image")):
        sel = [r for r in rows if r["factor"] == factor]
        if sel:
            x = range(len(sel))
            ax.bar([i - 0.2 for i in x], [r["l2_avg"] for r in sel], 0.4, label="L2 avg (m)")
            ax.bar([i + 0.2 for i in x], [r["crash_rate"] for r in sel], 0.4, label="crash rate")
            ax.set_xticks(list(x), [str(r["setting"]) for r in sel], rotation=20)
            ax.set_title(factor)
            ax.legend(fontsize=7)
    fig.suptitle("ViLaD on highway-env (open-loop L2, closed-loop crash rate)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = staged_parser(__doc__, "vilad", STAGES, "fewer samples, episodes and steps")
    parser.add_argument("--model", default="vilad-highway")
    parser.add_argument("--train-steps", type=int, default=None, help="steps of each image-stage planner (300 quick, 1500)")
    parser.add_argument("--samples", type=int, default=None, help="open-loop test samples a row (256 quick, 2048)")
    parser.add_argument("--episodes", type=int, default=None, help="closed-loop episodes per scenario a row (2 quick, 10)")
    parser.add_argument("--seed", type=int, default=0)
    args, stages, out = parse_staged(parser, STAGES)
    samples = args.samples or (256 if args.quick else 2048)
    episodes = args.episodes or (2 if args.quick else 10)
    train_steps = args.train_steps or (300 if args.quick else 1500)
    factors = {"sampling": ["steps", "policy"], "image": ["image"]}
    rows = []
    for stage in stages:  # each stage's rows are saved when it ends
        new = []
        if stage == "sampling":
            pipe = zoo.load(args.model)
            for steps in ((1, 4, 14) if args.quick else (1, 2, 4, 7, 14)):
                new.append({"factor": "steps", "setting": steps, "model": args.model,
                            **score(pipe, samples, episodes, args.seed, steps=steps)})
                print(json.dumps(new[-1]), flush=True)
            for policy in ("low_confidence", "margin", "entropy", "random"):
                new.append({"factor": "policy", "setting": policy, "model": args.model,
                            "steps": pipe.pipeline_kwargs["steps"], **score(pipe, samples, episodes, args.seed, policy=policy)})
                print(json.dumps(new[-1]), flush=True)
        else:
            jobs = [(["model=vilad", *overrides], out / f"{name.replace(' ', '_')}_{train_steps}steps")
                    for name, overrides in IMAGE_SETTINGS]
            for (name, _), path in zip(IMAGE_SETTINGS, train(jobs, train_steps, args.max_minutes, args.parallel)):
                meta = json.loads((path / "meta.json").read_text())
                new.append({"factor": "image", "setting": name, "steps_trained": meta["steps"],
                            "train_seconds": meta.get("train_seconds"), **score(zoo.load(path), samples, episodes, args.seed)})
                print(json.dumps(new[-1]), flush=True)
        rows = merged_rows(out / "rows.jsonl", new, factors[stage])
    finish(rows, out, plot, args.quick, stages)


if __name__ == "__main__":
    main()
