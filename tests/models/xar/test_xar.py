"""xAR: partitions (round trips, masks), the network's block causality, NCL time draws, the KV cache,
the guidance ramp, the autoencoder loss, and the errors a user meets."""

import pytest
import torch

import zoo
from datamodules.digits import load_digits
from models.xar import KLAutoencoderLoss, NextXFlowMatching, Partition, next_x_sample
from models.xar.objective import guidance_ramp
from zoo.registry import create_model

ALL = [("token", 1), ("cell", 2), ("cell", 4), ("subsample", 2), ("subsample", 4), ("scale", 1), ("image", 1)]


def scrambled_net(kind: str, size: int, seed: int = 0):
    """A small xAR network with every weight random (adaLN-Zero and the small output layer would
    otherwise hide how tokens interact)."""
    torch.manual_seed(seed)
    net = create_model("xar-mnist", partition=kind, partition_size=size, dim=32, depth=2, num_heads=2).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.1)
    return net


@pytest.mark.parametrize("kind,size", ALL)
def test_partition_round_trip_is_exact(kind, size):
    p = Partition(kind, 8, size)
    z = torch.randn(3, 4, 8, 8)
    tokens = p.to_tokens(z)
    assert tokens.shape == (3, p.num_tokens, 4)
    assert torch.equal(p.from_tokens(tokens), z)
    assert p.entity_bounds[0][0] == 0 and p.entity_bounds[-1][1] == p.num_tokens
    assert (p.token_entity.diff() >= 0).all()  # laid out entity by entity


def test_partition_entities_are_what_their_names_say():
    z = torch.arange(64.0).view(1, 1, 8, 8)
    cell = Partition("cell", 8, 4)
    assert cell.num_entities == 4
    assert cell.to_tokens(z)[0, :16, 0].tolist() == [r * 8 + c for r in range(4) for c in range(4)]  # top-left cell
    sub = Partition("subsample", 8, 2)
    assert sub.to_tokens(z)[0, 16:32, 0].tolist() == [r * 8 + c for r in range(0, 8, 2) for c in range(1, 8, 2)]
    scale = Partition("scale", 8)
    assert [b - a for a, b in scale.entity_bounds] == [1, 4, 16, 64]
    assert scale.to_tokens(z)[0, 0, 0].item() == pytest.approx(z.mean().item())  # the 1x1 level is the mean
    assert Partition("token", 8).num_entities == 64 and Partition("image", 8).num_entities == 1


@pytest.mark.parametrize("kind,size,match", [("pixel", 1, "unknown X type"), ("cell", 3, "divides"),
                                             ("subsample", 0, "divides"), ("cell", 2.0, "divides")])
def test_a_bad_partition_is_refused(kind, size, match):
    with pytest.raises(ValueError, match=match):
        Partition(kind, 8, size)
    with pytest.raises(ValueError, match=match):
        create_model("xar-mnist", partition=kind, partition_size=size)


def test_masks():
    p = Partition("cell", 8, 4)
    m = p.block_causal_mask()
    assert m.shape == (64, 64) and m[:16, :16].all() and not m[:16, 16:].any() and m[63].all()
    tf = p.teacher_forcing_mask()
    assert tf.shape == (128, 128)
    noisy_second = tf[64 + 16]  # a noisy token of entity 1
    assert noisy_second[:16].all() and not noisy_second[16:64].any()  # clean entity 0 only, not clean entity 1
    assert noisy_second[80:96].all() and not noisy_second[64:80].any()  # its own noisy entity, not entity 0's


@pytest.mark.parametrize("kind,size", [("cell", 4), ("subsample", 2), ("scale", 1), ("token", 1)])
def test_an_entity_output_does_not_change_when_later_entities_change(kind, size):
    net = scrambled_net(kind, size)
    p = net.partition
    x = torch.randn(2, p.num_tokens, 4)
    t = torch.rand(2, p.num_tokens)
    labels = torch.tensor([3, 7])
    start, end = p.entity_bounds[1]
    changed = x.clone()
    changed[:, end:] = torch.randn_like(changed[:, end:])
    with torch.no_grad():
        a, b = net(x, t, labels), net(changed, t, labels)
    assert torch.allclose(a[:, :end], b[:, :end], atol=1e-6)
    assert not torch.allclose(a[:, end:], b[:, end:], atol=1e-3)  # later entities do see the change


def test_ncl_draws_one_time_per_entity_and_row():
    obj = NextXFlowMatching()
    t = obj.entity_times(64, 4, torch.Generator().manual_seed(0))
    assert t.shape == (64, 4) and ((t > 0) & (t < 1)).all()
    assert t.std(1).mean() > 0.1  # entities of a row get different times
    assert abs(t.mean().item() - 0.5) < 0.05  # logit-normal(0, 1) is symmetric about 1/2


