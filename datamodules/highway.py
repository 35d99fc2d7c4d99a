"""Driving scenes from highway-env (offline, pure Python) for the ViLaD planner, driven by a rule-based
expert: the ego is replaced by an ``IDMVehicle`` (IDM speed control, MOBIL lane changes).

Four scenarios (``ENV_IDS``), the simulator stepped at 2 Hz (one step = 0.5 s). At each step the
record keeps a 64 x 64 bird's-eye RGB frame centred ahead of the ego, its text context (scenario,
speed, heading, navigation command), and, from the steps that follow, the labels:

- waypoints: the ego's positions 0.5 .. 3 s later in its own frame at this step;
- lateral: ``left`` / ``right`` when the expert's target lane moves one lane over during this step
  (the moment a lane-change action would be issued), else ``keep``;
- longitudinal: ``accelerate`` / ``decelerate`` when its speed changes by more than 0.5 m/s over the
  next second, else ``keep``;
- the logged future positions of the 8 nearest other vehicles (the open-loop collision check).

Steps whose 3 s future includes a crash or runs past the episode are dropped. Episodes are split by
seed (train seeds 0.., test seeds from 100,000), so no test scene is ever trained on.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from datamodules.base import DataCard, StepBatchSampler, TensorDataModule, cached_tensors, progress
from datamodules.driving_codec import (CENTERING, CONTEXT_LEN, DT, ENVS, FRAME_SHAPE, HORIZON, LATERAL, LONGITUDINAL,
                                       NAVS, OFFSETS, PATH_CODES, PATHS_FILE, SCALING, Context, encode_decision,
                                       fit_path_codebook, template)

ENV_IDS = {"highway": "highway-fast-v0", "merge": "merge-v0", "roundabout": "roundabout-v0",
           "intersection": "intersection-v0"}
EPISODE_STEPS = {"highway": 60, "merge": 40, "roundabout": 22, "intersection": 26}  # 2 Hz: 30, 20, 11, 13 s
FRAME = FRAME_SHAPE[0]
POLICY_HZ = int(round(1 / DT))
NEIGHBOURS = 8
SEED0 = {"train": 0, "test": 100_000, "val": 200_000}  # each split's first episode seed; none shared
TEST_SEED0 = SEED0["test"]
SPEED_CHANGE = 0.5  # m/s over the next second that counts as accelerating or decelerating
DATA_VERSION = 1  # bump when the generator changes, so old caches are not reused


def make_env(env: str, seed: int):
    """The scenario's gymnasium env, reset with ``seed``, rendering 64 x 64 RGB frames offscreen."""
    if env not in ENV_IDS:
        raise ValueError(f"env={env!r} is unknown; choose one of {list(ENV_IDS)}")
    import gymnasium
    import highway_env  # noqa: F401  (registers the envs)

    config = {"offscreen_rendering": True, "screen_width": FRAME, "screen_height": FRAME,
              "scaling": SCALING[env], "centering_position": list(CENTERING), "policy_frequency": POLICY_HZ,
              "duration": 10_000}  # episodes end by EPISODE_STEPS (or a crash), the same in every scenario
    if env == "intersection":
        config["destination"] = None  # a random exit: left, straight or right (the navigation command)
    restore_idm_class()
    handle = gymnasium.make(ENV_IDS[env], render_mode="rgb_array", config=config)
    handle.reset(seed=seed)
    return handle


IDM_CLASS_SETTINGS = ("DISTANCE_WANTED", "COMFORT_ACC_MAX", "COMFORT_ACC_MIN")
_idm_defaults: dict[str, float] = {}


def restore_idm_class() -> None:
    """Put the IDM vehicle's class-level settings back to highway-env's own values. intersection-v0 writes
    its jam distance and comfort accelerations onto the IDMVehicle class when it places its traffic, so
    without this every env made later in the same process (a closed-loop run over all scenarios, the
    next planner's) drives different traffic and a different expert. The values are read the first time
    an env is made here, before any intersection could change them."""
    from highway_env.vehicle.behavior import IDMVehicle

    if not _idm_defaults:
        _idm_defaults.update({name: getattr(IDMVehicle, name) for name in IDM_CLASS_SETTINGS})
    for name, value in _idm_defaults.items():
        setattr(IDMVehicle, name, value)


def use_expert(handle) -> None:
    """Replace the ego by an IDM / MOBIL vehicle at the same state, route and target (the expert)."""
    expert_takes_over(handle.unwrapped)


