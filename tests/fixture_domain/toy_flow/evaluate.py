"""The toy domain's task, benchmark and ablation."""

from __future__ import annotations

import time
from pathlib import Path

import torch

import zoo
from toy_flow.network import points, spread
from zoo.ablation import Ablation, AblationRun, Stage, Training


def points_task(pipe, generator=None, num_samples: int = 256, steps: int | None = None) -> dict:
    """How far the samples lie from their classes' centres, in units of the data's own spread (1: as the data)."""
    cond = points(num_samples, 1)["cond"]
    out = pipe(cond=cond.tolist(), steps=steps, generator=generator)
    return {"relative_spread": spread(out.points, cond), "nfe": out.nfe}


def bench(pretrained=None, baseline=None, quick=False, repeats=3, seed=0, device="cpu", steps: int = 8) -> dict:
    pipe = zoo.load(pretrained or "toy_flow-points")
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        pipe(batch_size=64, steps=steps, generator=torch.Generator().manual_seed(seed))
        seconds.append(time.perf_counter() - start)
    return {"rows": [{"steps": steps, "seconds_b64": sorted(seconds)[len(seconds) // 2]}]}


def sampling(run: AblationRun) -> list[dict]:
    pipe = zoo.load(run.options.model)
    return [run.log({"factor": "steps", "setting": s, **points_task(pipe, torch.Generator().manual_seed(0), steps=s)})
            for s in (1, 4)]


def width(run: AblationRun) -> list[dict]:
    configs = f"hydra.searchpath=[file://{Path(__file__).parent / 'configs'}]"  # the domain's own config folder
    trainings = [Training("width", w, f"width{w}", (configs, "model=toy_flow", f"++model.net.width={w}"))
                 for w in (8, 16)]
    return run.compare(trainings, 2, lambda pipe: points_task(pipe, torch.Generator().manual_seed(0)))


ABLATION = Ablation(title="toy flow", stages={"sampling": Stage(("steps",), sampling), "width": Stage(("width",), width)},
                    metrics=("relative_spread",), options={"model": None})
