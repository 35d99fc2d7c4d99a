"""ViLaD's ablation (``python recipes/ablate.py model=vilad``): decoding steps, the remasking
(unmasking-order) policy, the planner with against without its image, the waypoint codec, and the
rounds of closed-loop data aggregation.

- sampling: the shipped planner (option ``model``) at 1, 2, 4, 7 and 14 passes (low-confidence order)
  and, at 4 passes, with each unmasking order: low confidence, margin, entropy, random.
- image: planners trained by recipes/train.py model=vilad for the same ``train_steps``, one reading the
  frame and one with ``use_image=false`` (context only: scenario, speed, heading, route).
- codec: the same with-image planner (quantised coordinates, 14 slots; trained once for both stages)
  against model=vilad_codebook (one token from a 256-path k-means codebook, 3 slots), each at 1 pass
  and at all its slots.
- rounds: every round's export of the runs given by ``rounds_runs`` ({name: run folder}; recipes/train.py
  rounds.count=N keeps them in <run>/rounds/round0..N), with the CPU minutes each took to reach.
- intersection: where the planners crash, closed loop only, on ``episodes`` (20) intersection episodes:
  the masked planner at each of ``passes`` (most-confident first) and at all 14 left to right (the AR
  twin's order, ``block_length=1``), the AR twin (option ``baseline``) and the expert, so decoding
  and the model can be told apart as causes.
Every row is scored on the validation episodes (seeds from 200,000: neither trained on nor the test
figures of the README's benchmark), so a setting chosen here is not chosen on the test set: open loop
on ``samples`` samples over the four scenarios (L2, meta-action F1, collisions with logged vehicles)
and closed loop on ``episodes`` episodes per scenario (crash rate per scenario, distance).
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

import zoo
from datamodules.driving_codec import template
from models.vilad.evaluate import closed_loop, open_loop
from zoo.ablation import Ablation, AblationRun, Stage, Training

# the with-image grid planner is trained once for both stages; the codec rows decode at 1 pass and at all slots
WITH_IMAGE = ("vilad", ("model=vilad",))
TRAINED = {"image": [Training("image", "with image", *WITH_IMAGE),
                     Training("image", "without image", "vilad_no_image",
                              ("model=vilad", "++model.net.use_image=false"))],
           "codec": [Training("codec", f"{codec} ({len(template(codec))} slots), {n} pass{'es' * (n > 1)}", folder,
                              overrides, {"steps": n})
                     for codec, folder, overrides in (("grid", *WITH_IMAGE), ("codebook", "vilad_codebook",
                                                                              ("model=vilad_codebook",)))
                     for n in (1, len(template(codec)))]}
VAL_EPISODES = 10  # per scenario: the validation split (1,421 samples)
OPEN_KEYS = ("l2_avg", "ade", "fde", "lateral_macro_f1", "longitudinal_macro_f1", "collision_rate", "nfe",
             "ms_per_sample", "parse_failure_rate")


def score(run: AblationRun, pipe, **kwargs) -> dict:
    samples, episodes = run.pick("samples", 256, None), run.pick("episodes", 2, VAL_EPISODES)
    seed = run.options.seed
    opened = open_loop(pipe, generator=torch.Generator().manual_seed(seed), max_samples=samples, split="val",
                       split_episodes=VAL_EPISODES, **kwargs)
    driven = closed_loop(pipe, generator=torch.Generator().manual_seed(seed), episodes=episodes, split="val", **kwargs)
    return {**{k: opened[k] for k in OPEN_KEYS}, "crash_rate": driven["crash_rate"],
            "distance_m": driven["distance_m"], "mean_speed": driven["mean_speed"],
            **{f"crash_rate_{env}": part["crash_rate"] for env, part in driven["per_env"].items()}}


def cpu_minutes(meta: dict) -> float:
    """Minutes a round's export took to reach (meta.json): the training seconds of the checkpoint the
    rounds started from (as the record keeps them), the rounds before it, then its own training. A round
    0 trained for no steps is its init_from checkpoint, and counts that one's."""
    own, aggregation = meta.get("train_seconds") or 0.0, meta.get("aggregation")
    if aggregation is None:
        return (own or (meta.get("init_from") or {}).get("train_seconds", 0.0)) / 60
    return ((aggregation.get("start") or {}).get("train_seconds", 0.0) + aggregation["seconds_before_this_round"]
            + own) / 60


def sampling(run: AblationRun) -> list[dict]:
    model = run.options.model
    pipe = zoo.load(model)
    rows = [run.log({"factor": "steps", "setting": steps, "model": model, **score(run, pipe, steps=steps)})
            for steps in ((1, 4, 14) if run.quick else (1, 2, 4, 7, 14))]
    return rows + [run.log({"factor": "policy", "setting": policy, "model": model, "steps": 4,
                            **score(run, pipe, steps=4, policy=policy)})
                   for policy in ("low_confidence", "margin", "entropy", "random")]  # at 1 pass order cannot matter


def trained(stage: str):
    return lambda run: run.compare(TRAINED[stage], run.pick("train_steps", 300, 1500),
                                   functools.partial(score, run))


def rounds(run: AblationRun) -> list[dict]:
    if not run.options.rounds_runs:
        raise ValueError("stage rounds needs +options.rounds_runs={name: run folder of recipes/train.py rounds.count=N}")
    out = []
    for name, folder in run.options.rounds_runs.items():
        for path in sorted((Path(folder) / "rounds").glob("round*"), key=lambda p: int(p.name[5:])):
            meta = zoo.pretrained.load_meta(path)
            out.append(run.log({"factor": "rounds", "setting": int(path.name[5:]), "model": name,
                                "cpu_minutes": round(cpu_minutes(meta), 1), **score(run, zoo.load(path))}))
    return out


def intersection(run: AblationRun) -> list[dict]:
    episodes, masked = run.pick("episodes", 4, 20), zoo.load(run.options.model)
    model, baseline, slots = run.options.model, run.options.baseline, len(template(masked.net.waypoint_codec))
    drivers = [(f"masked, {n} pass{'es' * (n > 1)}{', confident first' * (n == slots)}", model, masked, {"steps": n})
               for n in run.options.passes]
    drivers += [(f"masked, {slots} passes, left to right", model, masked, {"steps": slots, "block_length": 1}),
                ("AR twin", baseline, zoo.load(baseline), {}), ("expert", "expert", None, {})]
    rows = []
    for name, checkpoint, pipe, kwargs in drivers:
        driven = closed_loop(pipe, torch.Generator().manual_seed(run.options.seed), episodes, ["intersection"], "val",
                             **kwargs)
        rows.append(run.log({"factor": "intersection", "setting": name, "model": checkpoint, "episodes": episodes,
                             "crash_rate_intersection": driven["crash_rate"], "distance_m": driven["distance_m"],
                             "mean_speed": driven["mean_speed"]}))
    return rows


ABLATION = Ablation(
    title="ViLaD on highway-env, validation episodes (open-loop L2, closed-loop crash rate)",
    stages={"sampling": Stage(("steps", "policy"), sampling), "image": Stage(("image",), trained("image")),
            "codec": Stage(("codec",), trained("codec")), "rounds": Stage(("rounds",), rounds),
            "intersection": Stage(("intersection",), intersection)},
    metrics=("l2_avg", "crash_rate", "crash_rate_intersection"),
    options={"model": "vilad-highway", "baseline": "vilad_ar-highway", "passes": [1, 14], "train_steps": None,
             "samples": None, "episodes": None, "seed": 0, "rounds_runs": {}},
)