def expert_takes_over(sim) -> None:
    """``use_expert`` on the env itself (``handle.unwrapped``, or a copy of it)."""
    from highway_env.vehicle.behavior import IDMVehicle

    ego = sim.vehicle
    expert = IDMVehicle.create_from(ego)
    sim.road.vehicles[sim.road.vehicles.index(ego)] = expert
    sim.controlled_vehicles = [expert]


def navigation(handle) -> str:
    """left / straight / right from the heading change along the ego's planned route; none without one."""
    sim = handle.unwrapped
    route = getattr(sim.vehicle, "route", None)
    if not route or len(route) < 2:
        return "none"
    net = sim.road.network
    last = net.get_lane(route[-1])
    turn = (last.heading_at(last.length) - net.get_lane(route[0]).heading_at(0) + np.pi) % (2 * np.pi) - np.pi
    if abs(turn) < np.pi / 4:
        return "straight"
    return "left" if turn < 0 else "right"  # screen coordinates: y points down, so a left turn is negative


def observe(handle, env: str, nav: str) -> tuple[np.ndarray, Context]:
    """The frame (64, 64, 3) uint8 and the text context of the current state."""
    ego = handle.unwrapped.vehicle
    return handle.render(), Context(env, float(ego.speed), float(ego.heading), nav)


def to_ego_frame(points: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """World points (..., 2) -> the frame of pose (x, y, heading): x forward, y to the right (screen)."""
    c, s = np.cos(pose[2]), np.sin(pose[2])
    d = points - pose[:2]
    return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]], -1)


def lane_shift(before, after) -> int:
    """-1 / +1 when ``after`` is the lane to the left / right of ``before`` on the same road, else 0."""
    if before is None or after is None or before[:2] != after[:2]:
        return 0
    return int(np.clip(after[2] - before[2], -1, 1))


