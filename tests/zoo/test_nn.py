"""Shared layers: RoPE, attention masks, the KV cache, adaLN-Zero."""

import pytest
import torch

from models.text_kit.network import TransformerLM
from zoo.nn import KVCache, TimestepEmbedding, TransformerBlock, apply_rope, attention_mask, rope_tables


def test_rope_scores_depend_only_on_relative_position():
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def score(pq, pk):
        cq, sq = rope_tables(torch.tensor([pq]), 8)
        ck, sk = rope_tables(torch.tensor([pk]), 8)
        return (apply_rope(q, cq, sq) * apply_rope(k, ck, sk)).sum()

    assert torch.allclose(score(3, 1), score(10, 8), atol=1e-5)
    assert not torch.allclose(score(3, 1), score(3, 2), atol=1e-3)


def test_attention_mask_is_causal_hides_padding_and_never_empties_a_row():
    valid = torch.tensor([[False, True, True]])
    mask = attention_mask(valid, 3, 3, causal=True)[0, 0]
    assert mask.tolist() == [[True, False, False], [False, True, False], [False, True, True]]
    assert attention_mask(None, 3, 3, causal=False) is None


def test_kv_cache_decoding_equals_the_full_causal_forward():
    torch.manual_seed(0)
    net = TransformerLM(vocab_size=50, dim=32, depth=2, num_heads=4, max_seq_len=32, causal=True).eval()
    x = torch.randint(0, 50, (2, 10))
    full = net(x)
    cache = KVCache()
    steps = [net(x[:, :4], cache=cache, update_cache=True)]  # prefill, then one token at a time
    steps += [net(x[:, i:i + 1], cache=cache, update_cache=True) for i in range(4, 10)]
    assert cache.length == 10
    assert torch.allclose(torch.cat(steps, 1), full, atol=1e-5)


def test_cache_read_without_update_leaves_the_prefix_alone():
    torch.manual_seed(0)
    net = TransformerLM(vocab_size=50, dim=32, depth=2, num_heads=4, max_seq_len=32, causal=False).eval()
    x = torch.randint(0, 50, (1, 12))
    cache = KVCache()
    net(x[:, :8], cache=cache, update_cache=True)
    a = net(x[:, 8:], cache=cache)
    b = net(x[:, 8:], cache=cache)
    assert cache.length == 8 and torch.equal(a, b)


def test_left_padding_does_not_change_a_sequence_logits():
    torch.manual_seed(0)
    net = TransformerLM(vocab_size=50, dim=32, depth=2, num_heads=4, max_seq_len=32).eval()
    x = torch.randint(3, 50, (1, 6))
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), x], 1)
    valid = torch.tensor([[False] * 3 + [True] * 6])
    assert torch.allclose(net(padded, valid=valid)[:, 3:], net(x), atol=1e-5)


def test_adaln_zero_block_starts_as_the_identity():
    block = TransformerBlock(dim=16, num_heads=2, cond_dim=8)
    x, c = torch.randn(2, 5, 16), torch.randn(2, 8)
    assert torch.equal(block(x, c), x)
    assert TimestepEmbedding(16)(torch.rand(3)).shape == (3, 16)


def test_kv_cache_appends_in_place_and_grows_by_doubling():
    cache, keys = KVCache(), []
    for length in [5, 1, 1, 3, 1, 1, 1, 1, 9]:
        k = torch.randn(2, 3, length, 4)
        keys.append(k)
        got_k, got_v = cache.append(1, k, -k)
        assert torch.equal(got_k, torch.cat(keys, 2)) and torch.equal(got_v, -torch.cat(keys, 2))
    assert cache.layer(0) == (None, None) and cache.lengths[1] == 23
    capacity = cache.buffers[1][0].shape[2]
    assert 23 <= capacity < 2 * 23  # doubling: a token's append copies one token, not the whole cache
    kept = cache.select(torch.tensor([0, 22]))
    assert torch.equal(kept.layer(1)[0], torch.cat(keys, 2)[:, :, [0, 22]])
    rows = cache.select_rows(torch.tensor([1]))
    assert torch.equal(rows.layer(1)[1], -torch.cat(keys, 2)[1:]) and rows.layer(0) == (None, None)
    rows.append(1, torch.randn(1, 3, 1, 4), torch.randn(1, 3, 1, 4))  # the new cache grows on its own
    assert rows.lengths[1] == 24 and cache.lengths[1] == 23
    cache.truncate(20)  # drops the last keys; the next append writes over them
    assert cache.lengths[1] == 20 and torch.equal(cache.layer(1)[0], torch.cat(keys, 2)[:, :, :20])
    k = torch.randn(2, 3, 2, 4)
    assert torch.equal(cache.append(1, k, k)[0], torch.cat([torch.cat(keys, 2)[:, :, :20], k], 2))
    with pytest.raises(ValueError, match="truncate"):
        cache.truncate(30)


def test_bidirectional_blocks_ignore_padding_and_see_the_whole_set():
    from zoo.nn import TransformerBlock, bidirectional_blocks

    torch.manual_seed(0)
    blocks = torch.nn.ModuleList(TransformerBlock(16, 2) for _ in range(2)).eval()
    h = torch.randn(1, 5, 16)
    mask = torch.tensor([[True, True, True, False, False]])
    other = h.clone()
    other[:, 3:] = torch.randn(1, 2, 16)  # new padding content
    out = bidirectional_blocks(blocks, h, 8, mask)
    assert torch.allclose(out[:, :3], bidirectional_blocks(blocks, other, 8, mask)[:, :3], atol=1e-6)
    later = h.clone()
    later[:, 2] = torch.randn(16)  # a later real element changes an earlier one's output: no causal mask
    assert not torch.allclose(out[:, 0], bidirectional_blocks(blocks, later, 8, mask)[:, 0], atol=1e-4)
