"""Hub ids resolve through huggingface_hub's cache, laid out as huggingface_hub lays it out (blobs,
snapshots of symlinks, refs); nothing is fetched, and a missing id says how to get it."""

import hashlib
import os
import shutil
from pathlib import Path

import pytest
import torch

import zoo
from zoo.hub import is_hub_id
from zoo.pretrained import resolve

REVISION = "0123456789abcdef0123456789abcdef01234567"


def cached_repo(cache: Path, repo_id: str, source: Path) -> Path:
    """``source``'s files as huggingface_hub caches a model repository at REVISION on main."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / REVISION
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        blob = repo / "blobs" / digest
        blob.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, blob)
        link = snapshot / path.relative_to(source)
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(REVISION)
    return snapshot


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # belt and braces: nothing may leave the machine
    return tmp_path / "hub"


def test_a_cached_hub_id_loads_and_samples_as_the_local_folder(hub_cache):
    local = resolve("xar-mnist")
    snapshot = cached_repo(hub_cache, "someone/xar-mnist", local)
    assert resolve("someone/xar-mnist") == snapshot
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    a = zoo.load("someone/xar-mnist")(class_labels=[3], steps=2, generator=g(), output_type="latents").latents
    b = zoo.load(local)(class_labels=[3], steps=2, generator=g(), output_type="latents").latents
    assert torch.equal(a, b)
    assert resolve("someone/xar-mnist", revision=REVISION) == snapshot


def test_an_id_missing_from_the_cache_is_refused_with_the_way_to_get_it(hub_cache):
    with pytest.raises(ValueError, match="not in the Hugging Face cache.*download=True"):
        zoo.load("someone/not-there")
    with pytest.raises(ValueError, match="no pretrained model"):
        zoo.load("not-a-name")  # no slash: a local name only


def test_what_counts_as_a_hub_id():
    assert is_hub_id("GSAI-ML/LLaDA-8B-Instruct") and is_hub_id("a/b.c_d-e")
    assert not any(is_hub_id(s) for s in ("xar-mnist", "a/b/c", "../x", "/abs/path", "a/..", "org/"))

