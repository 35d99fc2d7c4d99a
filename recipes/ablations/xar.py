"""Ablations of xAR on MNIST latents: the X type, noisy context learning, flow steps per entity, and the
guidance ramp.

    python recipes/ablations/xar.py [--quick] [--stages sampling,partition,defaults] [--out outputs/ablations/xar]

- X type and NCL (stage ``partition``): one model per partition (token, cell 2, cell 4, subsample 2,
  scale, image = the DiT), plus cell 4 with clean teacher forcing, each trained by recipes/train.py
  model=xar for the same ``--train-steps`` (one thread each, ``--parallel`` at a time), then sampled
  at the default settings.
- flow steps per entity, guidance and its ramp (stage ``sampling``): the shipped xar-mnist and its DiT
  (xar_dit-mnist) at 2, 4, 8, 16, 32 flow steps per entity, and at guidance 1, 2, 3, 4 (xar-mnist with
  the ramp on and off); ``--sampling-models`` reruns some of them and keeps the others' earlier rows.
- the sampler's defaults (stage ``defaults``), chosen against ``train_ref`` digits (never the test
  split) for xar-mnist and its DiT alike, over ``--seeds`` seeds: (1) every solver at uniform step
  counts, (2) per-entity step schedules with the solver (1) chose, (3) guidance with and without the
  ramp at the steps (2) chose. The rule, the same for both models: the setting with the fewest network
  calls whose mean cls-FID is within ``--tolerance`` of the model's best. Also reported: the cheapest
  xAR setting no worse than the DiT's chosen one. ``chosen.json`` holds the choices; ``--apply`` writes
  them into the checkpoints' config.json.
Every row of the first two stages is scored by cls-FID, precision, recall and class accuracy (``--samples``
images against the test digits) with NFE and seconds per image at batch 64. Writes ablation.csv and
ablation.png in --out (rows of stages run in earlier calls are kept in rows.jsonl); the last stdout line
is a JSON summary.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

import zoo
from models.image_ar.evaluate import generate, sample_quality

sys.path.insert(0, str(Path(__file__).resolve().parent))  # recipes/ablations, also when imported by path
from common import finish, merged_rows, parse_staged, staged_parser, train  # noqa: E402
from xar_defaults import apply_defaults, choose_defaults  # noqa: E402

STAGES = ("partition", "sampling", "defaults")
PARTITIONS = [("token", 1), ("cell", 2), ("cell", 4), ("subsample", 2), ("scale", 1), ("image", 1)]


@torch.no_grad()
def score(pipe, samples: int, seed: int, classifier, **kwargs) -> dict:
    labels = torch.arange(samples) % 10
    start = time.perf_counter()
    images, tokens, nfe, _ = generate(pipe, labels, 64, torch.Generator().manual_seed(seed), **kwargs)
    seconds = (time.perf_counter() - start) / samples
    return {"nfe": nfe, "ar_steps": pipe.last_sample.ar_steps, "s_per_image_b64": seconds,
            **sample_quality(images, tokens, labels, classifier, None)}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(21, 3.8))
    part = [r for r in rows if r["factor"] == "partition"]
    if part:
        axes[0].bar([str(r["setting"]) for r in part], [r["cls_fid"] for r in part])
        axes[0].set_ylabel("cls-FID (lower is better)")
        axes[0].set_title("X type (equal training steps)")
        axes[0].tick_params(axis="x", rotation=30)
    for model in sorted({r["model"] for r in rows if r["factor"] == "steps"}):
        sel = sorted((r for r in rows if r["factor"] == "steps" and r["model"] == model), key=lambda r: r["setting"])
        axes[1].plot([r["s_per_image_b64"] * 1e3 for r in sel], [r["cls_fid"] for r in sel], marker="o", label=model)
        for r in sel:
            axes[1].annotate(str(r["setting"]), (r["s_per_image_b64"] * 1e3, r["cls_fid"]), fontsize=7)
    for model in sorted({r["model"] for r in rows if r["factor"] == "guidance_scale"}):
        for ramp in (True, False):
            sel = sorted((r for r in rows if r["factor"] == "guidance_scale" and r["model"] == model
                          and r["cfg_ramp"] == ramp), key=lambda r: r["setting"])
            if sel:
                axes[2].plot([r["setting"] for r in sel], [r["cls_fid"] for r in sel], marker="o",
                             label=f"{model}{'' if ramp else ', no ramp'}")
    axes[2].set_xlabel("guidance scale (at the last entity, with the ramp)")
    axes[2].set_ylabel("cls-FID")
    if axes[2].get_legend_handles_labels()[0]:
        axes[2].legend(fontsize=7)
    axes[1].set_xlabel("ms per image at batch 64 (labels: flow steps per entity)")
    axes[1].set_ylabel("cls-FID")
    axes[1].set_yscale("log")
    if axes[1].get_legend_handles_labels()[0]:
        axes[1].legend(fontsize=7)
    for model in sorted({r["model"] for r in rows if r["factor"] == "defaults"}):
        sel = [r for r in rows if r["factor"] == "defaults" and r["model"] == model]
        axes[3].errorbar([r["net_calls"] for r in sel], [r["cls_fid"] for r in sel], fmt="o", label=model, alpha=0.7,
                         yerr=[[r["cls_fid"] - r["cls_fid_min"] for r in sel], [r["cls_fid_max"] - r["cls_fid"] for r in sel]])
    axes[3].set_xlabel("network calls per image (stage defaults)")
    axes[3].set_ylabel("cls-FID vs train_ref (mean, seed range)")
    axes[3].set_xscale("log")
    if axes[3].get_legend_handles_labels()[0]:
        axes[3].legend(fontsize=7)
    fig.suptitle("xAR on MNIST latents")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = staged_parser(__doc__, "xar", STAGES, "fewer samples, settings and steps")
    parser.add_argument("--model", default="xar-mnist")
    parser.add_argument("--dit", default="xar_dit-mnist")
    parser.add_argument("--sampling-models", default=None,
                        help="comma-separated: the models the sampling stage reruns (default: --model and --dit); "
                             "the earlier rows of the others are kept")
    parser.add_argument("--train-steps", type=int, default=None, help="steps of each partition's model (300 quick, 800)")
    parser.add_argument("--samples", type=int, default=None, help="images a row (500 quick, 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=2, help="seeds a setting (stage defaults)")
    parser.add_argument("--tolerance", type=float, default=0.05,
                        help="stage defaults: the cheapest setting within this share of the best cls-FID")
    parser.add_argument("--apply", action="store_true",
                        help="stage defaults: write the chosen settings into the checkpoints' config.json")
    args, stages, out = parse_staged(parser, STAGES)
    samples = args.samples or (500 if args.quick else 1000)
    train_steps = args.train_steps or (300 if args.quick else 800)
    classifier = zoo.load("digit_cnn-mnist").net
    factors = {"partition": ["partition"], "sampling": ["steps", "guidance_scale"], "defaults": ["defaults"]}
    rows = []
    for stage in stages:  # each stage's rows are saved when it ends
        new = []
        if stage == "partition":
            jobs = [(["model=xar", f"model.net.partition={kind}", f"model.net.partition_size={size}"],
                     out / f"{kind}{size}_{train_steps}steps") for kind, size in PARTITIONS]
            jobs.append((["model=xar", "model.objective.noisy_context=false"], out / f"cell4_ncl_off_{train_steps}steps"))
            paths = train(jobs, train_steps, args.max_minutes, args.parallel)
            for (kind, size), path in zip(PARTITIONS + [("cell", 4)], paths):
                meta = json.loads((path / "meta.json").read_text())
                ncl = meta["config"]["objective"]["noisy_context"]
                name = f"{kind}{size if kind in ('cell', 'subsample') else ''}{'' if ncl else ' (NCL off)'}"
                new.append({"factor": "partition", "setting": name, "noisy_context": ncl,
                            "train_seconds": meta.get("train_seconds"), "steps_trained": meta["steps"],
                            **score(zoo.load(path), samples, args.seed, classifier)})
                print(json.dumps(new[-1]), flush=True)
        elif stage == "defaults":
            new, chosen = choose_defaults({"xar": args.model, "dit": args.dit}, args.seeds, args.samples or 1000,
                                          args.tolerance, classifier, args.quick)
            (out / "chosen.json").write_text(json.dumps(chosen, indent=2) + "\n")
            print(json.dumps(chosen), flush=True)
            if args.apply:
                apply_defaults(chosen, {"xar": args.model, "dit": args.dit})
        else:
            step_grid = (2, 4, 8, 16) if args.quick else (2, 4, 8, 16, 32)
            models = args.sampling_models.split(",") if args.sampling_models else [args.model, args.dit]
            path = out / "rows.jsonl"
            old = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
            new += [r for r in old if r["factor"] in factors[stage] and r.get("model") not in models]
            for model in models:
                pipe = zoo.load(model)
                ramp = pipe.pipeline_kwargs["cfg_ramp"]
                for steps in step_grid:  # at the checkpoint's guidance
                    new.append({"factor": "steps", "setting": steps, "model": model, "cfg_ramp": ramp,
                                "guidance_scale": pipe.pipeline_kwargs["guidance_scale"],
                                **score(pipe, samples, args.seed, classifier, steps=steps)})
                    print(json.dumps(new[-1]), flush=True)
                # guidance with and without the ramp (one entity: the ramp changes nothing), at the default steps
                for ramp in ((True, False) if pipe.net.partition.num_entities > 1 else (True,)):
                    for w in (1.0, 2.0, 3.0, 4.0):
                        new.append({"factor": "guidance_scale", "setting": w, "model": model, "cfg_ramp": ramp,
                                    **score(pipe, samples, args.seed, classifier, guidance_scale=w, cfg_ramp=ramp)})
                        print(json.dumps(new[-1]), flush=True)
        rows = merged_rows(out / "rows.jsonl", new, factors[stage])
    finish(rows, out, plot, args.quick, stages)


if __name__ == "__main__":
    main()
