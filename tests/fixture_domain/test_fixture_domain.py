"""CONTRIBUTING.md holds: a new domain is its own folder, its YAMLs and one entry point. The toy domain
beside this file (toy_flow/: a network, an objective, a data module, a pipeline, a task, a benchmark
and an ablation; configs/ for its YAMLs) is announced by an entry point written into a temporary
folder, its configs reach Hydra through ``hydra.searchpath``, and every recipe runs on it: train
(debug=fast, with export), sample, eval, bench and ablate (whose second stage trains). No file outside
this folder names it."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from zoo.ablation import read_rows

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def run(args: list[str], env: dict, timeout: int = 300) -> dict | None:
    """The recipe's last stdout line as JSON (eval, sample, bench, ablate), or None (train)."""
    result = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    return json.loads(last) if last.startswith("{") else None


@pytest.fixture
def env(tmp_path) -> dict:
    """PYTHONPATH with the toy package and a dist-info that announces it under ``zoo.models``, as
    ``pip install`` of a package with that entry point would."""
    site = tmp_path / "site"
    info = site / "toy_flow_fixture-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-flow-fixture\nVersion: 0\n")
    (info / "entry_points.txt").write_text("[zoo.models]\ntoy_flow = toy_flow\n")
    path = os.pathsep.join([str(site), str(HERE), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_every_recipe_runs_on_a_domain_that_lives_in_one_folder(tmp_path, env):
    export = tmp_path / "export"
    run(["recipes/train.py", f"hydra.searchpath=[file://{HERE / 'toy_flow' / 'configs'}]", "model=toy_flow",
         "debug=fast", f"export_dir={export}", f"hydra.run.dir={tmp_path / 'run'}"], env, timeout=600)
    assert (export / "model.safetensors").is_file() and (export / "README.md").is_file()
    sampled = run(["recipes/sample.py", f"model={export}", "batch_size=3", f"out_dir={tmp_path / 'samples'}"], env)
    assert sampled["nfe"] == 8 and (tmp_path / "samples" / "points.json").is_file()
    evaluated = run(["recipes/eval.py", f"model={export}"], env)  # the pipeline's default task
    assert evaluated["relative_spread"] > 0 and evaluated["nfe"] == 8
    timed = run(["recipes/bench.py", "model=toy_flow", f"pretrained={export}", "quick=true", "repeats=1"], env)
    assert timed["rows"][0]["steps"] == 8
    ablated = run(["recipes/ablate.py", "model=toy_flow", f"+options.model={export}", f"out={tmp_path / 'ablation'}"],
                  env, timeout=600)
    assert ablated["rows"] == 4 and (tmp_path / "ablation" / "ablation.png").is_file()
    assert (tmp_path / "ablation" / "width16_2steps" / "model.safetensors").is_file()
    trained = [r for r in read_rows(tmp_path / "ablation" / "rows.jsonl") if r["factor"] == "width"]
    assert [(r["setting"], r["steps_trained"], Path(r["export"]).name) for r in trained] == [
        (8, 2, "width8_2steps"), (16, 2, "width16_2steps")]  # run.compare: each training's record beside its scores


def test_no_file_outside_the_fixture_names_the_domain():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    named = subprocess.run(["git", "grep", "-l", "toy_flow", "--", ".", f":!{HERE.relative_to(ROOT)}"], cwd=ROOT,
                           capture_output=True, text=True).stdout.split()
    assert named == []
