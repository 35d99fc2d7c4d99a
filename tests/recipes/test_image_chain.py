"""The whole Distilled Decoding chain through the recipes, on scikit-learn's 8x8 digits in a few steps:
tokenizer -> teacher -> (noise, tokens) pairs -> student and naive parallel baseline -> zoo.load."""

import pytest
import torch
from safetensors.torch import load_file

import zoo
from datamodules.distillation_pairs import DistillationPairs
from models.distilled_decoding.pairs import generate_pairs

from test_train import run_train  # tests/recipes is on sys.path (pytest rootdir-relative imports)

DIGITS = ["data.source=sklearn8x8", "data.test_per_class=10", "debug=fast"]
TINY_NET = ["++model.net.dim=32", "++model.net.depth=1", "++model.net.num_heads=2"]


@pytest.mark.slow
def test_tokenizer_teacher_pairs_student(tmp_path):
    def train(name, *overrides):
        result = run_train(tmp_path / f"run_{name}", *overrides, f"export_dir={tmp_path / name}")
        assert result.returncode == 0, result.stderr[-3000:]
        return tmp_path / name

    vq = train("vq", "model=vq_mnist", *DIGITS, "++model.net.downsample=1", "++model.net.codebook_size=16",
               "++model.net.width=8")
    teacher = train("teacher", "model=image_ar_mnist", *DIGITS, f"data.tokenizer={vq}", "++model.net.num_codes=16",
                    "++model.net.seq_len=16", *TINY_NET)
    assert (teacher / "tokenizer" / "model.safetensors").is_file()
    pairs = ["data.num_pairs=64", "data.val_pairs=16", "data.shard_size=32", "data.ode_steps=4", "data.guidance_scale=2.0",
             f"data.cache_dir={tmp_path / 'pairs'}", f"data.teacher={teacher}", "debug=fast"]
    student = train("student", "model=distilled_decoding", *pairs)
    parallel = train("parallel", "model=dd_parallel", *pairs)

    meta = zoo.pretrained.load_meta(student)
    assert {"token_agreement_1step", "token_agreement_2step"} <= set(meta["metrics"])
    for directory, kwargs, nfe in ((student, {"steps": 1}, 1), (student, {"steps": 2}, 2), (parallel, {}, 1),
                                   (teacher, {}, 16)):
        out = zoo.load(directory)(class_labels=[3, 7], generator=torch.Generator().manual_seed(0), **kwargs)
        assert out.images.shape == (2, 1, 8, 8) and out.tokens.shape == (2, 16) and out.nfe == nfe

    # The pair cache resumes: a lost shard is regenerated identically, the others are not touched.
    dm = DistillationPairs(generate_pairs, teacher=str(teacher), num_pairs=64, val_pairs=16, shard_size=32, ode_steps=4,
                           guidance_scale=2.0, cache_dir=str(tmp_path / "pairs"))
    shard, other = dm.pair_dir / "train_0001.safetensors", dm.pair_dir / "train_0000.safetensors"
    before, mtime = load_file(shard), other.stat().st_mtime_ns
    shard.unlink()
    dm.prepare_data()
    after = load_file(shard)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert other.stat().st_mtime_ns == mtime
    dm.setup()
    assert dm.data["train"]["noise"].shape == (64, 16, 8) and dm.data["test"]["x1"].shape == (16, 16)
