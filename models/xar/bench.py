"""The xar benchmark (recipes/bench.py model=xar): next-X prediction against the DiT of equal size, data
and budget, xAR trained without noisy context, and the zoo's token-level AR model, timed and scored in
one run on one machine.

Rows: real train digits and their autoencoder reconstructions (the floor of cls-FID against the test
split, and the best any model on these latents can reach), then each model at its checkpoint's
defaults (chosen on train_ref digits: recipes/ablate.py model=xar stages=[defaults]), and xAR at
``matched``, its cheapest setting no worse than the DiT's on train_ref. Quality: cls-FID, precision,
recall and class accuracy in the digit classifier's features against the 1,000 test digits
(models/image_kit/metrics.py; not FID), the median over ``seeds`` seeds with the range. Speed: seconds
per image end to end (sampling and decoding) at batch 1 and 64, the median of ``repeats`` timed calls
with the range (zoo.timing), and NFE (every forward pass of the generating network).

Three more xAR rows are timed only (their latents equal the default's, tested): the sampler with a
separate cache pass per finished entity, with guidance as two passes, and without the KV cache. What
each shortcut buys is the speed-up of the default over that row.
"""

from __future__ import annotations

import statistics

import torch

import zoo
from datamodules.digits import digits_split
from models.image_kit.evaluate import generate, sample_quality, seconds_per_image
from models.image_kit.metrics import image_metrics
from zoo.timing import speedup

NCL_OFF = "xar_ncl_off-mnist"  # python recipes/train.py model=xar model.objective.noisy_context=false
# xAR's cheapest setting no worse than the DiT's default on train_ref digits: "xar_no_worse_than_dit" of
# python recipes/ablate.py model=xar stages=[defaults] (models/xar/results/2026-12-07_chosen.json)
MATCHED = {"solver": "euler_maruyama", "steps": [4, 8, 8, 8], "guidance_scale": 2.0, "cfg_ramp": False}
SHORTCUTS = {"xar_separate_cache_pass": {"fuse_cache_pass": False}, "xar_two_guidance_passes": {"cfg_batched": False},
             "xar_no_cache": {"use_cache": False}}
QUALITY = ("cls_fid", "precision", "recall", "class_accuracy")


@torch.no_grad()
def reference_rows(pipe, classifier, num_samples: int, seed: int) -> list[dict]:
    """Real train digits, and the same digits through the autoencoder a latent model decodes with."""
    images, labels = digits_split("mnist5k", "train")
    pick = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:num_samples]
    images, labels = images[pick], labels[pick]
    recon = pipe.vae.decode(pipe.vae.encode(images))
    real = digits_split("mnist5k", "test")[0]
    return [{"method": "real_train_digits", **image_metrics(classifier, real, images, labels)},
            {"method": "autoencoder_reconstructions", **image_metrics(classifier, real, recon, labels)}]


def quality(pipe, classifier, num_samples: int, seeds: list[int], **kwargs) -> dict:
    """Each QUALITY metric as the median over seeds, with its min, max and the per-seed values."""
    labels = torch.arange(num_samples) % 10
    runs = []
    for seed in seeds:
        images, tokens, nfe, _ = generate(pipe, labels, 250, torch.Generator().manual_seed(seed), **kwargs)
        runs.append(sample_quality(images, tokens, labels, classifier, None))
    row = {"nfe": nfe, "seeds": seeds}
    for key in QUALITY:
        values = [r[key] for r in runs]
        row.update({key: statistics.median(values), f"{key}_min": min(values), f"{key}_max": max(values),
                    f"{key}_per_seed": values})
    return row


def speed(pipe, quick: bool, repeats: int, seed: int, **kwargs) -> dict:
    return {**seconds_per_image(pipe, 1, repeats, 10 if quick else 20, seed, name="s_per_image_b1", **kwargs),
            **seconds_per_image(pipe, 64, repeats, 64, seed, name="s_per_image_b64", **kwargs)}