def meta_actions(lanes: list, speeds: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The lateral and longitudinal labels (class indices) of ``steps``, from the target lane at each
    step and the speed (m/s); both lists must reach one second past the last step."""
    shift = np.array([lane_shift(lanes[t], lanes[t + 1]) for t in steps], np.int64)
    lateral = np.where(shift < 0, LATERAL.index("left"), np.where(shift > 0, LATERAL.index("right"), 0))
    dv = np.asarray(speeds)[steps + POLICY_HZ] - np.asarray(speeds)[steps]
    longitudinal = np.where(dv > SPEED_CHANGE, LONGITUDINAL.index("accelerate"),
                            np.where(dv < -SPEED_CHANGE, LONGITUDINAL.index("decelerate"), 0))
    return lateral.astype(np.int64), longitudinal.astype(np.int64)


def expert_episode(env: str, seed: int) -> dict[str, np.ndarray]:
    """One expert episode as labelled samples (arrays with a leading sample axis; possibly empty)."""
    handle = make_env(env, seed)
    use_expert(handle)
    sim, nav = handle.unwrapped, navigation(handle)
    idle = sim.action_type.actions_indexes["IDLE"]
    frames, contexts, poses, speeds, lanes, others = [], [], [], [], [], []
    end, crashed_at, step = EPISODE_STEPS[env], None, 0
    while step < end + HORIZON:  # past the episode's end too: its last samples need 3 s of future
        ego = sim.vehicle
        frame, context = observe(handle, env, nav)
        frames.append(frame)
        contexts.append(context.tokens())
        poses.append([*ego.position, ego.heading])
        speeds.append(ego.speed)
        lanes.append(ego.target_lane_index)
        others.append({id(v): v.position.copy() for v in sim.road.vehicles if v is not ego})
        if ego.crashed:
            crashed_at = step
            break
        terminated = sim.step(idle)[2]
        if terminated and step + 1 < end:  # the env's own end (merge: past the merge zone; intersection: arrived)
            end = step + 1
        step += 1
    handle.close()
    last_future = len(poses) - 1 if crashed_at is None else crashed_at - 1  # a 3 s future never holds the crash
    keep = np.arange(max(0, min(last_future - HORIZON + 1, end)))
    n = len(keep)
    return {"frames": np.stack(frames)[keep].reshape(n, FRAME, FRAME, 3),
            "context": np.array(contexts, np.int64)[keep].reshape(n, CONTEXT_LEN),
            **labels(poses, speeds, lanes, others, keep),
            "env": np.full(n, ENVS.index(env), np.int64), "episode": np.full(n, seed, np.int64),
            "step": keep.astype(np.int64),
            "expert_crashed": np.full(n, crashed_at is not None and crashed_at <= end)}


def labels(poses: list, speeds: list, lanes: list, others: list[dict], keep: np.ndarray) -> dict[str, np.ndarray]:
    """The targets of the steps ``keep`` from a driven track: per step the ego's pose (x, y, heading),
    speed, target lane and the other vehicles' positions ({id: (2,)}), reaching 3 s past the last kept
    step. -> decision tokens, waypoints, lateral, longitudinal, neighbours (arrays over ``keep``)."""
    poses, speeds = np.array(poses), np.array(speeds)
    future = poses[keep[:, None] + np.arange(1, HORIZON + 1), :2]  # (N, HORIZON, 2) world
    waypoints = np.stack([to_ego_frame(future[i], poses[t]) for i, t in enumerate(keep)]) if len(keep) \
        else np.zeros((0, HORIZON, 2))
    lateral, longitudinal = meta_actions(lanes, speeds, keep)
    neighbours = np.full((len(keep), NEIGHBOURS, HORIZON, 2), np.nan, np.float32)  # NaN: no such vehicle then
    for i, t in enumerate(keep):
        near = sorted(others[t], key=lambda key: np.linalg.norm(others[t][key] - poses[t, :2]))[:NEIGHBOURS]
        for j, key in enumerate(near):
            for k in range(HORIZON):
                if key in others[t + k + 1]:
                    neighbours[i, j, k] = to_ego_frame(others[t + k + 1][key], poses[t])
    return {"decision": encode_decision(lateral, longitudinal, waypoints), "waypoints": waypoints.astype(np.float32),
            "lateral": lateral, "longitudinal": longitudinal, "neighbours": neighbours}


def expert_label(sim, target_speed: float | None = None) -> dict[str, np.ndarray] | None:
    """What the expert would do from the current state of ``sim`` (``handle.unwrapped``): a copy of the
    env is driven 3 s by the IDM / MOBIL expert in the ego's place, and its track labelled as an expert
    episode's step is (``labels``, one row). None when the expert crashes within those 3 s (such steps
    are dropped from expert episodes too). The env itself does not move. ``target_speed``: the expert's
    desired speed (the episode's first ego's; a planner may have changed the ego's since)."""
    import copy

    twin = copy.deepcopy(sim)  # highway-env copies an env without its viewer
    expert_takes_over(twin)
    if target_speed is not None:
        twin.vehicle.target_speed = target_speed
    idle = twin.action_type.actions_indexes["IDLE"]
    poses, speeds, lanes, others = [], [], [], []
    for k in range(HORIZON + 1):
        ego = twin.vehicle
        if ego.crashed:
            return None
        poses.append([*ego.position, ego.heading])
        speeds.append(ego.speed)
        lanes.append(ego.target_lane_index)
        others.append({id(v): v.position.copy() for v in twin.road.vehicles if v is not ego})
        if k < HORIZON:
            twin.step(idle)
    return labels(poses, speeds, lanes, others, np.arange(1))


def _episode(job: tuple[str, int]) -> dict[str, np.ndarray]:
    return expert_episode(*job)


def make_split(envs: tuple[str, ...], episodes: int, seed0: int, workers: int | None = None) -> dict[str, torch.Tensor]:
    """``episodes`` expert episodes per scenario, seeds seed0 .. seed0 + episodes - 1, concatenated."""
    jobs = [(env, seed0 + k) for env in envs for k in range(episodes)]
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            parts = list(progress(pool.imap(_episode, jobs), len(jobs), "expert episodes"))
    else:
        parts = [_episode(job) for job in progress(jobs, len(jobs), "expert episodes")]
    data = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    crashed = {(env, s) for (env, s), p in zip(jobs, parts) if len(p["expert_crashed"]) and p["expert_crashed"][0]}
    data.pop("expert_crashed")
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in data.items()}
    tensors["expert_crashes"] = torch.tensor([len(crashed)])  # episodes, not samples: a split-level count
    return tensors


