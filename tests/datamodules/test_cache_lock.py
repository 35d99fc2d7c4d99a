"""Two processes building one cache entry build it once, and the result is whole."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = """
import sys
from datamodules.meshes import MeshDataModule
dm = MeshDataModule(max_faces=40, per_category={"train": 1, "val": 1, "test": 1}, cache_dir=sys.argv[1])
dm.load_split("test")
"""


@pytest.mark.slow
def test_two_processes_build_a_mesh_split_once(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", BUILD, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    assert sum(out.count("made ") for out, _ in outs) == 1  # the second waited and reused it
    assert [p.name for p in tmp_path.rglob("*.safetensors")] == ["test_1.safetensors"]
    assert not list(tmp_path.rglob("*.tmp*"))


def test_a_cache_entry_is_built_once_and_a_failed_build_leaves_nothing(tmp_path):
    import torch

    from datamodules.base import cached_tensors

    calls = []

    def build():
        calls.append(1)
        return {"x": torch.arange(6).reshape(2, 3).t()}  # not contiguous: written anyway

    path = tmp_path / "v1" / "entry.safetensors"
    first, second = cached_tensors(path, build), cached_tensors(path, build)
    assert len(calls) == 1 and torch.equal(first["x"], second["x"]) and first["x"].shape == (3, 2)

    def fail():
        raise RuntimeError("no data")

    with pytest.raises(RuntimeError, match="no data"):
        cached_tensors(tmp_path / "other.safetensors", fail)
    assert not (tmp_path / "other.safetensors").exists() and not list(tmp_path.rglob("*.tmp*"))
