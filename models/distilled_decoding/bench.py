"""The distilled_decoding benchmark: the teacher, the 1- and 2-step student and naive parallel
sampling, timed and scored in one run on one machine (recipes/bench.py model=distilled_decoding).

Seconds per image are end to end: the pipeline call, tokens and decoding, at batch 1 (the median of
``repeats`` calls, averaged over a few images) and at batch 64; and at batch 1 for the tokens alone
(``output_type="tokens"``), since decoding costs every method the same. Quality: cls-FID, precision, recall
and class accuracy in the project's classifier's features, against the 1,000 test digits, and the
teacher's NLL of each method's tokens.
"""

from __future__ import annotations

import torch

import zoo
from datamodules.digits import digits_split
from models.distilled_decoding.pairs import teacher_settings
from models.image_kit.evaluate import generate, sample_quality, seconds_per_image
from zoo.timing import speedup
from models.image_kit.metrics import image_metrics

METHODS = {  # row name -> (pipeline key, sampling kwargs)
    "teacher": ("teacher", {}),
    "student_1step": ("student", {"steps": 1}),
    "student_2step": ("student", {"steps": 2}),
    "naive_parallel": ("parallel", {}),
}


@torch.no_grad()
def reference_rows(tokenizer, classifier, teacher_net, num_samples: int, seed: int) -> list[dict]:
    """What the metrics give real train digits (the floor of cls-FID against the test split) and
    their reconstructions through the tokenizer (the best any token model here can reach)."""
    images, labels = digits_split("mnist5k", "train")
    pick = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:num_samples]
    images, labels = images[pick], labels[pick]
    grid = tokenizer.encode(images)  # (N, h, w)
    recon, tokens = tokenizer.decode(grid), grid.flatten(1)
    real = digits_split("mnist5k", "test")[0]
    return [{"method": "real_train_digits", **image_metrics(classifier, real, images, labels)},
            {"method": "tokenizer_reconstructions", **sample_quality(recon, tokens, labels, classifier, teacher_net)}]


def bench(pipes: dict, classifier, teacher_net, quick: bool, repeats: int, seed: int,
          teacher_kwargs: dict | None = None) -> dict:
    """teacher_kwargs: the teacher's sampling settings, e.g. {"guidance_scale": g} with the g of the pairs
    the student learned from, so that the student is compared with the distribution it distils."""
    num_samples = 500 if quick else 1000
    rows = reference_rows(pipes["student"].tokenizer, classifier, teacher_net, num_samples, seed)
    for name, (key, kwargs) in METHODS.items():
        pipe = pipes[key]
        kwargs = {**kwargs, **(teacher_kwargs or {})} if key == "teacher" else kwargs
        labels = torch.arange(num_samples) % 10
        images, tokens, nfe, _ = generate(pipe, labels, 250, torch.Generator().manual_seed(seed), **kwargs)
        row = {"method": name, "nfe": nfe,
               **seconds_per_image(pipe, 1, repeats, 10 if quick else 20, seed, name="s_per_image_b1", **kwargs),
               **seconds_per_image(pipe, 64, repeats, 64, seed, name="s_per_image_b64", **kwargs),
               # token generation alone (no decoding): what distillation accelerates
               **seconds_per_image(pipe, 1, repeats, 10 if quick else 20, seed, name="s_per_image_b1_tokens",
                                   output_type="tokens", **kwargs),
               **sample_quality(images, tokens, labels, classifier, teacher_net)}
        rows.append(row)
    for row in rows:
        print(" | ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    by = {r["method"]: r for r in rows}  # the reference rows carry no timing
    teacher = by["teacher"]
    return {
        "rows": rows, "num_samples": num_samples, "teacher_kwargs": teacher_kwargs or {},
        **speedup("speedup_1step", teacher, by["student_1step"], "s_per_image_b1"),
        **speedup("speedup_1step_b64", teacher, by["student_1step"], "s_per_image_b64"),
        **speedup("speedup_2step", teacher, by["student_2step"], "s_per_image_b1"),
        **speedup("speedup_1step_tokens", teacher, by["student_1step"], "s_per_image_b1_tokens"),
        "clsfid_teacher": teacher["cls_fid"],
        "clsfid_ratio_1step": by["student_1step"]["cls_fid"] / teacher["cls_fid"],
        "clsfid_ratio_2step": by["student_2step"]["cls_fid"] / teacher["cls_fid"],
        "clsfid_ratio_parallel": by["naive_parallel"]["cls_fid"] / teacher["cls_fid"],
    }


def run(pretrained: str | None = None, baseline: str | None = None, quick: bool = False, repeats: int = 3,
        seed: int = 0, device: str = "cpu") -> dict:
    """``recipes/bench.py model=distilled_decoding``: the student (distilled_decoding-mnist), its teacher
    (image_ar-mnist) and naive parallel sampling (dd_parallel-mnist), scored by digit_cnn-mnist."""
    pipes = {"student": zoo.load(pretrained or "distilled_decoding-mnist"),
             "teacher": zoo.load(baseline or "image_ar-mnist"), "parallel": zoo.load("dd_parallel-mnist")}
    for pipe in pipes.values():
        pipe.to(device)
    classifier = zoo.load("digit_cnn-mnist").net
    teacher_kwargs = teacher_settings(pipes["student"].meta.get("data") or {})  # those the pairs were made with
    return bench(pipes, classifier, pipes["teacher"].net, quick, repeats, seed, teacher_kwargs)
