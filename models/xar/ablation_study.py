"""xAR's ablation (``python recipes/ablate.py model=xar``): the X type, noisy context learning, flow
steps per entity, the guidance ramp, and the sampler's defaults.

- partition: one model per partition (token, cell 2, cell 4, subsample 2, scale, image = the DiT),
  plus cell 4 with clean teacher forcing, each trained by recipes/train.py model=xar for the same
  ``train_steps``, then sampled at the default settings.
- sampling: the shipped xar-mnist and its DiT (options ``model``, ``dit``) at 2, 4, 8, 16, 32 flow
  steps per entity, and at guidance 1, 2, 3, 4 (with the ramp on and off where there are entities);
  ``sampling_models`` reruns some of them and keeps the others' earlier rows.
- defaults: chosen against ``train_ref`` digits (never the test split) for both models, over ``seeds``
  seeds (models/xar/sampling_defaults.py: solver, then per-entity schedule, then guidance; the setting
  with the fewest network calls within ``tolerance`` of the best cls-FID). ``chosen.json`` holds the
  choices; ``apply`` writes them into the checkpoints' config.json.
Every row of the first two stages is scored by cls-FID, precision, recall and class accuracy
(``samples`` images against the test digits) with NFE and seconds per image at batch 64.
"""

from __future__ import annotations

import functools
import json

import torch

import zoo
from models.image_kit.evaluate import images_task
from models.xar.sampling_defaults import apply_defaults, choose_defaults
from zoo.ablation import Ablation, AblationRun, Stage, Training, read_rows

PARTITIONS = [("token", 1), ("cell", 2), ("cell", 4), ("subsample", 2), ("scale", 1), ("image", 1)]


def score(run: AblationRun, pipe, **kwargs) -> dict:
    """cls-FID etc. of ``samples`` images (equal classes) against the test digits, NFE, AR steps, and
    seconds per image at batch 64."""
    m = images_task(pipe, torch.Generator().manual_seed(run.options.seed), run.pick("samples", 500, 1000), 64, **kwargs)
    return {**{k: v for k, v in m.items() if k != "sample_kwargs"}, "ar_steps": pipe.last_sample.ar_steps,
            "s_per_image_b64": m["seconds_per_image"]}


def partition(run: AblationRun) -> list[dict]:
    trainings = [Training("partition", f"{kind}{size if kind in ('cell', 'subsample') else ''}", f"{kind}{size}",
                          ("model=xar", f"model.net.partition={kind}", f"model.net.partition_size={size}"),
                          fields={"noisy_context": True}) for kind, size in PARTITIONS]
    trainings.append(Training("partition", "cell4 (NCL off)", "cell4_ncl_off",
                              ("model=xar", "model.objective.noisy_context=false"), fields={"noisy_context": False}))
    return run.compare(trainings, run.pick("train_steps", 300, 800), functools.partial(score, run))


def sampling(run: AblationRun) -> list[dict]:
    models = run.options.sampling_models or [run.options.model, run.options.dit]
    old = read_rows(run.out / "rows.jsonl")  # the other models' earlier rows stay
    rows = [r for r in old if r["factor"] in ("steps", "guidance_scale") and r.get("model") not in models]
    for model in models:
        pipe = zoo.load(model)
        ramp = pipe.pipeline_kwargs["cfg_ramp"]
        for steps in ((2, 4, 8, 16) if run.quick else (2, 4, 8, 16, 32)):  # at the checkpoint's guidance
            rows.append(run.log({"factor": "steps", "setting": steps, "model": model, "cfg_ramp": ramp,
                                 "guidance_scale": pipe.pipeline_kwargs["guidance_scale"],
                                 **score(run, pipe, steps=steps)}))
        # guidance with and without the ramp (one entity: the ramp changes nothing), at the default steps
        for ramp in ((True, False) if pipe.net.partition.num_entities > 1 else (True,)):
            for w in (1.0, 2.0, 3.0, 4.0):
                rows.append(run.log({"factor": "guidance_scale", "setting": w, "model": model, "cfg_ramp": ramp,
                                     "series": f"{model}{'' if ramp else ', no ramp'}",
                                     **score(run, pipe, guidance_scale=w, cfg_ramp=ramp)}))
    return rows


def defaults(run: AblationRun) -> list[dict]:
    models = {"xar": run.options.model, "dit": run.options.dit}
    rows, chosen = choose_defaults(models, run.options.seeds, run.options.samples or 1000, run.options.tolerance,
                                   run.quick)
    (run.out / "chosen.json").write_text(json.dumps(chosen, indent=2) + "\n")
    print(json.dumps(chosen), flush=True)
    if run.options.apply:
        apply_defaults(chosen, models)
    return rows


ABLATION = Ablation(
    title="xAR on MNIST latents (cls-FID, lower is better)",
    stages={"partition": Stage(("partition",), partition), "sampling": Stage(("steps", "guidance_scale"), sampling),
            "defaults": Stage(("defaults",), defaults)},
    metrics=("cls_fid",),
    options={"model": "xar-mnist", "dit": "xar_dit-mnist", "sampling_models": None, "train_steps": None,
             "samples": None, "seed": 0, "seeds": 2, "tolerance": 0.05, "apply": False},
)
