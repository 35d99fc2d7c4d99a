"""The teacher's (noise -> tokens) pairs for Distilled Decoding, generated once and cached on disk.

Pairs are made in shards of ``shard_size``; each shard's noise and labels are fixed by (seed, shard),
and a shard is written to a temporary file and renamed when complete. So an interrupted run resumes
where it stopped, and asking for more pairs later only generates the new shards. The folder name
carries the teacher's weight hash and the generation settings, so changed settings never mix.

Batches: {"noise": (B, L, D), "x1": tokens (B, L), "cond": labels (B,)}.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from functools import cached_property
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file

from datamodules.base import TensorDataModule, cache_lock, progress
from zoo.pretrained import TOKENIZER_DIR, WEIGHTS, component_files, load_net, resolve


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


class DistillationPairs(TensorDataModule):
    """Args:
        pair_fn: ``(teacher, codebook, noise, labels, guidance_scale, temperature, ode_steps) -> tokens``, the
            domain's pair generator (distilled_decoding's flow map; the YAML names it), so that data
            code never imports a domain.
        teacher: the AR teacher's checkpoint (with its tokenizer in tokenizer/).
        num_pairs: training pairs (rounded up to whole shards); val_pairs: held-out pairs.
        ode_steps: Euler steps of the flow map; guidance_scale, temperature: the teacher's sampling.
        cache_dir: where shards are kept.
        gen_batch: rows the teacher generates at once.
    """

    def __init__(self, pair_fn: Callable, teacher: str = "checkpoints/image_ar-mnist", num_pairs: int = 40000, val_pairs: int = 1000,
                 shard_size: int = 2000, ode_steps: int = 32, guidance_scale: float = 1.5, temperature: float = 1.0,
                 cache_dir: str = ".cache/dd_pairs", batch_size: int = 128, gen_batch: int = 1000, seed: int = 0,
                 debug: bool = False):
        super().__init__(batch_size, seed, debug)
        if debug:  # debug=fast: at most a few hundred pairs, cached apart (the shard size is in the folder name)
            num_pairs, val_pairs, shard_size = min(num_pairs, 256), min(val_pairs, 32), min(shard_size, 128)
        self.pair_fn = pair_fn
        self.teacher, self.num_pairs, self.val_pairs, self.shard_size = teacher, num_pairs, val_pairs, shard_size
        self.ode_steps, self.guidance_scale, self.temperature = ode_steps, guidance_scale, temperature
        self.cache_dir, self.gen_batch = Path(cache_dir), gen_batch

    @property
    def teacher_dir(self) -> Path:
        return resolve(self.teacher)

    @cached_property
    def pair_dir(self) -> Path:  # cached: it hashes the teacher's weights
        return self.cache_dir / (f"{file_hash(self.teacher_dir / WEIGHTS)}-g{self.guidance_scale}-T{self.temperature}"
                                 f"-ode{self.ode_steps}-n{self.shard_size}-s{self.seed}")

    def shards(self) -> list[tuple[str, int, int]]:
        """(file name, seed stream, rows) of every shard this config needs."""
        train = [(f"train_{i:04d}.safetensors", i, self.shard_size)
                 for i in range(math.ceil(self.num_pairs / self.shard_size))]
        return train + [("val_0000.safetensors", 1_000_000, self.val_pairs)]

    def prepare_data(self) -> None:
        if all((self.pair_dir / s[0]).is_file() for s in self.shards()):
            return
        with cache_lock(self.pair_dir):  # two runs make each shard once; the second waits, then reuses
            self.make_shards([s for s in self.shards() if not (self.pair_dir / s[0]).is_file()])

    def make_shards(self, missing: list[tuple[str, int, int]]) -> None:
        if not missing:
            return
        teacher, _ = load_net(self.teacher_dir)
        tokenizer, _ = load_net(self.teacher_dir / TOKENIZER_DIR)
        teacher.eval()
        codebook = tokenizer.normalized_codebook().detach()
        self.pair_dir.mkdir(parents=True, exist_ok=True)
        for name, stream, rows in missing:
            start = time.perf_counter()
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + stream)
            labels = (torch.arange(rows) % teacher.num_classes)[torch.randperm(rows, generator=g)]
            noise = torch.randn(rows, teacher.seq_len, codebook.shape[1], generator=g)
            batches = list(zip(noise.split(self.gen_batch), labels.split(self.gen_batch)))
            tokens = torch.cat([self.pair_fn(teacher, codebook, n, c, self.guidance_scale, self.temperature,
                                             self.ode_steps)
                                for n, c in progress(batches, len(batches), f"pairs: {name} ({rows})")])
            tmp = self.pair_dir / f"{name}.tmp{os.getpid()}"
            save_file({"noise": noise.contiguous(), "x1": tokens.contiguous(), "cond": labels.contiguous()}, tmp)
            os.replace(tmp, self.pair_dir / name)  # complete shards only: an interrupted run redoes this one
            print(f"pairs: {self.pair_dir / name} ({rows} pairs, {time.perf_counter() - start:.1f} s)", flush=True)

    def setup(self, stage: str | None = None) -> None:
        if self.data:
            return
        parts: dict[str, list[dict]] = {"train": [], "test": []}
        for name, _, _ in self.shards():
            parts["test" if name.startswith("val") else "train"].append(load_file(self.pair_dir / name))
        for split, shards in parts.items():
            self.data[split] = {k: torch.cat([s[k] for s in shards]) for k in ("noise", "x1", "cond")}
        self.data["train"] = {k: v[:self.num_pairs] for k, v in self.data["train"].items()}

    def stats(self) -> dict:
        return {"pair_dir": str(self.pair_dir), "ode_steps": self.ode_steps, "guidance_scale": self.guidance_scale,
                "temperature": self.temperature, **super().stats()}

    def pretrained_files(self) -> dict[str, Path]:
        return component_files(self.teacher_dir / TOKENIZER_DIR, TOKENIZER_DIR)
