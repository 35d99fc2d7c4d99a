"""What every data source shares: a dict-of-tensors dataset, a step-seeded batch sampler (batch s is
fixed by (seed, s, rank), so a resumed run sees the same batches), the datamodule built on both, and
the lock under which a cache entry is built, and the progress bar every long data step shows."""

from __future__ import annotations

from dataclasses import dataclass

import fcntl
import hashlib
import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


@dataclass(frozen=True)
class DataCard:
    """What a model card says of a data module's data: a short name, its source and its licence."""

    name: str
    source: str
    licence: str


PROCEDURAL = "made by this repository's code (its licence: LICENSE)"
PSF = "PSF-2.0 (the Python Software Foundation License of the standard library)"


class StepBatchSampler(Sampler):
    """Endless batches of random window starts; batch s depends only on (seed, s, rank)."""

    def __init__(self, num_windows: int, batch_size: int, seed: int, start_step: int = 0,
                 rank: int = 0, world_size: int = 1):
        self.num_windows, self.batch_size, self.seed = num_windows, batch_size, seed
        self.start_step, self.rank, self.world_size = start_step, rank, world_size

    def batch(self, step: int) -> list[int]:
        rng = np.random.default_rng([self.seed, step, self.rank, self.world_size])
        return rng.integers(0, self.num_windows, self.batch_size).tolist()

    def __iter__(self):
        step = self.start_step
        while True:
            yield self.batch(step)
            step += 1


class TensorDictDataset(Dataset):
    """Rows of a dict of equally long tensors; batches collate back into a dict."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        lengths = {len(v) for v in tensors.values()}
        if len(lengths) != 1:
            raise ValueError(f"tensors of different lengths: { {k: len(v) for k, v in tensors.items()} }")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def __getitem__(self, i: int) -> dict:
        return {k: v[i] for k, v in self.tensors.items()}


class TensorDataModule(L.LightningDataModule):
    """Train batches drawn with replacement, batch s fixed by (seed, s, rank) so a resumed run sees
    the same batches; the test split serves as validation. Subclasses fill ``self.data``."""

    def __init__(self, batch_size: int, seed: int, debug: bool = False):
        super().__init__()
        self.batch_size, self.seed, self.debug = batch_size, seed, debug  # debug: a small subset (debug=fast)
        self.data: dict[str, dict[str, torch.Tensor]] = {}

    def train_dataloader(self) -> DataLoader:
        ds = TensorDictDataset(self.data["train"])
        trainer = self.trainer
        sampler = self.batch_sampler(len(ds), start_step=trainer.global_step if trainer else 0,
                                     rank=trainer.global_rank if trainer else 0,
                                     world_size=trainer.world_size if trainer else 1)
        return DataLoader(ds, batch_sampler=sampler)

    def batch_sampler(self, num_rows: int, start_step: int, rank: int, world_size: int) -> StepBatchSampler:
        """The train batches from ``start_step`` on (a subclass may serve them in another order)."""
        return StepBatchSampler(num_rows, self.batch_size, self.seed, start_step=start_step, rank=rank,
                                world_size=world_size)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TensorDictDataset(self.data["test"]), batch_size=max(self.batch_size, 256))

    def stats(self) -> dict:
        return {split: {k: list(v.shape) for k, v in d.items()} for split, d in self.data.items()}


@contextmanager
def cache_lock(path: Path):
    """Hold an exclusive lock on ``path``'s entry (a ``.lock`` file beside it) while it is built, so two
    processes build it once: the second waits, then finds it made (re-check after entering). Entries
    are still written to a temporary name and renamed, so a reader never sees half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f"{path.name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def cached_tensors(path: Path, build: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The tensors cached at ``path`` (safetensors), made by ``build()`` the first time: under
    ``cache_lock`` (two processes build it once), written to a temporary name and renamed (a crash never
    leaves half a file). Every data module's cache entry goes through here."""
    from safetensors.torch import load_file, save_file

    path = Path(path)
    if not path.is_file():
        with cache_lock(path):
            if not path.is_file():  # another process may have made it while this one waited
                start = time.perf_counter()
                data = build()
                tmp = path.with_suffix(f".tmp{os.getpid()}")
                save_file({k: v.contiguous() for k, v in data.items()}, str(tmp))
                os.replace(tmp, path)
                print(f"made {path} in {time.perf_counter() - start:.0f} s")
    return load_file(str(path))


def progress(items: Iterable, total: int, description: str) -> Iterator:
    """``items`` with a progress bar (a count and an ETA): rich's where it is installed, else a line
    every ~10 s on stderr (the GPU machine has no rich). For data steps that can take over ~10 s."""
    try:
        from rich.progress import track
    except ImportError:
        start = last = time.perf_counter()
        for i, item in enumerate(items, 1):
            yield item
            now = time.perf_counter()
            if now - last > 10 or i == total:
                eta = (now - start) / i * (total - i)
                print(f"{description}: {i}/{total}, {now - start:.0f} s, about {eta:.0f} s left", file=sys.stderr)
                last = now
        return
    yield from track(items, total=total, description=description)



class LatentData:
    """What a data module of latents shares (mixed into a TensorDataModule): the normalisation of its
    latents (``latent_stats``, set by ``normalise_latents``) and the files a latent model's checkpoint
    carries, the encoding autoencoder's (``vae/``) and ``latent_stats.json`` (``pretrained_files``).
    A subclass names its autoencoder checkpoint in ``encoder_checkpoint`` and has a ``cache_dir``."""

    latent_stats: dict | None = None

    @property
    def encoder_checkpoint(self) -> str:
        raise NotImplementedError

    def normalise_latents(self, mean: torch.Tensor, std: torch.Tensor, normalise: Callable[[dict], None]) -> None:
        """Apply ``normalise(split_data)`` to every split and keep (mean, std) as the latent statistics."""
        for data in self.data.values():
            normalise(data)
        self.latent_stats = {"mean": mean.tolist(), "std": std.tolist()}

    def pretrained_files(self) -> dict[str, Path]:
        """The autoencoder's files (vae/...) and latent_stats.json, which a latent model's checkpoint carries."""
        from zoo.pretrained import LATENT_STATS, VAE_DIR, component_files, resolve

        stats = content_file(self.cache_dir, "latent_stats", json.dumps(self.latent_stats))
        return {**component_files(resolve(self.encoder_checkpoint), VAE_DIR), LATENT_STATS: stats}


def content_file(directory: Path, stem: str, text: str) -> Path:
    """``text`` written once to ``directory/<stem>-<hash of text>.json`` (atomically) and its path: a
    side file an export copies (latent statistics), shared by every export of the same content."""
    path = Path(directory) / f"{stem}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path
