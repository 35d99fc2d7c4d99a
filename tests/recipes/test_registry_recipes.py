"""The recipes ask the registry: eval.py, bench.py and sample.py import nothing from models/, every
registered task and benchmark resolves, and errors name what exists."""

import ast
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

import zoo
from zoo.registry import get_benchmark, get_entry, get_task

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "recipes").rglob("*.py"))  # every script under recipes/, at any depth
COMMON = ("pretrained", "baseline", "quick", "repeats", "seed", "device")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(ROOT / "recipes")))
def test_recipes_never_import_a_domain(path):
    assert not [m for m in imported_modules(path) if m.split(".")[0] in ("models", "datamodules")]


def test_the_recipe_walk_reaches_nested_folders():
    assert any(p.parent != ROOT / "recipes" for p in RECIPES)  # recipes/prompts/fibonacci.py, at least


def test_core_never_imports_a_domain():
    for path in (ROOT / "zoo").rglob("*.py"):
        assert not [m for m in imported_modules(path) if m.split(".")[0] in ("models", "datamodules")], path


def test_every_task_and_benchmark_resolves():
    assert {"bpt", "humaneval", "images", "meshes", "reconstruction"} <= set(zoo.list_tasks())
    for task in zoo.list_tasks():
        params = inspect.signature(get_task(task)).parameters
        assert list(params)[0] == "pipe" and "generator" in params, task
    assert {"dllm_code", "distilled_decoding", "meshcraft"} <= set(zoo.list_benchmarks())
    for domain in zoo.list_benchmarks():
        assert set(COMMON) <= set(inspect.signature(get_benchmark(domain)).parameters), domain


def test_every_default_task_is_registered():
    pipelines = {get_entry(name).pipeline for name in zoo.list_models()}
    defaults = {p.default_task for p in pipelines if p.default_task is not None}
    assert defaults and defaults <= set(zoo.list_tasks())


def test_a_registered_name_cannot_be_taken_twice():
    with pytest.raises(ValueError, match="registered twice"):
        zoo.register_task("bpt", "elsewhere:fn")
    with pytest.raises(ValueError, match="module:function"):
        zoo.register_benchmark("new_domain", "no_colon")
    with pytest.raises(ValueError, match="unknown task 'nope'; tasks: .*bpt"):
        get_task("nope")


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_bench_and_eval_name_what_exists():
    bench = run("recipes/bench.py", "model=nope")
    assert bench.returncode != 0 and "unknown benchmark 'nope'" in bench.stderr and "meshcraft" in bench.stderr
    setting = run("recipes/bench.py", "model=dllm_code", "+kwargs.steps=3")
    assert setting.returncode != 0 and "['steps']" in setting.stderr
    task = run("recipes/eval.py", "model=vq-mnist")
    assert task.returncode != 0 and "no default task" in task.stderr and "humaneval" in task.stderr


@pytest.mark.slow
def test_sample_writes_what_the_output_record_saves(tmp_path):
    prompt = tmp_path / "prompt.py"
    prompt.write_text("def add(a, b):\n")
    result = run("recipes/sample.py", "model=ar_code-tiny", f"prompt_file={prompt}", "+kwargs.gen_length=8",
                 f"out_dir={tmp_path / 'out'}")
    assert result.returncode == 0, result.stderr
    assert "--- sample 0 ---" in result.stdout
    assert (tmp_path / "out" / "sample_000.py").read_text().startswith("def add(a, b):\n")


def test_data_code_never_imports_a_domain():
    for path in (ROOT / "datamodules").rglob("*.py"):
        assert not [m for m in imported_modules(path) if m.split(".")[0] == "models"], path


def test_loading_every_checkpoint_pulls_in_no_data_pipeline():
    code = ("import sys, zoo\nfor name in zoo.list_pretrained():\n    zoo.load(name)\n"
            "print(sorted(m for m in sys.modules if m.startswith('datamodules.')))")
    result = run("-c", code)
    assert result.returncode == 0, result.stderr
    # the mesh codec (numpy and torch), the driving codec (numpy and torch: no simulator) and the
    # sentence splitter (plain Python) alone
    assert result.stdout.split("\n")[-2] == "['datamodules.driving_codec', 'datamodules.mesh_codec', 'datamodules.sentences']"


def test_uncommitted_code_is_named_and_documentation_is_not(tmp_path):
    import subprocess

    from zoo.provenance import uncommitted_code

    git = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    git("init", "-q")
    for name in ("model.py", "README.md", "bench.json"):
        (tmp_path / name).write_text("x\n")
    git("add", ".")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "x")
    assert uncommitted_code(tmp_path) == []
    for name in ("model.py", "README.md", "bench.json"):
        (tmp_path / name).write_text("y\n")
    assert uncommitted_code(tmp_path, ignore=("bench.json",)) == ["model.py"]


def test_a_bench_record_goes_into_the_repo_only_from_committed_code(tmp_path, monkeypatch):
    import importlib.util

    from zoo.pretrained import REPO_ROOT

    spec = importlib.util.spec_from_file_location("bench_recipe", REPO_ROOT / "recipes" / "bench.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    monkeypatch.setattr(recipe, "uncommitted_code", lambda ignore=(): ["zoo/timing.py"])
    with pytest.raises(SystemExit, match="zoo/timing.py"):
        recipe.write_record(REPO_ROOT / "outputs" / "never.json", '{"a": 1}')
    assert not (REPO_ROOT / "outputs" / "never.json").exists()
    recipe.write_record(tmp_path / "kept.json", '{"a": 1}')  # outside the repo: written, its git_sha says -dirty
    assert json.loads((tmp_path / "kept.json").read_text()) == {"a": 1}
