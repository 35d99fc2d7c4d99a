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
from models.image_kit.evaluate import generate, sample_quality
from zoo.ablation import Ablation, AblationRun, Stage

BASE = {"ode_steps": 32, "num_pairs": 20000, "loss_type": "ce"}
FACTORS = {"ode_steps": ((4,), (4, 8)), "num_pairs": ((4000,), (4000, 40000)), "loss_type": (("l2", "ce+l2"),) * 2}


@functools.cache
def judges():
    """The digit classifier (cls-FID) and the teacher (NLL of the samples' tokens)."""
    return zoo.load("digit_cnn-mnist").net, zoo.load("image_ar-mnist").net


def score(run: AblationRun, pipe, **kwargs) -> dict:
    labels = torch.arange(run.options.samples) % 10
    images, tokens, nfe, _ = generate(pipe, labels, 250, torch.Generator().manual_seed(run.options.seed), **kwargs)
    return {"nfe": nfe, **sample_quality(images, tokens, labels, *judges())}


def student_job(setting: dict, steps: int, run: AblationRun) -> tuple[list[str], object]:
    name = f"ode{setting['ode_steps']}-n{setting['num_pairs']}-{setting['loss_type']}-steps{steps}"
    return (["model=distilled_decoding", "ema_decay=null", f"trainer.val_check_interval={steps}",
             f"data.ode_steps={setting['ode_steps']}", f"data.num_pairs={setting['num_pairs']}",
             f"model.objective.loss_type={setting['loss_type']}"], run.out / "students" / name)


def students(run: AblationRun) -> list[dict]:
    """The base setting's student appears under every factor (it is each one's centre point)."""
    steps = run.pick("train_steps", 1000, 2000)
    grid = [dict(BASE)] + [{**BASE, factor: v} for factor, values in FACTORS.items() for v in values[0 if run.quick else 1]]
    paths = run.train([student_job(s, steps, run) for s in grid], steps)
    scores = {}
    rows = []
    for factor in FACTORS:
        for setting, path in zip(grid, paths):
            if any(setting[k] != v for k, v in BASE.items() if k != factor):
                continue
            for sample_steps in (1, 2):
                key = (str(path), sample_steps)
                if key not in scores:
                    scores[key] = score(run, zoo.load(path), steps=sample_steps)
                rows.append(run.log({"factor": factor, "setting": setting[factor], "model": f"{sample_steps} step",
                                     **setting, "steps": sample_steps, **scores[key]}))
    return rows


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
