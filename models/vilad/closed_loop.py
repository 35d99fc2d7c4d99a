"""Closed loop: the planner drives the simulator (which the paper, on logged nuScenes, cannot do).

Every decision step (2 Hz) the planner sees the current frame and context and its decision drives
the ego, an ``MDPVehicle`` under the env's ``DiscreteMetaAction``:

- lateral: ``left`` / ``right`` -> the env's LANE_LEFT / LANE_RIGHT action, else IDLE (the
  intersection scenario has no lateral actions: always IDLE, the route is followed on its own);
- longitudinal: the ego's target speed is set to the plan's speed at 1 s (the distance from the
  0.5 s to the 1.5 s waypoint, per second) and tracked by the vehicle's own speed controller. The
  env's FASTER / SLOWER actions move between three fixed speeds, too coarse to follow traffic.

The expert runs through the same loop with the ego replaced by its IDM / MOBIL vehicle (its own
controller at every simulator tick). Episodes of one scenario run side by side so the planner gets
them as one batch; the scene of each only depends on its seed.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from datamodules.driving_codec import DT, Context, Decision
from datamodules.highway import EPISODE_STEPS, TEST_SEED0, lane_shift, make_env, navigation, observe, use_expert

Planner = Callable[[np.ndarray, list[Context]], list[Decision | None]]
MAX_SPEED = 40.0


def planned_speed(decision: Decision) -> float:
    """The plan's speed at 1 s: between its 0.5 s and 1.5 s waypoints, m/s."""
    return float(np.clip(np.linalg.norm(decision.waypoints[2] - decision.waypoints[0]) / (2 * DT), 0.0, MAX_SPEED))


def apply(handle, decision: Decision | None) -> int:
    """Set the ego's target speed from the plan and return the env action for its lateral decision
    (IDLE for an unparseable decision: the ego keeps its lane and speed)."""
    actions = handle.unwrapped.action_type.actions_indexes
    if decision is None:
        return actions["IDLE"]
    handle.unwrapped.vehicle.target_speed = planned_speed(decision)
    name = {"left": "LANE_LEFT", "right": "LANE_RIGHT"}.get(decision.lateral, "IDLE")
    return actions.get(name, actions["IDLE"])


def drive(env: str, seeds: list[int], planner: Planner | None, record: bool = False,
          label: Callable | None = None) -> list[dict]:
    """One episode per seed, side by side; ``planner`` None drives the IDM expert. Per episode:
    crashed, steps, distance (m), mean speed (m/s), lane changes, and the planner's seconds; with
    ``record`` also every step's frame, context and decision (None for the expert); with ``label``
    also ``label(env, step)`` of every step's state before it is driven (models/vilad/aggregation.py)."""
    handles = [make_env(env, seed) for seed in seeds]
    if planner is None:
        for handle in handles:
            use_expert(handle)
    navs = [navigation(h) for h in handles]
    results = [{"seed": s, "crashed": False, "steps": 0, "distance": 0.0, "speeds": [], "lane_changes": 0,
                "planner_seconds": 0.0} for s in seeds]
    if record:
        for result in results:
            result.update(frames=[], contexts=[], decisions=[])
    active = list(range(len(handles)))
    for _ in range(EPISODE_STEPS[env]):
        if not active:
            break
        observed = [observe(handles[i], env, navs[i]) for i in active]
        if planner is not None:
            start = time.perf_counter()
            decisions = planner(np.stack([f for f, _ in observed]), [c for _, c in observed])
            seconds = (time.perf_counter() - start) / len(active)
        still = []
        for j, i in enumerate(active):
            sim, result = handles[i].unwrapped, results[i]
            ego = sim.vehicle
            action = sim.action_type.actions_indexes["IDLE"]
            if planner is not None:
                action = apply(handles[i], decisions[j])
                result["planner_seconds"] += seconds
            if record:
                result["frames"].append(observed[j][0])
                result["contexts"].append(observed[j][1])
                result["decisions"].append(decisions[j] if planner is not None else None)
            if label is not None:
                result.setdefault("labels", []).append(label(sim, result["steps"]))
            before, position = ego.target_lane_index, ego.position.copy()
            terminated = sim.step(action)[2]
            result["steps"] += 1
            result["distance"] += float(np.linalg.norm(ego.position - position))
            result["speeds"].append(float(ego.speed))
            result["lane_changes"] += abs(lane_shift(before, ego.target_lane_index))
            if ego.crashed:
                result["crashed"] = True
            elif not terminated:
                still.append(i)
        active = still
    for handle in handles:
        handle.close()
    for result in results:
        result["mean_speed"] = float(np.mean(result.pop("speeds"))) if result["steps"] else 0.0
    return results


def summary(results: list[dict]) -> dict:
    """Crash rate, mean distance / speed / lane changes per episode, planner ms per decision."""
    steps = sum(r["steps"] for r in results)
    return {"episodes": len(results), "crash_rate": float(np.mean([r["crashed"] for r in results])),
            "distance_m": float(np.mean([r["distance"] for r in results])),
            "mean_speed": float(np.mean([r["mean_speed"] for r in results])),
            "lane_changes": float(np.mean([r["lane_changes"] for r in results])),
            "planner_ms_per_decision": 1000 * sum(r["planner_seconds"] for r in results) / max(steps, 1)}


def closed_loop(planner: Planner | None, envs: tuple[str, ...], episodes: int, seed0: int = TEST_SEED0) -> dict:
    """``episodes`` test episodes per scenario (seeds seed0 ..): the summary over all and per scenario."""
    per_env, everything = {}, []
    for env in envs:
        results = drive(env, list(range(seed0, seed0 + episodes)), planner)
        per_env[env] = summary(results)
        everything += results
    return {**summary(everything), "per_env": per_env}


def pipeline_planner(pipe, generator=None, **sample_kwargs) -> Planner:
    """A pipeline as a planner: frames and contexts in, its decisions out."""
    def plan(frames: np.ndarray, contexts: list[Context]) -> list[Decision | None]:
        return pipe(frames, contexts, generator=generator, **sample_kwargs).decisions
    return plan
