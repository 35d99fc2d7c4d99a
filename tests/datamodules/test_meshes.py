"""MeshCraft's procedural meshes, their quantised, ordered token form, decimation and cached splits."""

import numpy as np
import pytest
import torch

from datamodules.mesh_codec import CATEGORIES, LEVELS, canonical, from_tokens, quantize, to_tokens, unpadded
from datamodules.meshes import LengthGroupedBatchSampler, MeshDataModule, draw_mesh, make_shape, mesh_tokens, padded


def quantised_shape(category: str, seed: int):
    return from_tokens(draw_mesh(category, 800, np.random.default_rng(seed)))


def test_large_shapes_are_decimated_under_the_budget():
    rng = np.random.default_rng(0)
    big = next(m for m in (make_shape("lamp", rng) for _ in range(200)) if len(m.faces) > 1000)
    tokens = None
    while tokens is None:
        tokens = mesh_tokens(big, 300, rng)
    assert 0 < len(tokens) <= 300 and tokens.shape[1] == 9 and tokens.max() == LEVELS - 1


@pytest.mark.slow
def test_splits_are_cached_deterministic_and_disjoint(tmp_path):
    sizes = {"train": 3, "val": 1, "test": 2}
    a = MeshDataModule(per_category=sizes, max_faces=200, cache_dir=str(tmp_path), batch_size=4)
    a.setup()
    assert a.split_path("train").is_file()
    b = MeshDataModule(per_category=sizes, max_faces=200, cache_dir=str(tmp_path / "other"), batch_size=4)
    for split in ("train", "val", "test"):
        assert all(torch.equal(a.split(split)[k], b.split(split)[k]) for k in ("x1", "mask", "cond"))
    counts = a.split("train")["cond"][:, 1]
    assert counts.max() <= 200 and torch.equal(counts, a.split("train")["mask"].sum(1))
    assert a.split("train")["cond"][:, 0].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    train = {r.tobytes() for r in unpadded(a.split("train")["x1"], a.split("train")["mask"])}
    assert not train & {r.tobytes() for r in unpadded(a.split("test")["x1"], a.split("test")["mask"])}
    batch = next(iter(a.train_dataloader()))
    assert batch["x1"].shape == (4, 200, 9) and batch["cond"].shape == (4, 2)
    flat = a.load_split("val")
    assert torch.equal(padded(flat, 200)["x1"], a.split("val")["x1"])
    with pytest.raises(ValueError, match="exactly the splits"):
        MeshDataModule(per_category={"train": 1})


@pytest.mark.parametrize("category", CATEGORIES)
def test_shapes_are_canonical_and_in_the_face_budget(category):
    for seed in range(5):
        v, f = quantised_shape(category, seed)
        assert 10 <= len(f) <= 800
        assert v.min() >= 0 and v.max() < LEVELS and v.max() == LEVELS - 1  # the longest side spans the cube
        zyx = v[:, ::-1]
        assert all(tuple(a) < tuple(b) for a, b in zip(zyx[:-1], zyx[1:]))  # sorted (z, y, x), merged
        assert (f.argmin(1) == 0).all() and len({tuple(r) for r in f}) == len(f)
        assert [tuple(r) for r in f] == sorted(tuple(r) for r in f)
        assert len(np.unique(f)) == len(v)  # no unused vertex


def test_shapes_are_deterministic_from_the_seed_and_vary_with_it():
    a, b, c = (quantised_shape("chair", s) for s in (1, 1, 2))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not (len(a[0]) == len(c[0]) and np.array_equal(a[0], c[0]))


@pytest.mark.parametrize("category", CATEGORIES)
def test_codec_round_trip_is_exact(category):
    v, f = quantised_shape(category, 0)
    tokens = to_tokens(v, f)
    assert tokens.shape == (len(f), 9)
    v2, f2 = from_tokens(tokens)
    assert np.array_equal(v, v2) and np.array_equal(f, f2)


def test_canonical_drops_degenerate_and_duplicate_faces():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0], [5, 5, 5]])
    f = np.array([[0, 1, 2], [1, 2, 0], [0, 2, 3], [2, 1, 0]])  # a rotation, a degenerate (2 == 3), a flip
    v2, f2 = canonical(v, f)
    assert len(v2) == 3  # merged, and the unused (5, 5, 5) dropped
    assert f2.tolist() == [[0, 1, 2], [0, 2, 1]]  # the flipped face has the other orientation: kept


def test_unknown_category_names_the_choices():
    with pytest.raises(ValueError, match="chair"):
        make_shape("sofa", np.random.default_rng(0))


def test_length_grouped_batches_have_less_padding_and_are_fixed_by_the_step():
    lengths = torch.randint(1, 801, (500,), generator=torch.Generator().manual_seed(0))
    grouped = LengthGroupedBatchSampler(lengths, batch_size=8, seed=0, group=16)
    first = [b for _, b in zip(range(64), iter(grouped))]
    assert all(len(b) == 8 for b in first)
    # resumed at step 37, it serves the same batches as the uninterrupted run
    resumed = LengthGroupedBatchSampler(lengths, batch_size=8, seed=0, group=16, start_step=37)
    assert [b for _, b in zip(range(27), iter(resumed))] == first[37:]
    # a group's 16 batches are one draw cut by length: one of them holds only the longest meshes
    assert max(int(lengths[b].min()) for b in first[:16]) > 700
    padded_faces = lambda batches: sum(len(b) * int(lengths[b].max()) for b in batches)
    independent = [torch.randint(0, 500, (8,), generator=torch.Generator().manual_seed(s)).tolist() for s in range(64)]
    assert padded_faces(first) < 0.7 * padded_faces(independent)
    with pytest.raises(ValueError, match="group"):
        LengthGroupedBatchSampler(lengths, batch_size=8, seed=0, group=0)


@pytest.mark.slow
def test_a_split_is_the_same_byte_for_byte_with_one_worker_or_two():
    from datamodules.meshes import make_split

    one = make_split("val", 2, 60, seed=3, workers=1)
    two = make_split("val", 2, 60, seed=3, workers=2)
    assert set(one) == set(two) and all(torch.equal(one[k], two[k]) for k in one)
