"""The MeshCraft chain through the recipes on a few procedural meshes: VAE -> flow DiT (carrying the
VAE) and the AR baseline -> zoo.load -> recipes/sample.py (mesh files + PNG) and recipes/eval.py."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import zoo

from test_train import ROOT, run_train  # tests/recipes is on sys.path (pytest rootdir-relative imports)

TINY_NET = ["+model.net.dim=32", "+model.net.num_heads=2"]


@pytest.mark.slow
def test_vae_dit_ar_sample_eval(tmp_path):
    data = ["data.per_category={train: 2, val: 1, test: 2}", "data.max_faces=60", f"data.cache_dir={tmp_path / 'meshes'}",
            "debug=fast"]

    def train(name, *overrides):
        result = run_train(tmp_path / f"run_{name}", *overrides, *data, f"export_dir={tmp_path / name}")
        assert result.returncode == 0, result.stderr[-3000:]
        return tmp_path / name

    vae = train("vae", "model=meshcraft_vae", *TINY_NET, "+model.net.enc_depth=1", "+model.net.dec_depth=1")
    assert {"triangle_acc", "vertex_l2_steps"} <= set(zoo.pretrained.load_meta(vae)["metrics"])
    dit = train("dit", "model=meshcraft", f"data.vae={vae}", *TINY_NET, "+model.net.depth=1", "+model.net.max_faces=60")
    assert (dit / "vae" / "model.safetensors").is_file() and (dit / "latent_stats.json").is_file()
    ar = train("ar", "model=meshgpt_ar", *TINY_NET, "+model.net.depth=1", "+model.net.max_faces=60")
    judge = train("pointnet", "model=mesh_pointnet", "+model.net.width=8", "+model.net.num_features=16",
                  "+model.net.num_points=64", "data.points_per_mesh=128", "model.objective.num_points=64")
    assert {"accuracy", "meshes"} <= set(zoo.pretrained.load_meta(judge)["metrics"])

    out = zoo.load(dit)(num_faces=[12, 60], category="bench", steps=2, generator=torch.Generator().manual_seed(0))
    assert [len(t) for t in out.tokens] == [12, 60] and len(out.meshes) == 2
    with pytest.raises(ValueError, match=r"\[1, 60\]"):
        zoo.load(dit)(num_faces=61)
    out = zoo.load(ar)(num_faces=4, category="lamp", exact_faces=True, generator=torch.Generator().manual_seed(0))
    assert len(out.tokens[0]) == 4

    result = subprocess.run([sys.executable, "recipes/sample.py", f"model={dit}", "batch_size=2", "steps=2",
                             "+kwargs.num_faces=20", "+kwargs.category=chair", f"out_dir={tmp_path / 'samples'}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["nfe"] == 2 and record["decoder_calls"] == 1  # 2 guided steps, one batched pass each; the VAE apart
    for name in ("mesh_000.obj", "mesh_001.glb", "mesh_001.ply", "meshes.png"):
        assert (tmp_path / "samples" / name).stat().st_size > 0

    result = subprocess.run([sys.executable, "recipes/eval.py", f"model={vae}", "+kwargs.test_size=1",
                             "+kwargs.max_faces=60", f"+kwargs.cache_dir={tmp_path / 'meshes'}"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics["task"] == "reconstruction" and metrics["test_meshes"] == 4 and 0 <= metrics["triangle_acc"] <= 1
    assert not list((tmp_path / "meshes").glob("*-f800-*"))  # the test split of the VAE's own data settings
    assert 0 <= metrics["faces_kept_pct"] <= 100
    assert all(0 <= metrics[k] <= 100 for k in ("reference/loose_faces", "decoded/loose_faces", "decoded/corner_coincidence"))

    result = subprocess.run([sys.executable, "recipes/eval.py", f"model={judge}", "+kwargs.per_category=2",
                             "+kwargs.test_size=2", "+kwargs.max_faces=60", f"+kwargs.cache_dir={tmp_path / 'meshes'}"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics["task"] == "mesh_categories" and metrics["meshes"] == 8
    assert 0 <= metrics["accuracy"] <= 100 and 0 <= metrics["exploded_accuracy"] <= 100

    for model, extra in ((dit, ["+kwargs.steps=2"]), (ar, [])):
        result = subprocess.run([sys.executable, "recipes/eval.py", f"model={model}", "+kwargs.per_category=1",
                                 "+kwargs.test_size=2", f"+kwargs.cache_dir={tmp_path / 'meshes'}",
                                 "+kwargs.num_points=256", f"+kwargs.classifier={judge}", *extra], cwd=ROOT,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        metrics = json.loads(result.stdout.strip().splitlines()[-1])
        assert metrics["task"] == "meshes" and metrics["meshes"] == 4
        assert 0 <= metrics["recognised"] <= 100 and 0 <= metrics["reference/recognised"] <= 100
        assert {"largest_patch", "closed_parts", "nonmanifold_edges"} <= set(metrics)
        assert {"cov", "mmd_x1e3", "nna_1", "face_count_rel_err_pct", "loose_faces", "corner_coincidence", "watertight", "components", "reference/loose_faces", "seconds_per_mesh"} <= set(metrics)
