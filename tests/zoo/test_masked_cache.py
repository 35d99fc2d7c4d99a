"""Fast-dLLM caching in the masked sampler: exact where it must be, and the same budget."""

import pytest
import torch

from models.text_kit.network import TransformerLM
from zoo.nn import KVCache
from zoo.objectives import masked_sample

V, MASK = 40, 2


def lm(depth, causal=False):
    torch.manual_seed(0)
    return TransformerLM(vocab_size=V, dim=32, depth=depth, num_heads=4, max_seq_len=64, causal=causal).eval()


def padded_prompts():
    ids = torch.tensor([[5, 6, 7, 8, 9], [0, 0, 11, 12, 13]])
    valid = torch.tensor([[True] * 5, [False, False, True, True, True]])
    return ids, valid


KW = dict(mask_id=MASK, gen_length=12, block_length=4, steps=12)


@pytest.mark.parametrize("cache", ["prefix", "dual"])
def test_one_layer_caches_are_exact(cache):
    # With one layer, a position's keys and values depend on its own token alone, and tokens outside
    # the current block do not change during it: the cached decode must equal the uncached one.
    net = lm(depth=1)
    ids, valid = padded_prompts()
    plain = masked_sample(net, prompt=ids, prompt_valid=valid, **KW)
    cached = masked_sample(net, prompt=ids, prompt_valid=valid, cache=cache, **KW)
    assert torch.equal(plain.tokens, cached.tokens) and plain.nfe == cached.nfe == 12


@pytest.mark.parametrize("cache", ["prefix", "dual"])
def test_cache_refreshed_every_step_equals_uncached(cache):
    net = lm(depth=3)
    ids, valid = padded_prompts()
    kwargs = dict(prompt=ids, prompt_valid=valid, temperature=1.0, policy="random", **KW)
    plain = masked_sample(net, generator=torch.Generator().manual_seed(0), **kwargs)
    cached = masked_sample(net, generator=torch.Generator().manual_seed(0), cache=cache, refresh_every=1, **kwargs)
    assert torch.equal(plain.tokens, cached.tokens)


def test_cached_block_logits_match_a_full_pass_when_nothing_changed():
    net = lm(depth=3)
    ids, valid = padded_prompts()
    x = torch.cat([ids, torch.full((2, 8), MASK)], 1)
    valid = torch.cat([valid, torch.ones(2, 8, dtype=torch.bool)], 1)
    full_cache = KVCache()
    full = net(x, valid=valid, cache=full_cache, update_cache=True)
    lo, hi = 5, 9
    prefix = full_cache.select(torch.arange(lo))
    assert torch.allclose(net(x[:, lo:], valid=valid, cache=prefix)[:, :hi - lo], full[:, lo:hi], atol=1e-5)
    dual = full_cache.select(torch.cat([torch.arange(lo), torch.arange(hi, 13)]))
    key_valid = torch.cat([valid[:, :lo], valid[:, hi:], valid[:, lo:hi]], 1)
    positions = (valid.long().cumsum(1) - 1).clamp(min=0)[:, lo:hi]
    assert torch.allclose(net(x[:, lo:hi], valid=key_valid, cache=dual, positions=positions), full[:, lo:hi],
                          atol=1e-5)


def test_dual_cache_refuses_a_causal_network():
    with pytest.raises(ValueError, match="bidirectional"):
        masked_sample(lm(depth=1, causal=True), batch_size=1, cache="dual", **KW)


def test_a_dual_cache_object_is_refused_on_a_causal_network_too():
    from zoo.objectives import DualCache

    with pytest.raises(ValueError, match="bidirectional"):
        masked_sample(lm(depth=1, causal=True), batch_size=1, cache=DualCache(), **KW)
