"""The LLaMA / Qwen2 decoder family: config checks, the grouped-query KV cache, RoPE frequencies."""

import pytest
import torch

from zoo.nn import KVCache
from zoo.nn.decoder import DecoderConfig, DecoderLM, rope_inv_freq

SMALL = dict(vocab_size=50, dim=32, depth=2, num_heads=4, mlp_hidden=48, num_kv_heads=2)


@pytest.mark.parametrize("change,words", [({"num_kv_heads": 3}, "multiple of num_kv_heads"),
                                          ({"dim": 30}, "divisible"), ({"depth": 0}, "depth=0"),
                                          ({"causal": True, "shift": True}, "shift=True"),
                                          ({"rope_scaling": {"rope_type": "yarn", "factor": 4}}, "'yarn'")])
def test_impossible_configs_name_their_field(change, words):
    with pytest.raises(ValueError, match=words):
        DecoderConfig(**{**SMALL, **change})


def test_the_cache_holds_the_key_value_heads_and_continues_exactly():
    torch.manual_seed(0)
    net = DecoderLM(DecoderConfig(**SMALL, causal=True)).reset_parameters(std=0.2).eval()
    x = torch.randint(0, 50, (2, 10))
    cache = KVCache()
    with torch.no_grad():
        first = net(x[:, :6], cache=cache, update_cache=True)
        rest = torch.cat([net(x[:, i:i + 1], cache=cache, update_cache=True) for i in range(6, 10)], 1)
        whole = net(x)
    assert cache.layer(0)[0].shape == (2, 2, 10, 8)  # (B, G, S, D): 2 key/value heads for 4 query heads
    assert torch.allclose(torch.cat([first, rest], 1), whole, atol=1e-5)


def test_bidirectional_sees_later_tokens_and_causal_does_not():
    torch.manual_seed(0)
    for causal in (False, True):
        net = DecoderLM(DecoderConfig(**SMALL, causal=causal)).reset_parameters(std=0.2).eval()
        x = torch.randint(0, 50, (1, 8))
        y = x.clone()
        y[0, -1] = (x[0, -1] + 1) % 50
        with torch.no_grad():
            changed = (net(x)[0, 0] - net(y)[0, 0]).abs().max()
        assert (changed > 1e-4) == (not causal)


def test_rope_frequencies_default_and_linear():
    base = rope_inv_freq(8, 10000.0)
    assert torch.allclose(base, 10000.0 ** (-torch.arange(0, 8, 2).float() / 8))
    assert torch.allclose(rope_inv_freq(8, 10000.0, {"rope_type": "linear", "factor": 4.0}), base / 4)
