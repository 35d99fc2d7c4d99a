"""How xar-mnist's and its DiT's sampling defaults are chosen (``recipes/ablate.py model=xar stages=[defaults]``).

Every setting is scored against ``train_ref`` digits (datamodules/digits.py: train digits, so the test
split stays unseen until the report), over several seeds. Three rounds, each starting from the last
one's choice:

1. solver: every solver at uniform step counts, guidance 2 without the ramp (the checkpoints' training
   settings);
2. schedule: per-entity step counts (xAR only: a DiT has one entity) with the solver of round 1;
3. guidance: scales with and without the ramp (xAR only: the ramp needs entities) at round 2's steps.

The rule, the same for both models and every round: among the model's rows so far, the setting with the
fewest network calls whose mean cls-FID is within ``tolerance`` of the best mean. Calls rather than
seconds: they do not depend on what else the machine runs.
"""

from __future__ import annotations

import json
import statistics

import torch

import zoo
from models.image_kit.evaluate import images_task
from zoo.pretrained import resolve

SOLVERS = ("euler", "unipc", "dpmpp_2m", "euler_maruyama")
STEPS = {"xar": (2, 4, 8, 16), "dit": (4, 8, 16, 32)}
QUICK_STEPS = {"xar": (4, 8), "dit": (8, 16)}
# front-loaded (the first entity has no context) and back-loaded (the last ones carry the guidance ramp's weight)
SCHEDULES = ([8, 4, 4, 4], [8, 4, 2, 2], [16, 8, 4, 4], [4, 4, 4, 8], [2, 4, 4, 8], [4, 4, 8, 8], [4, 8, 8, 8])
GUIDANCE = (1.5, 2.0, 3.0, 4.0)
BASE = {"guidance_scale": 2.0, "cfg_ramp": False}


def score_setting(pipe, model: str, setting: dict, seeds: int, samples: int) -> dict:
    """One row: the setting, its network calls, and cls-FID etc. as the mean over seeds (with min, max)."""
    runs = []
    for seed in range(seeds):
        m = images_task(pipe, torch.Generator().manual_seed(seed), samples, 250, reference="train_ref", **setting)
        runs.append({**m, "net_calls": pipe.last_sample.net_calls, "s_per_image_b250": m["seconds_per_image"]})
    row = {"factor": "defaults", "model": model, "setting": json.dumps(setting, sort_keys=True), **setting,
           "steps": json.dumps(setting["steps"]), "seeds": seeds, "samples": samples,
           "nfe": runs[0]["nfe"], "net_calls": runs[0]["net_calls"], "reference": "train_ref"}
    for key in ("cls_fid", "precision", "recall", "class_accuracy", "s_per_image_b250"):
        values = [r[key] for r in runs]
        row[key], row[f"{key}_min"], row[f"{key}_max"] = statistics.mean(values), min(values), max(values)
    print(json.dumps(row), flush=True)
    return row


def cheapest_within(rows: list[dict], tolerance: float) -> dict:
    """The row with the fewest network calls whose mean cls-FID is within ``tolerance`` of the best."""
    best = min(r["cls_fid"] for r in rows)
    return min((r for r in rows if r["cls_fid"] <= best * (1 + tolerance)), key=lambda r: (r["net_calls"], r["cls_fid"]))


def setting_of(row: dict) -> dict:
    return json.loads(row["setting"])


def choose_defaults(models: dict[str, str], seeds: int, samples: int, tolerance: float,
                    quick: bool = False) -> tuple[list[dict], dict]:
    """models: {"xar": checkpoint, "dit": checkpoint} -> (rows, chosen), chosen holding each model's
    setting and scores, and the cheapest xAR setting no worse than the DiT's choice."""
    rows, chosen = [], {}
    for name, checkpoint in models.items():
        pipe = zoo.load(checkpoint)
        entities = pipe.net.partition.num_entities
        mine = [score_setting(pipe, name, {"solver": solver, "steps": steps, **BASE}, seeds, samples)
                for solver in (SOLVERS[:2] if quick else SOLVERS) for steps in (QUICK_STEPS if quick else STEPS)[name]]
        pick = setting_of(cheapest_within(mine, tolerance))
        if entities > 1:
            schedules = [s for s in SCHEDULES if len(s) == entities][:2 if quick else None]
            mine += [score_setting(pipe, name, {**pick, "steps": s}, seeds, samples) for s in schedules]
            pick = setting_of(cheapest_within(mine, tolerance))
        for ramp in ((False, True) if entities > 1 else (False,)):
            for w in (GUIDANCE[1:3] if quick else GUIDANCE):
                if {**pick, "guidance_scale": w, "cfg_ramp": ramp} != pick:
                    mine.append(score_setting(pipe, name, {**pick, "guidance_scale": w, "cfg_ramp": ramp},
                                              seeds, samples))
        best = cheapest_within(mine, tolerance)
        chosen[name] = {"checkpoint": checkpoint, "setting": setting_of(best), "net_calls": best["net_calls"],
                        "cls_fid_train_ref": best["cls_fid"], "best_cls_fid_train_ref": min(r["cls_fid"] for r in mine)}
        rows += mine
    if {"xar", "dit"} <= set(chosen):
        no_worse = [r for r in rows if r["model"] == "xar" and r["cls_fid"] <= chosen["dit"]["cls_fid_train_ref"]]
        match = min(no_worse, key=lambda r: (r["net_calls"], r["cls_fid"])) if no_worse else None
        chosen["xar_no_worse_than_dit"] = None if match is None else {
            "setting": setting_of(match), "net_calls": match["net_calls"], "cls_fid_train_ref": match["cls_fid"]}
    chosen["rule"] = {"reference": "train_ref", "seeds": seeds, "samples": samples, "tolerance": tolerance}
    return rows, chosen


def apply_defaults(chosen: dict, models: dict[str, str]) -> None:
    """Writes each model's chosen setting into its checkpoint's config.json (pipeline_kwargs)."""
    for name, checkpoint in models.items():
        path = resolve(checkpoint) / "config.json"
        config = json.loads(path.read_text())
        config["pipeline_kwargs"].update(chosen[name]["setting"])
        path.write_text(json.dumps(config, indent=2) + "\n")
        print(f"{path}: pipeline_kwargs <- {chosen[name]['setting']}", flush=True)
