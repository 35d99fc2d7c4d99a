"""AR-to-diffusion adaptation: a shifted network (logit at i predicts token i + 1) and attention
annealing, honoured by the masked objective, its ELBO, the sampler and the caches."""

import math
from types import SimpleNamespace

import pytest
import torch

from models.text_kit.network import TransformerLM
from zoo.callbacks import AttentionAnnealing
from zoo.objectives import MaskedDiffusion, masked_sample

V, MASK = 40, 2


def twins(depth=2):
    """(causal AR net, bidirectional shifted net with the same weights)."""
    torch.manual_seed(0)
    ar = TransformerLM(V, 32, depth, 4, 64, causal=True).eval()
    adapted = TransformerLM(V, 32, depth, 4, 64, shift=True).eval()
    adapted.load_state_dict(ar.state_dict())
    return ar, adapted


def test_annealing_at_zero_reproduces_the_ar_models_next_token_logits_exactly():
    ar, adapted = twins()
    x = torch.randint(3, V, (2, 12), generator=torch.Generator().manual_seed(1))
    adapted.future_visibility = 0.0
    assert torch.equal(adapted(x), ar(x))
    # the objective reads them realigned: position i + 1's logits are the AR model's at i
    aligned = MaskedDiffusion(MASK).logits(adapted, x, torch.ones(2))
    expected = ar(x)[:, :-1].float()
    expected[..., MASK] = -torch.inf
    assert torch.equal(aligned[:, 1:], expected)
    adapted.future_visibility = 1.0  # full attention: later tokens now matter, so the logits differ
    assert not torch.allclose(adapted(x), ar(x), atol=1e-4)


def test_annealed_attention_sees_later_tokens_only_once_visibility_grows():
    _, net = twins()
    x = torch.randint(3, V, (1, 16), generator=torch.Generator().manual_seed(2))
    changed = x.clone()
    changed[0, -1] = (x[0, -1] + 1 - 3) % (V - 3) + 3  # another last token
    for visibility, moves in ((0.0, False), (1.0, True)):
        net.future_visibility = visibility
        earlier = (net(x) - net(changed))[0, :-1].abs().max()
        assert (earlier > 1e-5) == moves
    net.future_visibility = 0.5  # a fresh random half of the later keys at every call
    torch.manual_seed(3)
    first, second = net(x), net(x)
    assert not torch.allclose(first, second)


class ShiftedOracle(torch.nn.Module):
    """Knows the reference batch; at position i it is sure of token i + 1, and says so (shift=True)."""

    def __init__(self, truth):
        super().__init__()
        self.truth, self.shift = truth, True

    def forward(self, x, t, cond=None, valid=None):
        target = torch.cat([self.truth[:, 1:], self.truth[:, -1:]], 1)
        return torch.nn.functional.one_hot(target[:, :x.shape[1]], V).float() * 50.0


def test_the_elbo_and_loss_read_a_shifted_network_one_position_to_the_left():
    truth = torch.randint(3, V, (3, 10), generator=torch.Generator().manual_seed(4))
    md = MaskedDiffusion(MASK)
    nll, n_free = md.elbo_nll(ShiftedOracle(truth), truth, generator=torch.Generator().manual_seed(0))
    assert torch.all(n_free == 9)  # position 0: nothing predicts it, so it is never masked
    assert nll.max() < 1e-6
    misread = ShiftedOracle(truth)
    misread.shift = False  # the same outputs read as unshifted: the targets no longer line up
    nll, _ = md.elbo_nll(misread, truth, generator=torch.Generator().manual_seed(0))
    assert nll.min() > 10 * math.log(2)
    loss = md.loss(ShiftedOracle(truth), truth, generator=torch.Generator().manual_seed(0))
    assert loss.loss < 1e-6


def test_the_sampler_decodes_a_shifted_oracle_exactly():
    truth = torch.randint(3, V, (2, 16), generator=torch.Generator().manual_seed(5))
    oracle = ShiftedOracle(truth)
    out = masked_sample(oracle, mask_id=MASK, prompt=truth[:, :4], gen_length=12, block_length=4, steps=12)
    assert torch.equal(out.tokens, truth)
    oracle.shift = False  # read at the wrong offset, every answer token is its right neighbour's
    out = masked_sample(oracle, mask_id=MASK, prompt=truth[:, :4], gen_length=12, block_length=4, steps=12)
    assert torch.equal(out.tokens[:, 4:-1], truth[:, 5:])


@pytest.mark.parametrize("cache", ["prefix", "dual"])
def test_caches_refreshed_every_step_equal_the_uncached_shifted_decode(cache):
    _, net = twins(depth=3)
    prompt = torch.tensor([[5, 6, 7, 8, 9], [0, 0, 11, 12, 13]])
    valid = torch.tensor([[True] * 5, [False, False, True, True, True]])
    kw = dict(mask_id=MASK, prompt=prompt, prompt_valid=valid, gen_length=12, block_length=4, steps=12,
              temperature=1.0, policy="random")
    plain = masked_sample(net, generator=torch.Generator().manual_seed(0), **kw)
    cached = masked_sample(net, generator=torch.Generator().manual_seed(0), cache=cache, refresh_every=1, **kw)
    assert torch.equal(plain.tokens, cached.tokens)
    other = masked_sample(net, generator=torch.Generator().manual_seed(1), **kw)
    assert not torch.equal(plain.tokens, other.tokens)


def test_the_first_answer_token_comes_from_the_prompts_last_position():
    _, net = twins(depth=1)
    prompt = torch.tensor([[5, 6, 7, 8]])
    out = masked_sample(net, mask_id=MASK, prompt=prompt, gen_length=1, steps=1)
    logits = net(torch.tensor([[5, 6, 7, 8, MASK]]))[0, 3]
    logits[MASK] = -torch.inf
    assert out.tokens[0, 4] == logits.argmax()


def test_bad_shift_settings_raise():
    _, net = twins(depth=1)
    with pytest.raises(ValueError, match="prompt"):
        masked_sample(net, mask_id=MASK, batch_size=2, gen_length=4, steps=4)
    with pytest.raises(ValueError, match="shift"):
        TransformerLM(V, 32, 1, 4, 64, causal=True, shift=True)


def test_attention_annealing_goes_from_causal_to_full_and_ends_full():
    _, net = twins(depth=1)
    module = SimpleNamespace(net=net)
    anneal = AttentionAnnealing(steps=100)
    anneal.on_fit_start(None, module)
    seen = []
    for step in (0, 25, 100, 150):
        anneal.on_train_batch_start(SimpleNamespace(global_step=step), module, None, 0)
        seen.append(net.future_visibility)
    assert seen == [0.0, 0.25, 1.0, 1.0]
    net.future_visibility = 0.3
    anneal.on_fit_end(None, module)
    assert net.future_visibility == 1.0
    with pytest.raises(ValueError, match="future_visibility"):
        anneal.on_fit_start(None, SimpleNamespace(net=torch.nn.Linear(2, 2)))
    with pytest.raises(ValueError, match="anneal_attention_steps"):
        AttentionAnnealing(steps=0)
