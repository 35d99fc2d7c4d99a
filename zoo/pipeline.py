"""The sampling API: ``pipe = zoo.load(name)``; ``pipe(batch_size=..., steps=..., generator=..., ...)``.

Every domain's pipeline subclasses ``Pipeline`` and implements ``__call__`` with the shared argument
names (batch_size, steps, generator, prompt / cond, x_init) plus its own. Pipelines load in fp32 on
the CPU; ``.to(device, dtype)`` moves them.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn

from zoo.pretrained import load_config, load_meta, load_net, resolve, save_pretrained
from zoo.registry import get_entry


class Pipeline:
    def __init__(self, net: nn.Module, meta: dict | None = None, **pipeline_kwargs):
        self.net = net
        self.meta = meta or {}
        self.pipeline_kwargs = pipeline_kwargs

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> "Pipeline":
        directory = Path(directory)
        net, config = load_net(directory)
        meta = load_meta(directory)
        return cls(net, meta=meta, **cls.load_components(directory), **config.get("pipeline_kwargs", {}))

    @classmethod
    def load_components(cls, directory: Path) -> dict:
        """The pipeline's own files in the checkpoint (a tokenizer, say), as constructor kwargs."""
        return {}

    def save_components(self, directory: Path) -> None:
        """Write the files that ``load_components`` reads."""

    def save_pretrained(self, directory: str | os.PathLike, meta: dict | None = None) -> Path:
        directory = save_pretrained(self.net, directory, meta=meta if meta is not None else self.meta,
                                    pipeline_kwargs=self.pipeline_kwargs)
        self.save_components(directory)
        return directory

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.net.parameters()).dtype

    def to(self, device=None, dtype=None) -> "Pipeline":
        self.net.to(device=device, dtype=dtype)
        return self

    def __call__(self, *args, **kwargs):
        raise NotImplementedError


def load(name_or_path: str | os.PathLike) -> Pipeline:
    """Load a pretrained pipeline by name (see ``list_pretrained``) or from a checkpoint directory."""
    directory = resolve(name_or_path)
    config = load_config(directory)
    entry = get_entry(config["model"])
    if entry.pipeline is None:
        raise ValueError(f"model {config['model']!r} has no pipeline registered")
    return entry.pipeline.from_pretrained(directory)
