"""Next-token prediction: the loss, exact likelihood, and KV-cache decoding against recomputation."""

import math

import pytest
import torch

from models.text_kit.network import TransformerLM
from zoo.objectives.autoregressive import NextTokenPrediction


def small_causal_lm():
    torch.manual_seed(0)
    return TransformerLM(vocab_size=40, dim=32, depth=2, num_heads=4, max_seq_len=64, causal=True).eval()


def test_loss_of_a_uniform_model_is_log_vocab():
    class Uniform(torch.nn.Module):
        def forward(self, x, t, cond=None, valid=None):
            return torch.zeros(*x.shape, 40)

    out = NextTokenPrediction().loss(Uniform(), torch.randint(0, 40, (2, 9)))
    assert out.loss.item() == pytest.approx(math.log(40))


def test_cached_greedy_decoding_equals_recomputing_the_whole_prefix():
    net = small_causal_lm()
    prompt = torch.randint(3, 40, (2, 5))
    out = NextTokenPrediction().sample(net, prompt=prompt, gen_length=10)
    x = prompt
    for _ in range(10):  # no cache: run the full sequence every step
        x = torch.cat([x, net(x)[:, -1].argmax(-1, keepdim=True)], 1)
    assert torch.equal(out.tokens, x) and out.nfe == 10


def test_left_padded_batch_decodes_like_each_prompt_alone():
    net = small_causal_lm()
    prompts = [[5, 6, 7, 8], [9, 10]]
    ids = torch.tensor([[5, 6, 7, 8], [0, 0, 9, 10]])
    valid = torch.tensor([[True] * 4, [False, False, True, True]])
    batched = NextTokenPrediction().sample(net, prompt=ids, prompt_valid=valid, gen_length=6).generated
    for i, p in enumerate(prompts):
        alone = NextTokenPrediction().sample(net, prompt=torch.tensor([p]), gen_length=6).generated
        assert torch.equal(batched[i], alone[0])


def test_stops_once_every_row_has_emitted_eos():
    class EosNow(torch.nn.Module):
        def forward(self, x, t, cond=None, valid=None, cache=None, update_cache=False):
            logits = torch.zeros(*x.shape, 40)
            logits[..., 1] = 9.0
            return logits

    out = NextTokenPrediction(eos_id=1).sample(EosNow(), prompt=torch.ones(3, 2, dtype=torch.long) * 7,
                                               gen_length=12)
    assert out.nfe == 1 and (out.generated == 1).all() and out.generated.shape == (3, 12)


def test_prompt_longer_than_the_context_is_refused():
    with pytest.raises(ValueError, match="context"):
        NextTokenPrediction().sample(small_causal_lm(), prompt=torch.ones(1, 60, dtype=torch.long),
                                     gen_length=8, max_seq_len=64)
