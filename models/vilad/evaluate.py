"""``python recipes/eval.py model=vilad-highway`` (task ``vilad_open_loop``) and ``task=vilad_closed_loop``.

Open loop, on the test episodes (seeds never trained on): L2 between planned and logged waypoints at
1 / 2 / 3 s and their mean (``l2_avg``, as the paper's nuScenes table), ADE / FDE over the six
waypoints, meta-action accuracy and macro F1 (lateral, longitudinal), the parse-failure rate, and the
share of plans that pass through a logged vehicle: a waypoint within one car length (5 m) ahead or
behind and one car width (2 m) to the side of where one of the 8 nearest vehicles was at that time.
The expert's own logged path is scored the same way (``expert_collision_rate``), which says what
the approximation counts when nobody collides.
"""

from __future__ import annotations

import numpy as np
import torch

from datamodules.driving_codec import ENVS, LATERAL, LONGITUDINAL, Context
from datamodules.highway import SEED0, DrivingDataModule
from models.vilad.closed_loop import closed_loop as run_closed_loop
from models.vilad.closed_loop import pipeline_planner
from zoo.checks import check_choice

CAR_LENGTH, CAR_WIDTH = 5.0, 2.0
EVAL_SPLITS = ("test", "val")  # the episodes a planner is scored on (never the train ones)


def contexts_of(tokens: torch.Tensor) -> list[Context]:
    """Contexts that encode to ``tokens`` (N, 4): bin centres stand for the speed and heading."""
    from datamodules.driving_codec import HEADING_BINS, NAVS, OFFSETS, SPEED_STEP

    out = []
    for env, speed, heading, nav in tokens.tolist():
        out.append(Context(ENVS[env - OFFSETS["env"]], (speed - OFFSETS["speed"] + 0.5) * SPEED_STEP,
                           (heading - OFFSETS["heading"]) * 2 * np.pi / HEADING_BINS, NAVS[nav - OFFSETS["nav"]]))
    return out


def macro_f1(pred: np.ndarray, true: np.ndarray, classes: int) -> float:
    """Mean F1 over the classes present in ``true`` or ``pred``."""
    scores = []
    for c in range(classes):
        tp, fp, fn = np.sum((pred == c) & (true == c)), np.sum((pred == c) & (true != c)), np.sum((pred != c) & (true == c))
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def collides(paths: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """paths (N, 6, 2), neighbours (N, K, 6, 2) (NaN: absent) -> (N,) bool: a waypoint inside a car box."""
    d = np.abs(paths[:, None] - neighbours)  # (N, K, 6, 2)
    with np.errstate(invalid="ignore"):
        hit = (d[..., 0] < CAR_LENGTH) & (d[..., 1] < CAR_WIDTH)
    return hit.any((1, 2))


def eval_split(split_episodes: int = 25, cache_dir: str = ".cache/driving", split: str = "test") -> dict:
    """The test split's raw arrays (highway.DrivingDataModule.split's keys), made and cached if absent;
    ``split="val"`` gives the validation episodes instead (for choosing settings)."""
    check_choice("split", split, EVAL_SPLITS)
    return DrivingDataModule(episodes={"train": 0, "test": split_episodes, split: split_episodes},
                             cache_dir=cache_dir).load_split(split)


def evenly(raw: dict, max_samples: int | None) -> dict:
    """``max_samples`` rows spread evenly over the split (which is ordered by scenario, so the first
    rows would all be highway), or all rows."""
    n = len(raw["step"])
    if max_samples is None or max_samples >= n:
        return raw
    rows = torch.from_numpy(np.linspace(0, n - 1, max_samples).round().astype(np.int64))
    return {k: (v[rows] if len(v) == n else v) for k, v in raw.items()}


def open_loop(pipe, generator: torch.Generator | None = None, batch_size: int = 64, max_samples: int | None = None,
              split_episodes: int = 25, cache_dir: str = ".cache/driving", split: str = "test", **sample_kwargs) -> dict:
    """Metrics dict over ``max_samples`` test samples spread over the split (all by default);
    ``sample_kwargs`` go to the pipeline (steps, policy, temperature, constrained). ``split="val"``:
    the validation episodes; ``split_episodes``: the split's episodes per scenario (the test split's
    25; the ablations' validation split has 10)."""
    raw = evenly(eval_split(split_episodes, cache_dir, split), max_samples)
    n = len(raw["step"])
    contexts = contexts_of(raw["context"][:n])
    plans, lat, lon, parse_failures, seconds, nfe = [], [], [], 0, 0.0, []
    for lo in range(0, n, batch_size):
        out = pipe(raw["frames"][lo:lo + batch_size], contexts[lo:lo + batch_size], generator=generator, **sample_kwargs)
        plans.append(out.waypoints.numpy())
        for action in out.meta_actions:
            lat.append(LATERAL.index(action[0]) if action else -1)
            lon.append(LONGITUDINAL.index(action[1]) if action else -1)
        parse_failures += out.parse_failures
        seconds += out.seconds
        nfe.append(out.nfe)
    plan = np.concatenate(plans)  # (n, 6, 2), NaN rows where unparseable
    truth = raw["waypoints"][:n].numpy()
    ok = ~np.isnan(plan).any((1, 2))
    err = np.linalg.norm(plan[ok] - truth[ok], axis=-1)  # (n_ok, 6)
    lat, lon = np.array(lat), np.array(lon)
    true_lat, true_lon = raw["lateral"][:n].numpy(), raw["longitudinal"][:n].numpy()
    env = raw["env"][:n].numpy()
    out = {"samples": n, "parse_failure_rate": parse_failures / n,
           "l2_1s": float(err[:, 1].mean()), "l2_2s": float(err[:, 3].mean()), "l2_3s": float(err[:, 5].mean()),
           "l2_avg": float(err[:, [1, 3, 5]].mean()), "ade": float(err.mean()), "fde": float(err[:, 5].mean()),
           "lateral_accuracy": float((lat == true_lat).mean()), "lateral_macro_f1": macro_f1(lat, true_lat, len(LATERAL)),
           "longitudinal_accuracy": float((lon == true_lon).mean()),
           "longitudinal_macro_f1": macro_f1(lon, true_lon, len(LONGITUDINAL)),
           "collision_rate": float(collides(np.nan_to_num(plan, nan=1e6)[ok], raw["neighbours"][:n].numpy()[ok]).mean()),
           "expert_collision_rate": float(collides(truth, raw["neighbours"][:n].numpy()).mean()),
           "nfe": float(np.mean(nfe)), "ms_per_sample": 1000 * seconds / n}
    for i, name in enumerate(ENVS):
        rows = (env[ok] == i)
        if rows.any():
            out[f"{name}/l2_avg"] = float(err[rows][:, [1, 3, 5]].mean())
    return out


def closed_loop(pipe, generator: torch.Generator | None = None, episodes: int = 50, envs: list | None = None,
                split: str = "test", **sample_kwargs) -> dict:
    """The planner drives ``episodes`` test episodes of each scenario (closed_loop.py): crash rate,
    distance, speed, lane changes, per scenario and over all; ``split="val"``: validation seeds.
    ``pipe`` None: the IDM expert drives them."""
    check_choice("split", split, EVAL_SPLITS)
    planner = None if pipe is None else pipeline_planner(pipe, generator, **sample_kwargs)
    return run_closed_loop(planner, tuple(envs or ENVS), episodes, SEED0[split])
