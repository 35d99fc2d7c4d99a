"""Closed-loop data aggregation (DAgger: Ross, Gordon and Bagnell, AISTATS 2011) for the driving planners.

A planner trained on expert driving only ever saw states the expert visited; in closed loop its own
small errors carry it to states no expert sample covers, where it errs more (covariate shift). Each
round of aggregation drives the current planner in training scenes, asks the expert what it would do
in every ``every``-th state the planner reached (``datamodules.highway.expert_label``: a copy of the
env driven 3 s by the IDM / MOBIL expert, labelled exactly as an expert episode's step), and adds
those rows to the training data; the planner is then fine-tuned on the union, the aggregated rows
drawn with probability ``mix`` (``DrivingDataModule``). recipes/train.py runs the rounds
(``rounds.count``): collect with the last round's export, fine-tune, export.

Round r drives training seeds ``seed0 + (r - 1) * episodes`` onwards in every scenario, so each round
sees new scenes, none of them a test or validation scene.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from datamodules.driving_codec import ENVS
from datamodules.highway import SEED0, expert_label
from models.vilad.closed_loop import drive, pipeline_planner

AGGREGATED_KEYS = ("frames", "context", "decision", "waypoints", "lateral", "longitudinal", "neighbours", "env",
                   "episode", "step")


def learner_rows(env: str, seeds: list[int], planner, every: int) -> tuple[dict[str, np.ndarray], dict]:
    """Drive ``planner`` in one scenario's episodes and label every ``every``-th state it reaches
    with the expert's decision: (rows as a training split's arrays, counts)."""
    first_speed = {}

    def label(sim, step):
        if step == 0:
            first_speed[id(sim)] = float(sim.vehicle.target_speed)
        return expert_label(sim, first_speed[id(sim)]) if step % every == 0 else None

    results = drive(env, seeds, planner, record=True, label=label)
    rows = {k: [] for k in AGGREGATED_KEYS}
    counts = {"episodes": len(seeds), "learner_crashes": sum(r["crashed"] for r in results), "states": 0,
              "labelled": 0, "expert_crashed_from_state": 0}
    for result in results:
        for step, (frame, context, labelled) in enumerate(zip(result["frames"], result["contexts"], result["labels"])):
            counts["states"] += 1
            if step % every:
                continue
            if labelled is None:  # the expert crashes within 3 s from here: no label, as in expert episodes
                counts["expert_crashed_from_state"] += 1
                continue
            counts["labelled"] += 1
            rows["frames"].append(frame[None])
            rows["context"].append(np.array(context.tokens(), np.int64)[None])
            for key in ("decision", "waypoints", "lateral", "longitudinal", "neighbours"):
                rows[key].append(labelled[key])
            rows["env"].append(np.array([ENVS.index(env)]))
            rows["episode"].append(np.array([result["seed"]]))
            rows["step"].append(np.array([step]))
    return {k: np.concatenate(v) if v else np.zeros((0,)) for k, v in rows.items()}, counts


def collect(pipe, round: int, out_dir: str | os.PathLike, envs: tuple[str, ...] = ENVS, episodes: int = 20,
            every: int = 2, seed0: int = 0) -> dict:
    """One round's rows, written to ``out_dir/aggregated_round{round}.safetensors``: ``episodes`` training
    episodes per scenario driven by ``pipe`` (its greedy defaults), every ``every``-th state labelled.
    Returns {"path", "seconds", and per scenario and in all the counts of ``learner_rows``}."""
    if round < 1:
        raise ValueError(f"round={round}: rounds of aggregation count from 1")
    first = seed0 + (round - 1) * episodes
    if first + episodes > SEED0["test"]:
        raise ValueError(f"round {round} would drive seeds up to {first + episodes - 1}; training seeds end "
                         f"before {SEED0['test']}")
    start, planner = time.perf_counter(), pipeline_planner(pipe)
    parts, per_env = [], {}
    for env in envs:
        rows, counts = learner_rows(env, list(range(first, first + episodes)), planner, every)
        per_env[env] = counts
        if counts["labelled"]:
            parts.append(rows)
    if not parts:
        raise RuntimeError(f"round {round}: no state could be labelled (every expert rollout crashed)")
    data = {k: torch.from_numpy(np.ascontiguousarray(np.concatenate([p[k] for p in parts]))) for k in AGGREGATED_KEYS}
    path = Path(out_dir) / f"aggregated_round{round}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    save_file(data, tmp)
    os.replace(tmp, path)  # a crash never leaves half a file under the name
    totals = {k: sum(c[k] for c in per_env.values()) for k in next(iter(per_env.values()))}
    return {"path": str(path), "round": round, "seeds": [first, first + episodes - 1], "every": every,
            "seconds": round_seconds(start), **totals, "per_env": per_env}


def round_seconds(start: float) -> float:
    return round(time.perf_counter() - start, 1)
