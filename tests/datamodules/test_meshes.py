"""MeshCraft's procedural meshes and their quantised, ordered token form (issue 4, first part)."""

import numpy as np
import pytest

from datamodules.meshes import CATEGORIES, LEVELS, canonical, from_tokens, make_shape, quantize, to_tokens


def quantised_shape(category: str, seed: int):
    mesh = make_shape(category, np.random.default_rng(seed))
    return canonical(quantize(mesh.vertices), mesh.faces)


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
