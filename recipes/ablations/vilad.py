"""Ablations of ViLaD on highway-env: decoding steps, the remasking (unmasking-order) policy, the
planner with against without its image, and the waypoint codec.

    python recipes/ablations/vilad.py [--quick] [--stages sampling,image,codec,rounds] [--out outputs/ablations/vilad]

- steps and policy (stage ``sampling``): the shipped planner (``--model``) at 1, 2, 4, 7 and 14 passes
  (low-confidence order) and, at 4 passes, with each unmasking order: low confidence, margin, entropy,
  random.
- image (stage ``image``): planners trained by recipes/train.py model=vilad for the same
  ``--train-steps`` (one thread each; the trainings of all chosen stages run first, ``--parallel`` at
  once), one reading the frame and one with ``use_image=false`` (context only: scenario, speed,
  heading, route).
- codec (stage ``codec``): the same with-image planner (quantised coordinates, 14 slots; trained once
  for both stages) against model=vilad_codebook (one token from a 256-path k-means codebook, 3
  slots), each at 1 pass and at all its slots.
- rounds of closed-loop data aggregation (stage ``rounds``): every round's export of the runs given
  by ``--rounds-runs name=outputs/<run>`` (recipes/train.py rounds.count=N keeps them in
  <run>/rounds/round0..N), with the CPU minutes each took to reach (training and collecting).
Every row is scored on the validation episodes (seeds from 200,000: neither trained on nor the test
figures of the README's benchmark), so a setting chosen here is not chosen on the test set: open loop
on ``--samples`` samples spread over the four scenarios (evaluate.open_loop: L2, meta-action F1,
collisions with logged vehicles) and closed loop on ``--episodes`` episodes per scenario (crash rate,
distance), with NFE and milliseconds per decision at batch 64. Writes ablation.csv and ablation.png in
--out (rows of stages run in earlier calls are kept in rows.jsonl); the last stdout line is a JSON summary.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

import zoo
from datamodules.driving_codec import template
from models.vilad.evaluate import closed_loop, open_loop

sys.path.insert(0, str(Path(__file__).resolve().parent))  # recipes/ablations, also when imported by path
from common import finish, merged_rows, parse_staged, staged_parser, train  # noqa: E402

STAGES = ("sampling", "image", "codec", "rounds")
# (row name, export folder, train.py args): the with-image grid planner is trained once for two stages
BASELINE = ("vilad", ["model=vilad"])
TRAINED = {"image": [("with image", *BASELINE),
                     ("without image", "vilad_no_image", ["model=vilad", "++model.net.use_image=false"])],
           "codec": [("grid (14 slots)", *BASELINE),
                     ("codebook (3 slots)", "vilad_codebook", ["model=vilad_codebook"])]}
VAL_EPISODES = 10  # per scenario: the validation split (1,421 samples)
OPEN_KEYS = ("l2_avg", "ade", "fde", "lateral_macro_f1", "longitudinal_macro_f1", "collision_rate", "nfe",
             "ms_per_sample", "parse_failure_rate")


def score(pipe, samples: int, episodes: int, seed: int, **kwargs) -> dict:
    opened = open_loop(pipe, generator=torch.Generator().manual_seed(seed), max_samples=samples, split="val",
                       split_episodes=VAL_EPISODES, **kwargs)
    driven = closed_loop(pipe, generator=torch.Generator().manual_seed(seed), episodes=episodes, split="val", **kwargs)
    return {**{k: opened[k] for k in OPEN_KEYS}, "crash_rate": driven["crash_rate"],
            "distance_m": driven["distance_m"], "mean_speed": driven["mean_speed"],
            **{f"crash_rate_{env}": part["crash_rate"] for env, part in driven["per_env"].items()}}


def cpu_minutes(meta: dict) -> float:
    """Minutes a round's export took to reach: its predecessors' training and collecting, then its own
    (meta.json's aggregation record; a round 0 that is its init_from checkpoint counts that one's)."""
    aggregation = meta.get("aggregation")
    if aggregation is None:
        start = meta.get("init_from", {}).get("checkpoint") if not meta.get("train_seconds") else None
        before = json.loads((Path(start) / "meta.json").read_text()).get("train_seconds", 0.0) if start else 0.0
        return (before + (meta.get("train_seconds") or 0.0)) / 60
    start = aggregation.get("start")
    before = json.loads((Path(start["checkpoint"]) / "meta.json").read_text()).get("train_seconds", 0.0) if start else 0.0
    return (before + aggregation["seconds_before_this_round"] + (meta.get("train_seconds") or 0.0)) / 60


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 5, figsize=(24, 3.8))
    steps = sorted((r for r in rows if r["factor"] == "steps"), key=lambda r: r["setting"])
    if steps:
        axes[0].plot([r["setting"] for r in steps], [r["l2_avg"] for r in steps], marker="o", label="L2 avg (m)")
        axes[0].plot([r["setting"] for r in steps], [r["crash_rate"] for r in steps], marker="s", label="crash rate")
        axes[0].set_xlabel("decoding passes (14 slots)")
        axes[0].legend(fontsize=7)
        axes[0].set_title("steps")
    for ax, factor in ((axes[1], "policy"), (axes[2], "image"), (axes[3], "codec")):
        sel = [r for r in rows if r["factor"] == factor]
        if sel:
            x = range(len(sel))
            ax.bar([i - 0.2 for i in x], [r["l2_avg"] for r in sel], 0.4, label="L2 avg (m)")
            ax.bar([i + 0.2 for i in x], [r["crash_rate"] for r in sel], 0.4, label="crash rate")
            ax.set_xticks(list(x), [f"{r['setting']}, {r['nfe']:g} NFE" for r in sel], rotation=20, fontsize=7)
            ax.set_title(factor)
            ax.legend(fontsize=7)
    for model in sorted({r["model"] for r in rows if r["factor"] == "rounds"}):
        sel = sorted((r for r in rows if r["factor"] == "rounds" and r["model"] == model), key=lambda r: r["setting"])
        axes[4].plot([r["setting"] for r in sel], [r["crash_rate"] for r in sel], marker="o", label=f"{model}, all")
        axes[4].plot([r["setting"] for r in sel], [r.get("crash_rate_intersection", float("nan")) for r in sel],
                     marker="s", linestyle="--", label=f"{model}, intersection")
    if axes[4].get_legend_handles_labels()[0]:
        axes[4].set_xlabel("rounds of data aggregation")
        axes[4].set_ylabel("crash rate")
        axes[4].set_title("rounds")
        axes[4].legend(fontsize=7)
    fig.suptitle("ViLaD on highway-env, validation episodes (open-loop L2, closed-loop crash rate)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = staged_parser(__doc__, "vilad", STAGES, "fewer samples, episodes and steps")
    parser.add_argument("--model", default="vilad-highway")
    parser.add_argument("--train-steps", type=int, default=None, help="steps of each image-stage planner (300 quick, 1500)")
    parser.add_argument("--samples", type=int, default=None, help="open-loop validation samples a row (256 quick, all)")
    parser.add_argument("--episodes", type=int, default=None,
                        help=f"closed-loop validation episodes per scenario a row (2 quick, {VAL_EPISODES})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds-runs", default="",
                        help="stage rounds: name=run folder pairs, comma-separated (e.g. vilad=outputs/vilad/<run>)")
    args, stages, out = parse_staged(parser, STAGES)
    samples = args.samples or (256 if args.quick else None)
    episodes = args.episodes or (2 if args.quick else VAL_EPISODES)
    train_steps = args.train_steps or (300 if args.quick else 1500)
    factors = {"sampling": ["steps", "policy"], "image": ["image"], "codec": ["codec"], "rounds": ["rounds"]}
    # every training of the chosen stages first, together (one thread each, --parallel at once)
    runs = {folder: overrides for stage in stages for _, folder, overrides in TRAINED.get(stage, [])}
    jobs = [(overrides, out / f"{folder}_{train_steps}steps") for folder, overrides in runs.items()]
    train(jobs, train_steps, args.max_minutes, args.parallel)
    rows = []
    for stage in stages:  # each stage's rows are saved when it ends
        new = []
        if stage == "sampling":
            pipe = zoo.load(args.model)
            for steps in ((1, 4, 14) if args.quick else (1, 2, 4, 7, 14)):
                new.append({"factor": "steps", "setting": steps, "model": args.model,
                            **score(pipe, samples, episodes, args.seed, steps=steps)})
                print(json.dumps(new[-1]), flush=True)
            for policy in ("low_confidence", "margin", "entropy", "random"):  # at 1 pass the order cannot matter
                new.append({"factor": "policy", "setting": policy, "model": args.model, "steps": 4,
                            **score(pipe, samples, episodes, args.seed, steps=4, policy=policy)})
                print(json.dumps(new[-1]), flush=True)
        elif stage == "rounds":
            for name, run in (pair.split("=", 1) for pair in args.rounds_runs.split(",")):
                for path in sorted((Path(run) / "rounds").glob("round*"), key=lambda p: int(p.name[5:])):
                    meta = json.loads((path / "meta.json").read_text())
                    new.append({"factor": "rounds", "setting": int(path.name[5:]), "model": name,
                                "cpu_minutes": round(cpu_minutes(meta), 1), **score(zoo.load(path), samples, episodes, args.seed)})
                    print(json.dumps(new[-1]), flush=True)
        else:
            for name, folder, _ in TRAINED[stage]:
                path = out / f"{folder}_{train_steps}steps"
                meta = json.loads((path / "meta.json").read_text())
                pipe = zoo.load(path)
                slots = len(template(pipe.net.waypoint_codec))
                for steps in ([1, slots] if stage == "codec" else [None]):  # None: the config's default passes
                    kwargs = {} if steps is None else {"steps": steps}
                    setting = name if steps is None else f"{name}, {steps} pass{'es' * (steps > 1)}"
                    new.append({"factor": stage, "setting": setting,
                                "steps_trained": meta["steps"], "train_seconds": meta.get("train_seconds"),
                                **score(pipe, samples, episodes, args.seed, **kwargs)})
                    print(json.dumps(new[-1]), flush=True)
        rows = merged_rows(out / "rows.jsonl", new, factors[stage])
    finish(rows, out, plot, args.quick, stages)


if __name__ == "__main__":
    main()
