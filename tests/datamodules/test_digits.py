"""The digit images read from installed wheels, their split and augmentation."""

import pytest
import torch

from datamodules.digits import DigitImages, digits_split, load_digits, shifted, split_digits


@pytest.mark.parametrize("source, n, side", [("mnist5k", 5000, 28), ("sklearn8x8", 1797, 8)])
def test_sources_load_from_installed_wheels(source, n, side):
    images, labels = load_digits(source)
    assert images.shape == (n, 1, side, side) and labels.shape == (n,)
    assert images.min() == 0 and images.max() == 1
    assert labels.unique().tolist() == list(range(10))


def test_mnist5k_has_500_of_each_digit():
    _, labels = load_digits("mnist5k")
    assert torch.bincount(labels).tolist() == [500] * 10


def test_split_is_stratified_disjoint_and_fixed_by_the_seed():
    _, labels = load_digits("sklearn8x8")
    a = split_digits(labels, 20, seed=0)
    assert len(set(a["train"].tolist()) & set(a["test"].tolist())) == 0
    assert len(a["train"]) + len(a["test"]) == len(labels)
    assert torch.bincount(labels[a["test"]]).tolist() == [20] * 10
    assert torch.equal(a["test"], split_digits(labels, 20, seed=0)["test"])
    assert not torch.equal(a["test"], split_digits(labels, 20, seed=1)["test"])
    with pytest.raises(ValueError, match="hold out"):
        split_digits(labels, 1000, seed=0)


def test_unknown_source_names_the_choices():
    with pytest.raises(ValueError, match="mnist5k"):
        load_digits("cifar")


def test_shifted_translates_with_zero_fill():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 1.0
    out = shifted(x, 1)
    assert out.shape == (9, 1, 5, 5)
    assert torch.equal(out[4], x[0])  # (dy, dx) = (0, 0) in the middle
    assert {tuple(torch.nonzero(o[0]).flatten().tolist()) for o in out} == {
        (r, c) for r in (1, 2, 3) for c in (1, 2, 3)}


def test_datamodule_batches():
    dm = DigitImages(source="sklearn8x8", batch_size=16, test_per_class=10, max_shift=1)
    dm.setup()
    train_images, _ = digits_split("sklearn8x8", "train", 10, 0)
    assert len(dm.data["train"]["x1"]) == 9 * len(train_images) and len(dm.data["test"]["x1"]) == 100
    batch = next(iter(dm.train_dataloader()))
    assert batch["x1"].shape == (16, 1, 8, 8) and batch["cond"].shape == (16,)
