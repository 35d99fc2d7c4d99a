"""A real code corpus on every machine: the Python standard library that ships with the interpreter.

prepare_data() (once, cached under ``cache_dir``):
  1. every ``*.py`` file of the running interpreter's stdlib (site-packages excluded), read as UTF-8;
  2. exact duplicates dropped (by content hash);
  3. split into train / val by a hash of the relative path, so a file never straddles the split;
  4. a byte-level BPE tokenizer trained on the train split (``tokenizers``), special tokens first;
  5. each split encoded to one uint16 token stream, files separated by EOS, saved as .npy.

Training batches are random windows of ``seq_len`` tokens; the windows of step s are a pure function
of (seed, s, rank), so a resumed run sees exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import hashlib
import json
import sys
import sysconfig
from pathlib import Path
from typing import Iterator

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.base import DataCard, PSF, StepBatchSampler, cache_lock, progress
from zoo.pretrained import atomic_dir

SPECIAL_TOKENS = ["<|pad|>", "<|eos|>", "<|mask|>"]  # first in the BPE vocabulary: ids 0, 1, 2
PAD_ID, EOS_ID, MASK_ID = (SPECIAL_TOKENS.index(t) for t in ("<|pad|>", "<|eos|>", "<|mask|>"))


def special_id(token: str) -> int:
    """The id of a special token of this tokenizer, for the YAMLs (``{_target_: ..special_id, token:
    "<|mask|>"}``), so no config writes an id by hand."""
    if token not in SPECIAL_TOKENS:
        raise ValueError(f"unknown special token {token!r}; this tokenizer has {SPECIAL_TOKENS}")
    return SPECIAL_TOKENS.index(token)
TOKENIZER_FILE = "tokenizer.json"
DEBUG_FILES = 300  # debug=fast: about 3 MB of the corpus, enough for every split and a 4,096-token BPE


def stdlib_files(root: Path | None = None) -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"]) if root is None else Path(root)
    return sorted(f for f in root.rglob("*.py") if "site-packages" not in f.parts)


def split_of(relative_path: str, val_per_mille: int) -> str:
    digest = int(hashlib.sha1(relative_path.encode()).hexdigest(), 16)
    return "val" if digest % 1000 < val_per_mille else "train"


def corpus_files(root: Path | None = None, max_files: int | None = None) -> Iterator[tuple[str, str]]:
    """(path relative to root, text) of every distinct non-empty UTF-8 file of the corpus, in path
    order, with a progress bar; ``max_files``: only the first files (debug=fast)."""
    root = Path(sysconfig.get_paths()["stdlib"]) if root is None else Path(root)
    seen = set()
    files = stdlib_files(root)[:max_files]
    for path in progress(files, len(files), f"corpus: reading {len(files)} files"):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # a handful of test files are deliberately not UTF-8
        digest = hashlib.sha1(text.encode()).digest()
        if not text.strip() or digest in seen:
            continue
        seen.add(digest)
        yield str(path.relative_to(root)), text


def read_corpus(root: Path | None = None, val_per_mille: int = 20, max_files: int | None = None
                ) -> dict[str, list[str]]:
    """{"train": [file texts], "val": [...]}, deduplicated, split by path (``split_of``)."""
    splits = {"train": [], "val": []}
    for relative, text in corpus_files(root, max_files):
        splits[split_of(relative, val_per_mille)].append(text)
    return splits


def train_tokenizer(texts: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=sys.stderr.isatty())  # the library's own bar, in a terminal
    tok.train_from_iterator(texts, trainer=trainer)
    for i, s in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(s) == i, "special tokens must take the first ids"
    return tok


def encode_stream(tok, texts: list[str], eos_id: int = EOS_ID) -> np.ndarray:
    """One uint16 stream: file tokens, EOS, file tokens, EOS, ..."""
    ids = []
    for enc in tok.encode_batch(texts):
        ids.extend(enc.ids)
        ids.append(eos_id)
    return np.asarray(ids, dtype=np.uint16)


class TokenWindows(Dataset):
    """Index = window start; item = {"x1": (seq_len,) long}."""

    def __init__(self, tokens: np.ndarray, seq_len: int):
        self.tokens, self.seq_len = tokens, seq_len

    def __len__(self):
        return max(0, len(self.tokens) - self.seq_len + 1)

    def __getitem__(self, start: int) -> dict:
        return {"x1": torch.from_numpy(self.tokens[start:start + self.seq_len].astype(np.int64))}


class StdlibCodeDataModule(L.LightningDataModule):
    """Args:
        cache_dir: where the tokenizer and token streams are cached.
        vocab_size: BPE vocabulary, special tokens included.
        seq_len: tokens per training window.
        batch_size: windows per step (per process).
        val_per_mille: share of files held out for validation, in 1/1000.
        val_windows: how many consecutive val windows one validation pass scores.
        seed: seeds the batch order.
        data_tag: use the cache folder of this name (e.g. "py311-v4096-val20", prepared on another
            machine and carried over) instead of the running Python's; it must exist.
    """

    card = DataCard("python-stdlib-code",
                    "the Python standard library source files installed with the interpreter",
                    PSF)

    def __init__(self, cache_dir: str = ".cache/stdlib_code", vocab_size: int = 4096, seq_len: int = 256,
                 batch_size: int = 32, val_per_mille: int = 20, val_windows: int = 64, seed: int = 0,
                 num_workers: int = 0, data_tag: str | None = None, debug: bool = False):
        super().__init__()
        self.cache_dir = Path(cache_dir)
        self.vocab_size, self.seq_len, self.batch_size = vocab_size, seq_len, batch_size
        self.val_per_mille, self.val_windows, self.seed = val_per_mille, val_windows, seed
        self.num_workers, self.data_tag = num_workers, data_tag
        self.debug = debug  # debug=fast: the first DEBUG_FILES files of the corpus, cached apart
        self.tokens: dict[str, np.ndarray] = {}

    @property
    def data_dir(self) -> Path:
        """One folder per (python version, vocab, split) so different settings never mix."""
        py = f"py{sys.version_info.major}{sys.version_info.minor}"
        name = self.data_tag or f"{py}-v{self.vocab_size}-val{self.val_per_mille}"
        return self.cache_dir / (name + "-debug" if self.debug else name)

    @property
    def tokenizer_path(self) -> Path:
        return self.data_dir / TOKENIZER_FILE

    def prepare_data(self) -> None:
        done = self.data_dir / "stats.json"
        if done.is_file():
            return
        if self.data_tag:
            raise FileNotFoundError(f"{self.data_dir}: no prepared corpus under data_tag={self.data_tag!r}; "
                                    f"build it on the CPU machine and carry .cache/stdlib_code over")
        with cache_lock(self.data_dir):
            if done.is_file():  # another process built it while this one waited
                return
            # built in a hidden folder and renamed in whole: a reader never meets a file being rewritten
            with atomic_dir(self.data_dir) as tmp:
                corpus = read_corpus(val_per_mille=self.val_per_mille, max_files=DEBUG_FILES if self.debug else None)
                tok = train_tokenizer(corpus["train"], self.vocab_size)
                stats = {"python": sys.version.split()[0], "vocab_size": self.vocab_size}
                for split, texts in corpus.items():
                    stream = encode_stream(tok, texts)
                    np.save(tmp / f"{split}.npy", stream)
                    n_bytes = sum(len(t.encode()) for t in texts)
                    stats[split] = {"files": len(texts), "tokens": int(len(stream)), "bytes": n_bytes,
                                    "bytes_per_token": n_bytes / len(stream)}
                tok.save(str(tmp / TOKENIZER_FILE))
                (tmp / "stats.json").write_text(json.dumps(stats, indent=2))

    def stats(self) -> dict:
        return json.loads((self.data_dir / "stats.json").read_text())

    def setup(self, stage: str | None = None) -> None:
        for split in ("train", "val"):
            if split not in self.tokens:
                self.tokens[split] = np.load(self.data_dir / f"{split}.npy", mmap_mode="r", allow_pickle=False)

    def train_dataloader(self) -> DataLoader:
        ds = TokenWindows(self.tokens["train"], self.seq_len)
        trainer = self.trainer
        sampler = StepBatchSampler(
            len(ds), self.batch_size, self.seed,
            start_step=trainer.global_step if trainer else 0,  # already restored when resuming
            rank=trainer.global_rank if trainer else 0, world_size=trainer.world_size if trainer else 1)
        return DataLoader(ds, batch_sampler=sampler, num_workers=self.num_workers)

    def val_windows_dataset(self) -> torch.utils.data.Subset:
        ds = TokenWindows(self.tokens["val"], self.seq_len)
        starts = list(range(0, len(ds), self.seq_len))[:self.val_windows]
        return torch.utils.data.Subset(ds, starts)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_windows_dataset(), batch_size=self.batch_size, shuffle=False)

    def pretrained_files(self) -> dict[str, Path]:
        """Files a checkpoint made from this data must carry."""
        return {TOKENIZER_FILE: self.tokenizer_path}