class DrivingDataModule(TensorDataModule):
    """Batches {"x1": context + decision tokens (B, 18; 7 with the codebook codec), "cond": frames
    (B, 64, 64, 3) uint8, "fixed": (B, 18) bool, True on the context}. Splits are generated once per
    setting and cached as safetensors (written to a temporary name and renamed).

    Args:
        envs: the scenarios, from ENV_IDS.
        episodes: expert episodes per scenario in each split, e.g. {"train": 150, "test": 25}; an
            optional "val" split (seeds from 200,000) is for choosing settings (the ablations), never
            trained on or reported as the test figure.
        waypoint_codec: ``grid`` (coordinate slots) or ``codebook`` (one path token), driving_codec.TEMPLATES.
        balance: train rows are drawn with probability proportional to count(meta-action) ** -balance
            (0 = as logged, 1 = every (lateral, longitudinal) pair equally often); most samples keep
            the lane and speed.
        workers: processes generating episodes (None: one per core).
        aggregated: safetensors files of planner-reached states labelled by the expert
            (models/vilad/aggregation.py), added to the train split.
        mix: the share of train draws that come from the aggregated rows, when there are any (each part
            balanced on its own by ``balance``).
    """

    card = DataCard("highway-env-expert",
                    "scenes simulated offline with highway-env, driven by its rule-based IDM / MOBIL expert",
                    "MIT (highway-env)")

    def __init__(self, envs: tuple[str, ...] = ENVS, episodes: dict | None = None, balance: float = 0.5,
                 cache_dir: str = ".cache/driving", batch_size: int = 64, seed: int = 0, workers: int | None = None,
                 waypoint_codec: str = "grid", debug: bool = False, aggregated: list[str] | None = None,
                 mix: float = 0.5):
        super().__init__(batch_size, seed, debug)
        if not 0.0 <= float(mix) <= 1.0:
            raise ValueError(f"mix={mix}: the aggregated rows' share of draws must lie in [0, 1]")
        self.aggregated, self.mix = [str(a) for a in aggregated or []], float(mix)
        self.envs = tuple(envs)
        for env in self.envs:
            if env not in ENV_IDS:
                raise ValueError(f"envs: {env!r} is unknown; choose from {list(ENV_IDS)}")
        self.episodes = dict(episodes or {"train": 150, "test": 25})
        if not {"train", "test"} <= set(self.episodes) <= set(SEED0):
            raise ValueError(f"episodes needs the splits train and test (and may have val); got {sorted(self.episodes)}")
        template(waypoint_codec)  # refuses an unknown codec by name
        self.waypoint_codec = waypoint_codec
        if debug:  # debug=fast: one episode per scenario and split, cached under their own names
            self.episodes = {k: min(v, 1) for k, v in self.episodes.items()}
        self.balance, self.cache_dir, self.workers = float(balance), Path(cache_dir), workers

    def split_path(self, split: str) -> Path:
        envs = "-".join(self.envs)
        return self.cache_dir / f"v{DATA_VERSION}-{envs}" / f"{split}_{self.episodes[split]}.safetensors"

    def load_split(self, split: str) -> dict[str, torch.Tensor]:
        path = self.split_path(split)

        def build() -> dict[str, torch.Tensor]:
            start = time.perf_counter()
            data = make_split(self.envs, self.episodes[split], SEED0[split], self.workers)
            path.with_suffix(".json").write_text(json.dumps({"samples": len(data["step"]),
                                                             "seconds": round(time.perf_counter() - start, 1)}))
            return data

        return cached_tensors(path, build)

    def setup(self, stage: str | None = None) -> None:
        if self.data:
            return
        self.raw: dict[str, dict[str, torch.Tensor]] = {}
        for split in ("train", "test"):
            raw = self.load_split(split)
            if split == "train" and self.aggregated:
                raw = self.with_aggregated(raw)
            decision = raw["decision"] if self.waypoint_codec == "grid" else torch.from_numpy(encode_decision(
                raw["lateral"].numpy(), raw["longitudinal"].numpy(), raw["waypoints"].numpy(), self.waypoint_codec))
            x1 = torch.cat([raw["context"], decision], 1)
            fixed = torch.zeros_like(x1, dtype=torch.bool)
            fixed[:, :CONTEXT_LEN] = True
            self.data[split] = {"x1": x1, "cond": raw["frames"], "fixed": fixed}
            self.raw[split] = raw

    def split(self, name: str) -> dict[str, torch.Tensor]:
        """A split's raw arrays: frames, context, decision, waypoints, labels, neighbours, env, episode, step."""
        self.setup()
        return self.raw[name]

    def with_aggregated(self, raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The train split with the aggregated files' rows after its own; ``source`` 0 / 1 marks them."""
        parts = [raw] + [load_file(path) for path in self.aggregated]
        keys = [k for k in raw if k not in ("expert_crashes",)]
        for path, part in zip(self.aggregated, parts[1:]):
            if set(keys) - set(part):
                raise ValueError(f"aggregated file {path} lacks {sorted(set(keys) - set(part))}")
        out = {k: torch.cat([part[k] for part in parts]) for k in keys}
        out["source"] = torch.cat([torch.zeros(len(raw["step"]), dtype=torch.long)]
                                  + [torch.ones(len(part["step"]), dtype=torch.long) for part in parts[1:]])
        out["expert_crashes"] = raw["expert_crashes"]
        return out

    def draw_weights(self) -> np.ndarray:
        raw = self.split("train")
        pair = (raw["lateral"] * len(LONGITUDINAL) + raw["longitudinal"]).numpy()
        source = raw["source"].numpy() if "source" in raw else np.zeros(len(pair), np.int64)
        weights = np.zeros(len(pair))
        for part, share in ((0, 1.0 - self.mix), (1, self.mix)) if source.any() else ((0, 1.0),):
            rows = source == part
            counts = np.bincount(pair[rows], minlength=len(LATERAL) * len(LONGITUDINAL))
            w = counts[pair[rows]].astype(np.float64) ** -self.balance
            weights[rows] = share * w / w.sum()
        return weights / weights.sum()

    def batch_sampler(self, num_rows: int, start_step: int, rank: int, world_size: int) -> StepBatchSampler:
        return WeightedBatchSampler(self.draw_weights(), self.batch_size, self.seed, start_step, rank, world_size)

    def stats(self) -> dict:
        out = {}
        for name in ("train", "test"):
            raw = self.split(name)
            out[name] = {"samples": len(raw["step"]), "episodes": len(set(zip(raw["env"].tolist(), raw["episode"].tolist()))),
                         "expert_crashed_episodes": int(raw["expert_crashes"][0]),
                         "per_env": {env: int((raw["env"] == i).sum()) for i, env in enumerate(ENVS)},
                         "lateral": {c: int((raw["lateral"] == i).sum()) for i, c in enumerate(LATERAL)},
                         "longitudinal": {c: int((raw["longitudinal"] == i).sum()) for i, c in enumerate(LONGITUDINAL)},
                         "nav": {c: int((raw["context"][:, 3] == OFFSETS["nav"] + i).sum()) for i, c in enumerate(NAVS)}}
        return out


class WeightedBatchSampler(StepBatchSampler):
    """Endless batches drawn with replacement by row weight; batch s depends only on (seed, s, rank)."""

    def __init__(self, weights: np.ndarray, batch_size: int, seed: int, start_step: int = 0, rank: int = 0,
                 world_size: int = 1):
        super().__init__(len(weights), batch_size, seed, start_step, rank, world_size)
        self.weights = weights

    def batch(self, step: int) -> list[int]:
        rng = np.random.default_rng([self.seed, step, self.rank, self.world_size])
        return rng.choice(self.num_windows, self.batch_size, p=self.weights).tolist()


def fit_paths(codes: int = PATH_CODES, seed: int = 0, save: bool = True) -> dict:
    """The codebook codec's paths: k-means over the train split's expert paths (150 episodes per
    scenario), written to driving_codec.PATHS_FILE when ``save``; returns the codec's floor, the error
    of each split's paths against their nearest code (ADE, L2 avg at 1 / 2 / 3 s, FDE, metres), and
    the grid codec's beside it."""
    from datamodules.driving_codec import nearest_path, parse_decision

    data = DrivingDataModule()
    train, test = data.load_split("train"), data.load_split("test")
    start = time.perf_counter()
    paths = fit_path_codebook(train["waypoints"].numpy(), codes, seed=seed)
    out = {"codes": codes, "train_paths": len(train["step"]), "fit_seconds": round(time.perf_counter() - start, 1)}
    if save:
        save_file({"paths": paths.contiguous()}, PATHS_FILE)
        out["saved"] = str(PATHS_FILE)

    def floor(decoded: np.ndarray, truth: np.ndarray) -> dict:
        err = np.linalg.norm(decoded - truth, axis=-1)
        return {"ade": round(float(err.mean()), 3), "l2_avg": round(float(err[:, [1, 3, 5]].mean()), 3),
                "fde": round(float(err[:, 5].mean()), 3)}

    for name, split in (("train", train), ("test", test)):
        truth = split["waypoints"].numpy()
        out[f"{name}/codebook"] = floor(paths.numpy()[nearest_path(truth, paths)], truth)
        out[f"{name}/grid"] = floor(np.stack([parse_decision(row).waypoints for row in split["decision"].tolist()]), truth)
    return out


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="python -m datamodules.highway --fit-paths [--sweep 64,256,1024]: "
                                     "remake the codebook codec's paths (datamodules/driving_paths.safetensors) "
                                     "from the train split; --sweep also reports other codebook sizes (not saved)")
    parser.add_argument("--fit-paths", action="store_true", required=True)
    parser.add_argument("--sweep", default="", help="comma-separated codebook sizes to report beside PATH_CODES")
    sizes = sorted({PATH_CODES, *(int(k) for k in parser.parse_args().sweep.split(",") if k)})
    for k in sizes:
        print(json.dumps(fit_paths(k, save=k == PATH_CODES)), flush=True)
