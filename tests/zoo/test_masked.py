"""Masked diffusion: exact-math tests with dummy networks whose outputs are known."""

import math

import pytest
import torch

from zoo.objectives import CosineSchedule, LinearSchedule, MaskedDiffusion, antithetic_times, masked_sample

V, MASK, EOS = 11, 10, 9


class UniformNet(torch.nn.Module):
    """Equal logits everywhere: the CE of any token is log(V - 1) once the mask logit is removed."""

    def forward(self, x, t, cond=None, valid=None):
        return torch.zeros(*x.shape, V)


class OracleNet(torch.nn.Module):
    """Puts (almost) all mass on the true tokens of a reference batch."""

    def __init__(self, truth):
        super().__init__()
        self.truth = truth

    def forward(self, x, t, cond=None, valid=None):
        return torch.nn.functional.one_hot(self.truth, V).float() * 50.0


class RuleNet(torch.nn.Module):
    """Deterministic, padding-aware toy LM. At answer position j (counted from each row's first
    valid token) it proposes (sum of visible valid tokens + 3 j) mod 9, with confidence rising
    along the row; padding and masks are ignored exactly as a real network must ignore them."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, t, cond=None, valid=None):
        self.calls.append(x.clone())
        valid = torch.ones_like(x, dtype=torch.bool) if valid is None else valid
        pos = (valid.long().cumsum(1) - 1).clamp(min=0)
        visible = valid & (x != MASK)
        total = torch.where(visible, x, torch.zeros_like(x)).sum(1, keepdim=True)
        token = (total + 3 * pos) % 9
        logits = torch.full((*x.shape, V), -5.0)
        logits.scatter_(-1, token[..., None], (1.0 + 0.1 * pos.float())[..., None])
        return logits


def test_schedules_follow_the_time_convention():
    t = torch.tensor([0.0, 1.0])
    for schedule in (LinearSchedule(), CosineSchedule()):
        assert schedule.kappa(t).tolist() == pytest.approx([0.0, 1.0])  # all-mask at 0, data at 1
        assert schedule.mask_prob(t).tolist() == pytest.approx([1.0, 0.0])
    s = torch.tensor([0.25, 0.5])
    assert LinearSchedule().loss_weight(s).tolist() == pytest.approx([1 / 0.75, 1 / 0.5])


def test_corruption_all_masked_at_t0_and_clean_at_t1():
    md = MaskedDiffusion(mask_id=MASK)
    x1 = torch.randint(0, 9, (4, 32))
    free = torch.ones_like(x1, dtype=torch.bool)
    xt, masked = md.corrupt(x1, torch.zeros(4), free)
    assert masked.all() and (xt == MASK).all()
    xt, masked = md.corrupt(x1, torch.ones(4), free)
    assert not masked.any() and torch.equal(xt, x1)


def test_fixed_and_padding_are_never_masked_nor_targets():
    md = MaskedDiffusion(mask_id=MASK)
    x1 = torch.randint(0, 9, (2, 8))
    fixed = torch.zeros_like(x1, dtype=torch.bool)
    fixed[:, :3] = True
    valid = torch.ones_like(x1, dtype=torch.bool)
    valid[1, -2:] = False
    _, free, _ = md._prepare(x1, fixed, valid)
    xt, masked = md.corrupt(x1, torch.zeros(2), free)
    assert torch.equal(xt[:, :3], x1[:, :3]) and torch.equal(xt[1, -2:], x1[1, -2:])
    assert masked.sum() == 2 * 5 - 2


def test_loss_equals_weighted_masked_cross_entropy():
    md = MaskedDiffusion(mask_id=MASK)
    x1 = torch.randint(0, 9, (4, 16))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    out = md.loss(UniformNet(), x1, generator=g1)
    t = antithetic_times(4, g2)
    _, masked = md.corrupt(x1, t, torch.ones_like(x1, dtype=torch.bool), g2)
    expected = (masked.sum(1) / (1 - t)).sum() * math.log(V - 1) / x1.numel()
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_eos_padding_mode_trains_on_pads_as_eos():
    md = MaskedDiffusion(mask_id=MASK, pad_mode="eos", eos_id=EOS)
    x1 = torch.randint(0, 9, (1, 6))
    valid = torch.tensor([[True] * 4 + [False] * 2])
    targets, free, attn_valid = md._prepare(x1, None, valid)
    assert targets[0, 4:].tolist() == [EOS, EOS] and free.all() and attn_valid is None


def test_antithetic_times_are_evenly_spread():
    t = antithetic_times(8, torch.Generator().manual_seed(0)).sort().values
    assert torch.allclose(t.diff(), torch.full((7,), 1 / 8), atol=1e-6)


def test_elbo_is_zero_for_an_oracle_and_exact_for_uniform():
    md = MaskedDiffusion(mask_id=MASK)
    x1 = torch.randint(0, 9, (3, 10))
    nll, n = md.elbo_nll(OracleNet(x1), x1, num_samples=4, generator=torch.Generator().manual_seed(0))
    assert n.tolist() == [10, 10, 10] and nll.max().item() < 1e-6
    nll, _ = md.elbo_nll(UniformNet(), x1, num_samples=4, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(nll, torch.full((3,), 10 * math.log(V - 1)), rtol=1e-5)


@pytest.mark.parametrize("policy", ["random", "low_confidence", "margin", "entropy", "threshold"])
def test_sampling_fills_every_mask_and_keeps_the_prompt(policy):
    prompt = torch.randint(0, 9, (2, 5))
    out = masked_sample(RuleNet(), mask_id=MASK, prompt=prompt, gen_length=8, block_length=4, steps=4,
                        policy=policy, generator=torch.Generator().manual_seed(0))
    assert not (out.tokens == MASK).any()
    assert torch.equal(out.tokens[:, :5], prompt)
    assert out.nfe >= 2


def test_low_confidence_spends_exactly_the_steps():
    out = masked_sample(RuleNet(), mask_id=MASK, batch_size=2, gen_length=12, block_length=4, steps=6)
    assert out.nfe == 6


def test_block_of_one_decodes_left_to_right():
    net = RuleNet()
    masked_sample(net, mask_id=MASK, prompt=torch.tensor([[1, 2]]), gen_length=6, block_length=1, steps=6)
    assert len(net.calls) == 6
    for k, x in enumerate(net.calls):  # call k sees answer positions < k decoded, the rest masked
        assert (x[0, 2:2 + k] != MASK).all() and (x[0, 2 + k:] == MASK).all()


def test_highest_confidence_commits_first():
    net = RuleNet()  # confidence rises with position: one block decodes right to left
    masked_sample(net, mask_id=MASK, batch_size=1, gen_length=4, steps=4)
    masked_counts = [(x[0] == MASK).tolist() for x in net.calls]
    assert masked_counts[1] == [True, True, True, False]
    assert masked_counts[2] == [True, True, False, False]


def test_same_generator_same_sample():
    kwargs = dict(mask_id=MASK, batch_size=3, gen_length=8, steps=4, policy="random", temperature=1.0)
    a = masked_sample(RuleNet(), generator=torch.Generator().manual_seed(7), **kwargs).tokens
    b = masked_sample(RuleNet(), generator=torch.Generator().manual_seed(7), **kwargs).tokens
    c = masked_sample(RuleNet(), generator=torch.Generator().manual_seed(8), **kwargs).tokens
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_batched_left_padded_prompts_match_each_prompt_alone():
    prompts = [[1, 2, 3, 4, 5], [6, 7], [8, 1, 2]]
    width = max(map(len, prompts))
    ids = torch.zeros(3, width, dtype=torch.long)
    valid = torch.zeros(3, width, dtype=torch.bool)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p)
        valid[i, width - len(p):] = True
    kwargs = dict(mask_id=MASK, gen_length=8, block_length=4, steps=8)
    batched = masked_sample(RuleNet(), prompt=ids, prompt_valid=valid, **kwargs).generated
    for i, p in enumerate(prompts):
        alone = masked_sample(RuleNet(), prompt=torch.tensor([p]), **kwargs).generated
        assert torch.equal(batched[i], alone[0])


def test_threshold_commits_all_confident_tokens_in_one_step_per_block():
    class Confident(torch.nn.Module):
        def forward(self, x, t, cond=None, valid=None):
            return torch.nn.functional.one_hot(torch.full_like(x, 4), V).float() * 30.0

    out = masked_sample(Confident(), mask_id=MASK, batch_size=2, gen_length=12, block_length=4,
                        policy="threshold", threshold=0.9)
    assert out.nfe == 3 and (out.generated == 4).all()
    # RuleNet's confidences lie below 0.99: exactly one token per step, the most confident.
    out = masked_sample(RuleNet(), mask_id=MASK, batch_size=1, gen_length=4, policy="threshold", threshold=0.99)
    assert out.nfe == 4


def test_policies_rank_positions_by_their_own_measure():
    probs = torch.full((1, 2, V), 1e-9)
    probs[0, 0, :2] = torch.tensor([0.6, 0.4])  # X: top-1 0.6, margin 0.2, entropy 0.67
    probs[0, 1, 0], probs[0, 1, 1:9] = 0.5, 0.0625  # Y: top-1 0.5, margin 0.44, entropy 1.73

    class Fixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.calls = []

        def forward(self, x, t, cond=None, valid=None):
            self.calls.append(x.clone())
            return probs.log()

    expected_first = {"low_confidence": 0, "entropy": 0, "margin": 1}
    for policy, first in expected_first.items():
        net = Fixed()
        masked_sample(net, mask_id=MASK, batch_size=1, gen_length=2, steps=2, policy=policy)
        assert (net.calls[1][0] != MASK).nonzero().flatten().tolist() == [first], policy


def test_a_policy_object_decides_order_and_count():
    from zoo.objectives import Policy

    class LeftToRight(Policy):  # the first masked position first, one a step (RuleNet favours the last)
        def score(self, logits, x0, generator):
            return -torch.arange(x0.shape[1], dtype=torch.float).expand(x0.shape)

    class AllAtOnce(Policy):  # adaptive: every masked position in the block's first step
        adaptive = True

        def score(self, logits, x0, generator):
            return torch.zeros(x0.shape)

        def commit(self, score, candidates, k):
            return candidates

    net = RuleNet()
    masked_sample(net, mask_id=MASK, batch_size=1, gen_length=3, steps=3, policy=LeftToRight())
    assert [(c[0] != MASK).nonzero().flatten().tolist() for c in net.calls] == [[], [0], [0, 1]]
    out = masked_sample(RuleNet(), mask_id=MASK, batch_size=2, gen_length=8, block_length=4, policy=AllAtOnce())
    assert out.nfe == 2 and (out.generated != MASK).all()


def test_infilling_keeps_given_tokens():
    x_init = torch.tensor([[MASK, 5, MASK, 6, MASK, MASK]])
    out = masked_sample(RuleNet(), mask_id=MASK, x_init=x_init, gen_length=6, steps=4)
    assert out.generated[0, 1] == 5 and out.generated[0, 3] == 6 and not (out.generated == MASK).any()
    assert out.nfe == 4


def test_eos_fill_ends_decoding_early():
    class EosFirst(torch.nn.Module):
        def forward(self, x, t, cond=None, valid=None):
            logits = torch.zeros(*x.shape, V)
            logits[:, 0, EOS] = 20.0  # the first answer token is a confident EOS
            return logits

    out = masked_sample(EosFirst(), mask_id=MASK, batch_size=2, gen_length=16, block_length=4, steps=16,
                        eos_id=EOS, eos_fill=True)
    assert out.nfe == 1 and (out.generated == EOS).all()


class EosFlood(torch.nn.Module):
    """Answer positions 0-2 hold tokens 1-3 (top-1 probability 0.67), EOS is near-certain from position
    3 on; once any EOS is in the sequence, positions 0-2 predict EOS too (an EOS-padded model's flood)."""

    def forward(self, x, t, cond=None, valid=None):
        logits = torch.zeros(*x.shape, V)
        body = torch.arange(x.shape[1]) < 3
        logits[:, ~body, EOS] = 10.0
        for row, flooded in enumerate((x == EOS).any(1)):
            if flooded:
                logits[row, body, EOS] = 10.0
            else:
                logits[row, body, 1 + torch.arange(3)] = 3.0
        return logits


@pytest.mark.parametrize("policy", ["low_confidence", "threshold"])
def test_defer_eos_ends_the_answer_where_the_text_before_it_is_decided(policy):
    kwargs = dict(mask_id=MASK, batch_size=2, gen_length=8, steps=8, policy=policy, eos_id=EOS, eos_fill=True)
    flooded = masked_sample(EosFlood(), **kwargs).generated
    assert (flooded == EOS).all()  # the far, confident EOS go first and the body never gets written
    out = masked_sample(EosFlood(), defer_eos=True, **kwargs)
    assert out.generated.tolist() == [[1, 2, 3] + [EOS] * 5] * 2
    assert out.nfe == 4  # three body tokens, then the EOS at the first masked position and the fill
    with pytest.raises(ValueError, match="defer_eos"):
        masked_sample(EosFlood(), mask_id=MASK, batch_size=1, gen_length=8, steps=8, defer_eos=True)
    with pytest.raises(ValueError, match="defer_eos='yes'"):
        masked_sample(EosFlood(), **{**kwargs, "defer_eos": "yes"})


@pytest.mark.parametrize("kwargs, words", [
    (dict(gen_length=10, block_length=4, steps=10), "block_length"),
    (dict(gen_length=8, steps=0), "steps"),
    (dict(gen_length=8, block_length=2, steps=3), "blocks"),
    (dict(gen_length=8, steps=9), "steps"),
    (dict(gen_length=8, steps=8, policy="greedy"), "policy"),
    (dict(gen_length=8, steps=8, temperature=-1.0), "temperature"),
    (dict(gen_length=8, steps=8, max_seq_len=10), "context"),
])
def test_impossible_arguments_raise_clear_errors(kwargs, words):
    with pytest.raises(ValueError, match=words):
        masked_sample(RuleNet(), mask_id=MASK, prompt=torch.ones(1, 5, dtype=torch.long), **kwargs)


def test_a_policy_that_commits_nothing_stops_with_an_error_instead_of_looping():
    from zoo.objectives import Policy

    class Never(Policy):
        adaptive = True

        def score(self, logits, x0, generator):
            return torch.zeros(x0.shape)

        def commit(self, score, candidates, k):
            return torch.zeros_like(candidates)

    with pytest.raises(RuntimeError, match="left masked tokens"):
        masked_sample(RuleNet(), mask_id=MASK, batch_size=1, gen_length=4, policy=Never())


@pytest.mark.parametrize("bad", [torch.full((1, 4), 2.0), torch.tensor([[-5, 2, 2, 2]]), torch.tensor([[10**6, 2, 2, 2]])],
                         ids=["float", "negative", "outside the vocabulary"])
def test_x_init_must_hold_token_ids_of_the_vocabulary(bad):
    class Sized(RuleNet):
        vocab_size = 8

    with pytest.raises(ValueError, match="x_init"):
        masked_sample(Sized(), mask_id=MASK, x_init=bad, gen_length=4, steps=4)
