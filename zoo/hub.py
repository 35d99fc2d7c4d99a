"""Hugging Face Hub ids: ``zoo.load("org/name")`` reads a checkpoint from huggingface_hub's cache.

Nothing is fetched unless the caller asks (``zoo.load(..., download=True)``): by default the id must
already be in the cache (``huggingface-cli download org/name``, or a copy of another machine's cache;
``HF_HOME`` / ``HF_HUB_CACHE`` say where it is), so loading never touches the network on its own. With
``download=True`` huggingface_hub fetches what is missing, and still honours ``HF_HUB_OFFLINE=1``.
The folder it returns is the snapshot of the revision (``main`` unless ``revision=`` names one): the
zoo's own layout or a public one, loaded like a local folder.

A folder written by ``save_pretrained`` (config.json, model.safetensors, meta.json, side files and the
model card, README.md) is what ``huggingface-cli upload org/name <folder>`` publishes.
"""

from __future__ import annotations

import re
from pathlib import Path

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def is_hub_id(name: str) -> bool:
    """"org/name" with the Hub's characters (a local path that exists is never taken for one)."""
    return bool(HUB_ID.match(str(name))) and ".." not in str(name)


def hub_snapshot(repo_id: str, revision: str | None = None, download: bool = False) -> Path:
    """The cached snapshot folder of a Hub model repository; with ``download`` fetched if missing."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:
        raise ValueError(f"{repo_id!r} looks like a Hugging Face Hub id, but huggingface_hub is not installed "
                         f"(pip install huggingface_hub)") from None
    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=not download))
    except LocalEntryNotFoundError:
        from huggingface_hub.constants import HF_HUB_CACHE

        how = ("zoo.load(..., download=True) fetches it, or `huggingface-cli download` it first"
               if not download else "HF_HUB_OFFLINE is set, or the Hub cannot be reached")
        raise ValueError(f"{repo_id!r}{f' at {revision!r}' if revision else ''} is not in the Hugging Face "
                         f"cache ({HF_HUB_CACHE}): {how}") from None
