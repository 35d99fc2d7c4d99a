"""Distilled Decoding's ablation (``python recipes/ablate.py model=distilled_decoding``): the ODE steps
used to make the pairs, the number of pairs and the student's loss, one factor at a time around the
shipped setting, each student sampled at 1 and 2 steps and scored by cls-FID against the test digits;
the teacher's row is the distribution every student distils.

Every setting trains a student with recipes/train.py from the shipped teacher's pairs (``train_steps``,
the same for all, without EMA: at these budgets an EMA of 0.999 would still weigh the initial
weights). Pairs are cached per (ode_steps, shard) in .cache/dd_pairs, so settings share what they can.
"""

from __future__ import annotations

import functools

import torch

import zoo
from models.distilled_decoding.pairs import teacher_settings
from models.image_kit.evaluate import images_task
from zoo.ablation import Ablation, AblationRun, Stage, Training

BASE = {"ode_steps": 32, "num_pairs": 20000, "loss_type": "ce"}
FACTORS = {"ode_steps": ((4,), (4, 8)), "num_pairs": ((4000,), (4000, 40000)), "loss_type": (("l2", "ce+l2"),) * 2}


def score(run: AblationRun, pipe, **kwargs) -> dict:
    """cls-FID etc. of ``samples`` images (equal classes) against the test digits, teacher NLL, NFE."""
    m = images_task(pipe, torch.Generator().manual_seed(run.options.seed), run.options.samples, **kwargs)
    return {k: v for k, v in m.items() if k != "sample_kwargs"}  # the row holds the settings already


def students(run: AblationRun) -> list[dict]:
    """The base setting's student appears under every factor (it is each one's centre point), each
    student sampled at 1 and 2 steps."""
    steps = run.pick("train_steps", 1000, 2000)
    grid = [(factor, {**BASE, factor: v}) for factor, values in FACTORS.items()
            for v in (BASE[factor], *values[0 if run.quick else 1])]
    trainings = [Training(factor, s[factor], f"ode{s['ode_steps']}-n{s['num_pairs']}-{s['loss_type']}",
                          ("model=distilled_decoding", "ema_decay=null", f"trainer.val_check_interval={steps}",
                           f"data.ode_steps={s['ode_steps']}", f"data.num_pairs={s['num_pairs']}",
                           f"model.objective.loss_type={s['loss_type']}"),
                          {"steps": n}, {"model": f"{n} step", **s, "steps": n})
                 for factor, s in grid for n in (1, 2)]
    return run.compare(trainings, steps, functools.partial(score, run))


def teacher(run: AblationRun) -> list[dict]:
    """The teacher at the guidance its pairs were made with (the shipped student's record)."""
    pipe = zoo.load("image_ar-mnist")
    settings = teacher_settings(zoo.load("distilled_decoding-mnist").meta["data"])
    return [run.log({"factor": "teacher", "setting": "image_ar-mnist", "steps": pipe.net.seq_len, **settings,
                     **score(run, pipe, **settings)})]


ABLATION = Ablation(
    title="Distilled Decoding on MNIST: one factor at a time (cls-FID, lower is better)",
    stages={"students": Stage(tuple(FACTORS), students), "teacher": Stage(("teacher",), teacher)},
    metrics=("cls_fid",),
    options={"train_steps": None, "samples": 1000, "seed": 0},
)
