"""The noise-to-token flow map: deterministic, and its token frequencies follow p."""

import pytest
import torch

from models.distilled_decoding.flow_map import flow_map, posterior_weights


def setup(k=6, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    codebook = torch.nn.functional.normalize(torch.randn(k, d, generator=g), dim=-1)  # l2-normalised
    p = torch.softmax(torch.randn(k, generator=g) * 1.5, -1)
    return codebook, p


def test_token_frequencies_match_p():
    codebook, p = setup()
    n = 20000
    noise = torch.randn(n, 4, generator=torch.Generator().manual_seed(1))
    tokens, _ = flow_map(noise, p.expand(n, -1), codebook, steps=64)
    freq = torch.bincount(tokens, minlength=6).double() / n
    tv = 0.5 * (freq - p.double()).abs().sum().item()
    assert tv <= 0.03, (freq, p)


def test_map_is_deterministic_and_lands_on_codebook_vectors():
    codebook, p = setup()
    noise = torch.randn(500, 4, generator=torch.Generator().manual_seed(2))
    a, end_a = flow_map(noise, p.expand(500, -1), codebook, steps=32)
    b, end_b = flow_map(noise, p.expand(500, -1), codebook, steps=32)
    assert torch.equal(a, b) and torch.equal(end_a, end_b)
    assert torch.allclose(end_a, codebook[a], atol=1e-3)


def test_a_certain_distribution_always_gives_its_token():
    codebook, _ = setup()
    p = torch.zeros(100, 6)
    p[:, 3] = 1.0
    tokens, _ = flow_map(torch.randn(100, 4), p, codebook, steps=8)
    assert (tokens == 3).all()


def test_posterior_at_t0_is_the_prior():
    codebook, p = setup()
    w = posterior_weights(torch.randn(5, 4).double(), 0.0, codebook.double(), p.double().log().expand(5, -1))
    assert torch.allclose(w, p.double().expand(5, -1))


def test_shapes_are_checked():
    codebook, p = setup()
    with pytest.raises(ValueError, match="dimension"):
        flow_map(torch.randn(3, 5), p.expand(3, -1), codebook)
    with pytest.raises(ValueError, match="probs"):
        flow_map(torch.randn(3, 4), p[None], codebook)
