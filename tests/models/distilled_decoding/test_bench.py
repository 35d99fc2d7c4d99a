"""The benchmark's bookkeeping on untrained models of the shipped sizes (no checkpoint needed)."""

import math

import pytest
import torch

import zoo
from models.distilled_decoding import DistilledDecodingPipeline, ParallelPipeline, bench
from models.image_ar import ImageARPipeline


@pytest.mark.slow
def test_bench_reports_every_method_and_the_headline_ratios(monkeypatch):
    torch.manual_seed(0)
    vq = zoo.create_model("vq-mnist").eval()
    teacher = zoo.create_model("image_ar-mnist", depth=1).eval()
    student = zoo.create_model("distilled_decoding-mnist", depth=1).eval()
    parallel = zoo.create_model("dd_parallel-mnist").eval()
    pipes = {"teacher": ImageARPipeline(teacher, tokenizer=vq, guidance_scale=2.0, temperature=1.0),
             "student": DistilledDecodingPipeline(student, tokenizer=vq),
             "parallel": ParallelPipeline(parallel, tokenizer=vq)}
    result = bench.bench(pipes, zoo.create_model("digit_cnn-mnist"), teacher, quick=True, repeats=1, seed=0)
    rows = {r["method"]: r for r in result["rows"]}
    assert set(rows) == set(bench.METHODS) | {"real_train_digits", "tokenizer_reconstructions"}
    assert [rows[m]["nfe"] for m in ("teacher", "student_1step", "student_2step", "naive_parallel")] == [49, 1, 2, 1]
    for key in ("speedup_1step", "clsfid_ratio_1step", "clsfid_ratio_2step", "clsfid_ratio_parallel"):
        assert math.isfinite(result[key]) and result[key] > 0, key
    assert result["speedup_1step"] == round(rows["teacher"]["s_per_image_b1"] / rows["student_1step"]["s_per_image_b1"], 2)
    low, high = result["speedup_1step_range"]
    assert low <= result["speedup_1step"] <= high
    assert {"cls_fid", "precision", "recall", "class_accuracy", "teacher_nll_bits_per_token"} <= set(rows["teacher"])
