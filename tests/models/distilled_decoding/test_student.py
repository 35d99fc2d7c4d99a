"""Pairs, the student and the naive parallel baseline of models/distilled_decoding."""

import pytest
import torch

import zoo
from models.distilled_decoding import DistillationLoss, MarginalFit
from models.distilled_decoding.pairs import generate_pairs

L, K, D = 6, 16, 4


def tiny(name: str, **kw):
    torch.manual_seed(0)
    return zoo.create_model(name, num_codes=K, seq_len=L, **kw).eval()


def teacher_and_codebook():
    teacher = tiny("image_ar-mnist", dim=32, depth=2, num_heads=2)
    codebook = torch.nn.functional.normalize(torch.randn(K, D, generator=torch.Generator().manual_seed(1)), dim=-1)
    return teacher, codebook


def test_pairs_are_deterministic_and_causal():
    teacher, codebook = teacher_and_codebook()
    noise = torch.randn(64, L, D, generator=torch.Generator().manual_seed(2))
    labels = torch.arange(64) % 10
    tokens = generate_pairs(teacher, codebook, noise, labels, guidance_scale=2.0, ode_steps=16)
    assert tokens.shape == (64, L)
    assert torch.equal(tokens, generate_pairs(teacher, codebook, noise, labels, guidance_scale=2.0, ode_steps=16))
    # Token i depends only on the noise up to i: new noise from position 3 on leaves tokens 0..2 alone ...
    changed = noise.clone()
    changed[:, 3:] = torch.randn(64, L - 3, D, generator=torch.Generator().manual_seed(3))
    other = generate_pairs(teacher, codebook, changed, labels, guidance_scale=2.0, ode_steps=16)
    assert torch.equal(other[:, :3], tokens[:, :3])
    assert not torch.equal(other[:, 3:], tokens[:, 3:])  # ... and does change what comes after


def test_pairs_reject_noise_of_the_wrong_shape():
    teacher, codebook = teacher_and_codebook()
    with pytest.raises(ValueError, match="expected"):
        generate_pairs(teacher, codebook, torch.randn(2, L + 1, D), torch.tensor([1, 2]))


def student():
    return tiny("distilled_decoding-mnist", dim=32, depth=2, num_heads=2, code_dim=D)


def test_student_output_j_sees_noise_up_to_j_only():
    net = student()
    torch.nn.init.normal_(net.noise_proj.weight)  # the zero init would hide any dependence
    noise = torch.randn(2, L, D)
    labels = torch.tensor([3, 7])
    changed = noise.clone()
    changed[:, 4] += 1.0
    a, b = net(noise, None, labels), net(changed, None, labels)
    assert torch.allclose(a[:, :4], b[:, :4], atol=1e-6) and not torch.allclose(a[:, 4], b[:, 4])


def test_two_steps_keep_the_first_steps_prefix():
    net = student()
    torch.nn.init.normal_(net.noise_proj.weight)
    torch.nn.init.normal_(net.flag_emb.weight)
    noise, labels = torch.randn(4, L, D), torch.tensor([0, 1, 2, 3])
    one = DistillationLoss().sample(net, noise, labels, steps=1)
    two = DistillationLoss().sample(net, noise, labels, steps=2, keep=2)
    assert one.nfe == 1 and two.nfe == 2
    assert torch.equal(two.tokens[:, :2], one.tokens[:, :2])
    # The second pass equals a pass told the first two tokens.
    second = net(noise, None, labels, known=one.tokens, num_known=2).argmax(-1)
    assert torch.equal(two.tokens[:, 2:], second[:, 2:])
    for bad in ({"steps": 3}, {"steps": 2, "keep": 0}, {"steps": 2, "keep": L}):
        with pytest.raises(ValueError):
            DistillationLoss().sample(net, noise, labels, **bad)


# Regression alone learns slower: codes close together on the sphere pull the expectation between them.
@pytest.mark.parametrize("loss_type, accuracy", [("ce", 0.9), ("l2", 0.5), ("ce+l2", 0.9)])
def test_each_loss_fits_a_batch_of_pairs(loss_type, accuracy):
    net = student().train()
    net.codebook.copy_(torch.nn.functional.normalize(torch.randn(K, D), dim=-1))
    noise, x1, cond = torch.randn(32, L, D), torch.randint(0, K, (32, L)), torch.arange(32) % 10
    objective = DistillationLoss(loss_type, two_step_fraction=0.5)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for step in range(150):
        out = objective.loss(net, noise, x1, cond, torch.Generator().manual_seed(step))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    assert out.metrics["token_acc"] > accuracy  # memorises 32 pairs (chance: 1/16)
    assert (objective.sample(net.eval(), noise, cond).tokens == x1).float().mean() > accuracy


def test_unknown_loss_type_is_refused():
    with pytest.raises(ValueError, match="ce"):
        DistillationLoss("mse")


def test_marginal_fit_recovers_the_per_class_frequencies():
    net = tiny("dd_parallel-mnist").train()
    g = torch.Generator().manual_seed(0)
    x1 = torch.randint(0, 3, (400, L), generator=g)  # tokens 0..2 only
    cond = torch.zeros(400, dtype=torch.long)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    for _ in range(300):
        loss = MarginalFit().loss(net, x1, cond).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    freq = torch.nn.functional.one_hot(x1, K).float().mean(0)  # (L, K)
    assert torch.allclose(torch.softmax(net.logits[0], -1), freq, atol=0.02)
    sample = MarginalFit().sample(net.eval(), torch.zeros(50, dtype=torch.long), generator=g)
    assert sample.nfe == 1 and sample.tokens.max() <= 2