def test_ncl_on_and_off_train_the_same_tokens_differently():
    net = scrambled_net("cell", 4)
    z, labels = torch.randn(4, 4, 8, 8), torch.tensor([0, 1, 2, 3])
    on = NextXFlowMatching(noisy_context=True, label_dropout=0.0).loss(net, z, labels, torch.Generator().manual_seed(0))
    off = NextXFlowMatching(noisy_context=False, label_dropout=0.0).loss(net, z, labels, torch.Generator().manual_seed(0))
    assert torch.isfinite(on.loss) and torch.isfinite(off.loss) and on.loss.item() != pytest.approx(off.loss.item())
    # with one entity there is no context: both are the same DiT loss
    dit = scrambled_net("image", 1)
    a = NextXFlowMatching(noisy_context=True).loss(dit, z, labels, torch.Generator().manual_seed(0)).loss
    b = NextXFlowMatching(noisy_context=False).loss(dit, z, labels, torch.Generator().manual_seed(0)).loss
    assert a.item() == pytest.approx(b.item(), rel=1e-5)


@pytest.mark.parametrize("kind,size", [("cell", 4), ("cell", 2), ("scale", 1), ("subsample", 4)])
def test_cached_sampling_equals_uncached(kind, size):
    net = scrambled_net(kind, size)
    labels = torch.tensor([1, 5])
    a = next_x_sample(net, labels, steps=3, guidance_scale=2.0, generator=torch.Generator().manual_seed(1))
    b = next_x_sample(net, labels, steps=3, guidance_scale=2.0, use_cache=False, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(a.latents, b.latents, atol=1e-5)
    assert a.nfe == net.partition.num_entities * 3 and a.ar_steps == net.partition.num_entities
    c = next_x_sample(net, labels, steps=3, guidance_scale=2.0, generator=torch.Generator().manual_seed(2))
    assert not torch.allclose(a.latents, c.latents)


@pytest.mark.parametrize("kind,size", [("cell", 4), ("scale", 1)])
def test_sampler_shortcuts_change_calls_not_latents(kind, size):
    """The fused cache pass and the batched guidance pair save network calls; the latents stay."""
    net = scrambled_net(kind, size)
    labels, e = torch.tensor([1, 5]), net.partition.num_entities
    runs = {name: next_x_sample(net, labels, steps=[3] + [2] * (e - 1), guidance_scale=2.0,
                                generator=torch.Generator().manual_seed(1), **kw)
            for name, kw in {"default": {}, "separate_cache_pass": {"fuse_cache_pass": False},
                             "two_guidance_passes": {"cfg_batched": False},
                             "neither": {"fuse_cache_pass": False, "cfg_batched": False}}.items()}
    for run in runs.values():
        assert torch.allclose(run.latents, runs["default"].latents, atol=1e-5)
        assert run.steps == [3] + [2] * (e - 1)
    flow = 3 + 2 * (e - 1)
    assert (runs["default"].nfe, runs["default"].cache_passes) == (flow, 0)
    assert (runs["separate_cache_pass"].nfe, runs["separate_cache_pass"].cache_passes) == (flow, e - 1)
    assert (runs["two_guidance_passes"].nfe, runs["two_guidance_passes"].cache_passes) == (2 * flow, 0)
    assert runs["neither"].net_calls == 2 * flow + 2 * (e - 1)


def test_step_schedule_matters_and_is_checked():
    net = scrambled_net("cell", 4)
    labels = torch.tensor([2])
    a = next_x_sample(net, labels, steps=[4, 1, 1, 1], generator=torch.Generator().manual_seed(0))
    b = next_x_sample(net, labels, steps=[1, 1, 1, 4], generator=torch.Generator().manual_seed(0))
    assert a.nfe == b.nfe == 7 and not torch.allclose(a.latents, b.latents)
    with pytest.raises(ValueError, match="one step count per entity"):
        next_x_sample(net, labels, steps=[2, 2])
    with pytest.raises(ValueError, match="steps"):
        next_x_sample(net, labels, steps=[2, 0, 2, 2])


def test_sampling_refuses_bad_steps():
    net = scrambled_net("cell", 4)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="steps"):
            next_x_sample(net, torch.tensor([1]), steps=bad)


def test_guidance_ramp():
    assert [guidance_ramp(4.0, k, 4, True) for k in range(4)] == [1.0, 2.0, 3.0, 4.0]
    assert guidance_ramp(3.0, 0, 4, False) == 3.0 and guidance_ramp(3.0, 0, 1, True) == 3.0


def test_autoencoder_learns_to_reconstruct_a_few_digits():
    torch.manual_seed(0)
    net = create_model("kl_ae-mnist", width=8)
    x = load_digits("mnist5k")[0][:8]
    objective = KLAutoencoderLoss()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    first = objective.loss(net, x, generator=torch.Generator().manual_seed(0)).metrics["bce"].item()
    for step in range(150):
        out = objective.loss(net, x, generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    pixel_entropy = torch.nn.functional.binary_cross_entropy(x.mean().expand_as(x), x).item()  # one grey for all
    assert out.metrics["bce"].item() < 0.6 * pixel_entropy < first
    assert net.encode(x).shape == (8, 4, 8, 8) and net.decode(net.encode(x)).shape == x.shape


@pytest.mark.parametrize("setting", [{"cfg_ramp": "no"}, {"cfg_ramp": 0}])
def test_a_switch_given_as_a_string_or_number_is_refused(setting):
    pipe = zoo.load("xar-mnist")
    with pytest.raises(ValueError, match="cfg_ramp"):
        pipe(class_labels=[1], steps=1, **setting)
    pipe.pipeline_kwargs["cfg_ramp"] = "no"  # a hand-edited config.json
    with pytest.raises(ValueError, match="cfg_ramp"):
        pipe(class_labels=[1], steps=1)