def show(row: dict) -> dict:
    print(" | ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                     if not k.endswith("_per_seed")), flush=True)
    return row


def run(pretrained: str | None = None, baseline: str | None = None, quick: bool = False, repeats: int | None = None,
        seed: int = 0, device: str = "cpu", ncl_off: str | None = None, token_ar: str = "image_ar-mnist",
        matched: dict | None = None, seeds: int | None = None) -> dict:
    """pretrained: the next-X model (xar-mnist); baseline: the DiT (xar_dit-mnist); ncl_off: the same
    xAR trained with clean context (default: xar_ncl_off-mnist where it exists, else the row is left
    out), sampled at xAR's defaults; token_ar: the token AR model; matched: xAR's setting for the
    ``xar_matched`` row (default MATCHED; {} leaves the row out); seeds: quality seeds (3, quick 1);
    repeats: timed calls a speed (5, quick 3)."""
    seeds = list(range(seed, seed + (seeds or (1 if quick else 3))))
    repeats = repeats or (3 if quick else 5)
    matched = MATCHED if matched is None else dict(matched)
    pipes = {"xar": zoo.load(pretrained or "xar-mnist"), "dit": zoo.load(baseline or "xar_dit-mnist"),
             "token_ar": zoo.load(token_ar)}
    if ncl_off is None and NCL_OFF in zoo.list_pretrained():
        ncl_off = NCL_OFF
    if ncl_off:
        pipes["ncl_off"] = zoo.load(ncl_off)
    else:
        print(f"no clean-context model ({NCL_OFF} is not trained yet): ncl_off_clsfid is null", flush=True)
    for pipe in pipes.values():
        pipe.to(device)
    classifier = zoo.load("digit_cnn-mnist").net
    num_samples = 300 if quick else 1000  # quick: under 3 minutes on two cores (cls-FID is biased up at fewer samples)
    xar_defaults = {k: pipes["xar"].pipeline_kwargs[k] for k in pipes["xar"].settings}
    plan = [("xar", pipes["xar"], {}), ("dit", pipes["dit"], {})]
    if matched and matched != xar_defaults:
        plan.append(("xar_matched", pipes["xar"], matched))
    if "ncl_off" in pipes:
        plan.append(("xar_ncl_off", pipes["ncl_off"], xar_defaults))  # the same sampler as xAR's row
    plan.append(("token_ar", pipes["token_ar"], {}))
    rows = reference_rows(pipes["xar"], classifier, num_samples, seed)
    for name, pipe, kwargs in plan:
        rows.append(show({"method": name, "sample_kwargs": kwargs, **quality(pipe, classifier, num_samples, seeds, **kwargs),
                          **speed(pipe, quick, repeats, seed, **kwargs)}))
    for name, switch in SHORTCUTS.items():  # timed only: the same latents as the xar row
        pipes["xar"](class_labels=[0], **switch)
        rows.append(show({"method": name, "sample_kwargs": switch, "nfe": pipes["xar"].last_sample.net_calls,
                          **speed(pipes["xar"], quick, repeats, seed, **switch)}))
    by = {r["method"]: r for r in rows}
    xar, dit = by["xar"], by["dit"]
    summary = {
        "rows": rows, "num_samples": num_samples, "seeds": seeds, "repeats": repeats,
        "clsfid": xar["cls_fid"], "clsfid_range": [xar["cls_fid_min"], xar["cls_fid_max"]],
        "dit_clsfid": dit["cls_fid"], "dit_clsfid_range": [dit["cls_fid_min"], dit["cls_fid_max"]],
        "clsfid_ratio_vs_dit": xar["cls_fid"] / dit["cls_fid"],
        "ncl_off_clsfid": by["xar_ncl_off"]["cls_fid"] if "xar_ncl_off" in by else None,
        "ncl_off_clsfid_range": [by["xar_ncl_off"]["cls_fid_min"], by["xar_ncl_off"]["cls_fid_max"]] if "xar_ncl_off" in by else None,
        "token_ar_clsfid": by["token_ar"]["cls_fid"],
        "class_accuracy": xar["class_accuracy"], "dit_class_accuracy": dit["class_accuracy"],
        "nfe": xar["nfe"], "dit_nfe": dit["nfe"],
        **speedup("speedup_vs_dit", dit, xar, "s_per_image_b1"),
        **speedup("speedup_vs_dit_b64", dit, xar, "s_per_image_b64"),
        **speedup("speedup_vs_token_ar", by["token_ar"], xar, "s_per_image_b1"),
        **speedup("speedup_vs_token_ar_b64", by["token_ar"], xar, "s_per_image_b64"),
    }
    if "xar_matched" in by:
        m = by["xar_matched"]
        summary.update({"matched_clsfid": m["cls_fid"], "matched_clsfid_range": [m["cls_fid_min"], m["cls_fid_max"]],
                        "matched_nfe": m["nfe"], **speedup("matched_speedup_vs_dit", dit, m, "s_per_image_b1"),
                        **speedup("matched_speedup_vs_dit_b64", dit, m, "s_per_image_b64")})
    for name in SHORTCUTS:  # what each shortcut buys: the default against the sampler without it
        summary.update(speedup(f"gain_over_{name}", by[name], xar, "s_per_image_b1"))
        summary.update(speedup(f"gain_over_{name}_b64", by[name], xar, "s_per_image_b64"))
    return summary
