"""ViLaD's benchmark: the masked-diffusion planner against its AR twin and the IDM expert, in one run.

    python recipes/bench.py model=vilad [quick=true] [+kwargs.steps=4] [+kwargs.episodes=50]

- Open loop on the test episodes (evaluate.open_loop): L2, ADE / FDE, meta-action accuracy and F1,
  the parse-failure rate with the template constraint (the shipped default) and without it.
- Closed loop (closed_loop.py) on ``episodes`` test seeds per scenario, the same seeds for all three
  drivers: crash rate with its 95% Wilson interval, distance, speed, lane changes.
- Speed: decisions per second at batch 1 and 32, side by side (the median of ``repeats`` timed runs on
  test frames after a warm-up, with the range; zoo.timing), and each planner's NFE.
``quick=true``: 512 open-loop samples, 5 episodes per scenario, batch-1 timing only on 8 frames.
"""

from __future__ import annotations

import torch

import zoo
from datamodules.driving_codec import ENVS
from models.vilad.closed_loop import closed_loop, pipeline_planner
from models.vilad.evaluate import contexts_of, eval_split, open_loop
from zoo.stats import binomial_interval
from zoo.timing import speedup, time_calls


def decision_timing(pipe, frames, contexts, batch: int, repeats: int, seed: int, **kwargs) -> dict:
    """Seconds of one batch over ``repeats`` calls after one warm-up (zoo.timing: median and range) and
    the decisions per second they give."""
    timing, _ = time_calls(lambda r: pipe(frames[:batch], contexts[:batch],
                                          generator=torch.Generator().manual_seed(seed + r), **kwargs),
                           repeats=repeats, device=pipe.device)
    return {**timing.fields("seconds", digits=5), **timing.rate(batch, "decisions_per_second")}


def with_interval(loop: dict) -> dict:
    """A closed-loop summary with the 95% Wilson interval of its crash rate, overall and per scenario."""
    crashes = round(loop["crash_rate"] * loop["episodes"])
    out = {**loop, "crash_rate_ci95": [round(x, 4) for x in binomial_interval(crashes, loop["episodes"])]}
    if "per_env" in loop:
        out["per_env"] = {env: with_interval(part) for env, part in loop["per_env"].items()}
    return out


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
    loop_ours, loop_theirs, loop_expert = (with_interval(x) for x in (loop_ours, loop_theirs, loop_expert))

    test = eval_split()
    frames, contexts = test["frames"][:32], contexts_of(test["context"][:32])
    speed = {}
    for batch in ([1] if quick else [1, 32]):
        a = decision_timing(ours, frames, contexts, batch, repeats, seed, **kwargs)
        b = decision_timing(theirs, frames, contexts, batch, repeats, seed)
        speed[f"batch_{batch}"] = {**a, **{f"ar_{k}": v for k, v in b.items()}, **speedup("speedup_vs_ar", b, a)}
    nfe_ours = ours(frames[:1], contexts[:1], **kwargs).nfe
    nfe_theirs = theirs(frames[:1], contexts[:1]).nfe

    rows = [("vilad (masked diffusion)", open_ours, loop_ours, nfe_ours),
            ("vilad_ar (autoregressive)", open_theirs, loop_theirs, nfe_theirs),
            ("IDM expert", None, loop_expert, None)]
    print(f"{'planner':28s} {'L2 avg':>7s} {'lat F1':>7s} {'crash':>6s} {'dist m':>7s} {'speed':>6s} {'NFE':>4s}  "
          + "  ".join(f"{env[:12]:>18s}" for env in ENVS))
    for name, o, c, n in rows:
        l2 = f"{o['l2_avg']:7.2f}" if o else f"{'-':>7s}"
        f1 = f"{o['lateral_macro_f1']:7.2f}" if o else f"{'-':>7s}"
        per_env = "  ".join(f"{c['per_env'][env]['crash_rate']:.2f} [{c['per_env'][env]['crash_rate_ci95'][0]:.2f}-"
                            f"{c['per_env'][env]['crash_rate_ci95'][1]:.2f}]" for env in ENVS)
        print(f"{name:28s} {l2} {f1} {c['crash_rate']:6.2f} {c['distance_m']:7.1f} {c['mean_speed']:6.1f} {n or '-':>4}  {per_env}")
    return {"closed_loop_crash_rate": loop_ours["crash_rate"], "expert_crash_rate": loop_expert["crash_rate"],
            "ar_crash_rate": loop_theirs["crash_rate"], "parse_failure_rate": open_ours["parse_failure_rate"],
            "ar_parse_failure_rate": open_theirs["parse_failure_rate"],
            "unconstrained_parse_failure_rate": raw_ours["parse_failure_rate"],
            "ar_unconstrained_parse_failure_rate": raw_theirs["parse_failure_rate"],
            "l2_avg": open_ours["l2_avg"], "ar_l2_avg": open_theirs["l2_avg"],
            "crash_rate_ci95": loop_ours["crash_rate_ci95"], "ar_crash_rate_ci95": loop_theirs["crash_rate_ci95"],
            "expert_crash_rate_ci95": loop_expert["crash_rate_ci95"],
            # both batch sizes side by side: the batch-1 figure alone flatters a one-pass planner
            **{k.replace("speedup_vs_ar", f"speedup_vs_ar_batch_{b}"): v for b in ([1] if quick else [1, 32])
               for k, v in speed[f"batch_{b}"].items() if k.startswith("speedup_vs_ar")},
            "nfe": nfe_ours, "ar_nfe": nfe_theirs,
            "speed": speed, "open_loop": open_ours, "ar_open_loop": open_theirs,
            "closed_loop": loop_ours, "ar_closed_loop": loop_theirs, "expert_closed_loop": loop_expert,
            "episodes_per_env": episodes, "open_loop_samples": open_ours["samples"]}
