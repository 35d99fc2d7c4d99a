"""ViLaD's benchmark: the masked-diffusion planner against its AR twin and the IDM expert, in one run.

    python recipes/bench.py model=vilad [quick=true] [+kwargs.steps=4] [+kwargs.episodes=50]

- Open loop on the test episodes (evaluate.open_loop): L2, ADE / FDE, meta-action accuracy and F1,
  the parse-failure rate with the template constraint (the shipped default) and without it.
- Closed loop (closed_loop.py) on ``episodes`` test seeds per scenario, the same seeds for all three
  drivers: crash rate, distance, speed, lane changes.
- Speed: decisions per second at batch 1 and 32 (the median of ``repeats`` timed runs on test frames,
  after a warm-up), and each planner's NFE.
``quick=true``: 512 open-loop samples, 5 episodes per scenario, batch-1 timing only on 8 frames.
"""

from __future__ import annotations

import statistics
import time

import torch

import zoo
from datamodules.driving_codec import ENVS
from models.vilad.closed_loop import closed_loop, pipeline_planner
from models.vilad.evaluate import contexts_of, eval_split, open_loop


def decisions_per_second(pipe, frames, contexts, batch: int, repeats: int, seed: int, **kwargs) -> float:
    """Median decisions per second over ``repeats`` runs of one batch (after one warm-up)."""
    rates = []
    for r in range(repeats + 1):
        start = time.perf_counter()
        pipe(frames[:batch], contexts[:batch], generator=torch.Generator().manual_seed(seed + r), **kwargs)
        if r:
            rates.append(batch / (time.perf_counter() - start))
    return statistics.median(rates)


def run(pretrained: str | None = None, baseline: str | None = None, quick: bool = False, repeats: int = 3,
        seed: int = 0, device: str = "cpu", steps: int | None = None, episodes: int | None = None) -> dict:
    """pretrained: the masked-diffusion planner (vilad-highway); baseline: its AR twin (vilad_ar-highway);
    steps: the masked planner's passes (default: its checkpoint's); episodes per scenario (50, quick 5)."""
    ours = zoo.load(pretrained or "vilad-highway").to(device)
    theirs = zoo.load(baseline or "vilad_ar-highway").to(device)
    kwargs = {} if steps is None else {"steps": steps}
    max_samples = 512 if quick else None
    episodes = episodes or (5 if quick else 50)
    g = lambda: torch.Generator().manual_seed(seed)  # noqa: E731  (each measurement starts from the same draw)
    open_ours = open_loop(ours, generator=g(), max_samples=max_samples, **kwargs)
    open_theirs = open_loop(theirs, generator=g(), max_samples=max_samples)
    raw_ours = open_loop(ours, generator=g(), max_samples=max_samples, constrained=False, **kwargs)
    raw_theirs = open_loop(theirs, generator=g(), max_samples=max_samples, constrained=False)
    loop_ours = closed_loop(pipeline_planner(ours, g(), **kwargs), ENVS, episodes)
    loop_theirs = closed_loop(pipeline_planner(theirs, g()), ENVS, episodes)
    loop_expert = closed_loop(None, ENVS, episodes)

    test = eval_split()
    frames, contexts = test["frames"][:32], contexts_of(test["context"][:32])
    speed = {}
    for batch in ([1] if quick else [1, 32]):
        a = decisions_per_second(ours, frames, contexts, batch, repeats, seed, **kwargs)
        b = decisions_per_second(theirs, frames, contexts, batch, repeats, seed)
        speed[f"batch_{batch}"] = {"decisions_per_second": a, "ar_decisions_per_second": b, "speedup_vs_ar": a / b}
    nfe_ours = ours(frames[:1], contexts[:1], **kwargs).nfe
    nfe_theirs = theirs(frames[:1], contexts[:1]).nfe

    rows = [("vilad (masked diffusion)", open_ours, loop_ours, nfe_ours),
            ("vilad_ar (autoregressive)", open_theirs, loop_theirs, nfe_theirs),
            ("IDM expert", None, loop_expert, None)]
    print(f"{'planner':28s} {'L2 avg':>7s} {'lat F1':>7s} {'crash':>6s} {'dist m':>7s} {'speed':>6s} {'NFE':>4s}")
    for name, o, c, n in rows:
        l2 = f"{o['l2_avg']:7.2f}" if o else f"{'-':>7s}"
        f1 = f"{o['lateral_macro_f1']:7.2f}" if o else f"{'-':>7s}"
        print(f"{name:28s} {l2} {f1} {c['crash_rate']:6.2f} {c['distance_m']:7.1f} {c['mean_speed']:6.1f} {n or '-':>4}")
    return {"closed_loop_crash_rate": loop_ours["crash_rate"], "expert_crash_rate": loop_expert["crash_rate"],
            "ar_crash_rate": loop_theirs["crash_rate"], "parse_failure_rate": open_ours["parse_failure_rate"],
            "ar_parse_failure_rate": open_theirs["parse_failure_rate"],
            "unconstrained_parse_failure_rate": raw_ours["parse_failure_rate"],
            "ar_unconstrained_parse_failure_rate": raw_theirs["parse_failure_rate"],
            "l2_avg": open_ours["l2_avg"], "ar_l2_avg": open_theirs["l2_avg"],
            "speedup_vs_ar": speed["batch_1"]["speedup_vs_ar"], "nfe": nfe_ours, "ar_nfe": nfe_theirs,
            "speed": speed, "open_loop": open_ours, "ar_open_loop": open_theirs,
            "closed_loop": loop_ours, "ar_closed_loop": loop_theirs, "expert_closed_loop": loop_expert,
            "episodes_per_env": episodes, "open_loop_samples": open_ours["samples"]}
