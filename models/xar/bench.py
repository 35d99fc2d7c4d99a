"""The xar benchmark (recipes/bench.py model=xar): next-X prediction against the DiT of equal size, data
and budget, xAR trained without noisy context, and the zoo's token-level AR model, timed and scored in
one run on one machine.

Rows: real train digits and their autoencoder reconstructions (the floor of cls-FID against the test
split, and the best any model on these latents can reach), then each model. Quality: cls-FID,
precision, recall and class accuracy in the digit classifier's features against the 1,000 test digits
(models/image_ar/metrics.py; not FID). Speed: seconds per image end to end (sampling and decoding) at
batch 1 (median of ``repeats``) and 64, and NFE (AR steps x flow steps for the latent models, one per
token for the token AR model).
"""

from __future__ import annotations

import torch

import zoo
from datamodules.digits import digits_split
from models.image_ar.evaluate import generate, sample_quality, seconds_per_image
from zoo.timing import speedup
from models.image_ar.metrics import image_metrics

NCL_OFF = "xar_ncl_off-mnist"  # python recipes/train.py model=xar model.objective.noisy_context=false


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


def measure(name: str, pipe, classifier, num_samples: int, quick: bool, repeats: int, seed: int, **kwargs) -> dict:
    labels = torch.arange(num_samples) % 10
    images, tokens, nfe, _ = generate(pipe, labels, 250, torch.Generator().manual_seed(seed), **kwargs)
    row = {"method": name, "nfe": nfe, "sample_kwargs": kwargs,
           **seconds_per_image(pipe, 1, repeats, 10 if quick else 20, seed, name="s_per_image_b1", **kwargs),
           **seconds_per_image(pipe, 64, repeats, 64, seed, name="s_per_image_b64", **kwargs),
           **sample_quality(images, tokens, labels, classifier, None)}
    if getattr(pipe, "last_sample", None) is not None:
        row["ar_steps"] = pipe.last_sample.ar_steps
    print(" | ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    return row


def run(pretrained: str | None = None, baseline: str | None = None, quick: bool = False, repeats: int = 3,
        seed: int = 0, device: str = "cpu", ncl_off: str | None = None, token_ar: str = "image_ar-mnist",
        steps: int | None = None, dit_steps: int | None = None) -> dict:
    """pretrained: the next-X model (xar-mnist); baseline: the DiT (xar_dit-mnist); ncl_off: the same
    xAR trained with clean context (default: xar_ncl_off-mnist where it exists, else the row is left out);
    token_ar: the token AR model. steps / dit_steps: flow steps per
    entity of xAR / the DiT (default: each checkpoint's own)."""
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
    xar_kwargs = {} if steps is None else {"steps": steps}
    rows = reference_rows(pipes["xar"], classifier, num_samples, seed)
    rows += [measure("xar", pipes["xar"], classifier, num_samples, quick, repeats, seed, **xar_kwargs),
             measure("dit", pipes["dit"], classifier, num_samples, quick, repeats, seed,
                     **({} if dit_steps is None else {"steps": dit_steps})),
             *([measure("xar_ncl_off", pipes["ncl_off"], classifier, num_samples, quick, repeats, seed, **xar_kwargs)]
               if "ncl_off" in pipes else []),
             measure("token_ar", pipes["token_ar"], classifier, num_samples, quick, repeats, seed)]
    by = {r["method"]: r for r in rows}
    xar, dit = by["xar"], by["dit"]
    return {
        "rows": rows, "num_samples": num_samples,
        "clsfid": xar["cls_fid"], "dit_clsfid": dit["cls_fid"], "clsfid_ratio_vs_dit": xar["cls_fid"] / dit["cls_fid"],
        "ncl_off_clsfid": by["xar_ncl_off"]["cls_fid"] if "xar_ncl_off" in by else None, "token_ar_clsfid": by["token_ar"]["cls_fid"],
        "class_accuracy": xar["class_accuracy"], "dit_class_accuracy": dit["class_accuracy"],
        "nfe": xar["nfe"], "dit_nfe": dit["nfe"],
        **speedup("speedup_vs_dit", dit, xar, "s_per_image_b1"),
        **speedup("speedup_vs_dit_b64", dit, xar, "s_per_image_b64"),
        **speedup("speedup_vs_token_ar", by["token_ar"], xar, "s_per_image_b1"),
        **speedup("speedup_vs_token_ar_b64", by["token_ar"], xar, "s_per_image_b64"),
    }
