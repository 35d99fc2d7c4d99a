"""A list of generators is one per row (diffusers' convention): row i of a two-row call with
[g1, g2] is what a one-row call with g_i gives, for every shipped checkpoint that draws, at a
temperature where the generator matters. Both rows get the same inputs, so only the generators
tell them apart."""

import numpy as np
import pytest
import torch

import zoo
from zoo import generators
from zoo.pretrained import list_pretrained


def g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _driving(n: int):
    from datamodules.driving_codec import Context

    frames = torch.randint(0, 256, (1, 64, 64, 3), dtype=torch.uint8, generator=g(0)).expand(n, -1, -1, -1)
    return frames, [Context("intersection", 12.0, 0.0)] * n


CODE = "def add(a, b):\n"
PROSE = "Return the value."
SAMPLE = {  # checkpoint -> (pipe, rows, generator) -> one output row per input row
    "dllm_code-tiny": lambda p, n, gen: p(prompt=[CODE] * n, gen_length=8, steps=4, block_length=8,
                                          temperature=1.0, generator=gen).tokens,
    "dllm_code_adapted-tiny": lambda p, n, gen: p(prompt=[CODE] * n, gen_length=8, steps=8, block_length=8,
                                                  policy="random", temperature=1.0, generator=gen).tokens,
    "ar_code-tiny": lambda p, n, gen: p(prompt=[CODE] * n, gen_length=8, temperature=1.0, generator=gen).tokens,
    "ar_code_sft-tiny": lambda p, n, gen: p(prompt=[CODE] * n, gen_length=8, temperature=1.0, generator=gen).tokens,
    "token_lm-prose": lambda p, n, gen: p(prompt=[PROSE] * n, gen_length=8, temperature=1.0, generator=gen).tokens,
    "image_ar-mnist": lambda p, n, gen: p(batch_size=n, generator=gen).tokens,  # labels drawn too
    "distilled_decoding-mnist": lambda p, n, gen: p(class_labels=[3] * n, steps=2, generator=gen).tokens,
    "dd_parallel-mnist": lambda p, n, gen: p(class_labels=[3] * n, generator=gen).tokens,
    "xar-mnist": lambda p, n, gen: p(class_labels=[3] * n, steps=2, generator=gen).images,
    "xar_dit-mnist": lambda p, n, gen: p(class_labels=[3] * n, steps=2, generator=gen).images,
    "xar_ncl_off-mnist": lambda p, n, gen: p(class_labels=[3] * n, steps=2, solver="euler_maruyama",
                                             generator=gen).images,
    "meshcraft-tiny": lambda p, n, gen: p(num_faces=12, category=None, batch_size=n, steps=2, generator=gen).tokens,
    "meshgpt_ar-tiny": lambda p, n, gen: p(num_faces=3, category=None, batch_size=n, exact_faces=True,
                                           generator=gen).tokens,
    "sentence_ae-prose": lambda p, n, gen: p([PROSE] * n, temperature=1.5, generator=gen).texts,
    "sentence_vae-prose": lambda p, n, gen: p(PROSE, batch_size=n, max_sentences=2, temperature=1.5,
                                              generator=gen).texts,
    "vilad-highway": lambda p, n, gen: p(*_driving(n), steps=2, temperature=1.0, generator=gen).tokens,
    "vilad_ar-highway": lambda p, n, gen: p(*_driving(n), temperature=1.0, generator=gen).tokens,
}
NO_DRAWS = {"vq-mnist", "kl_ae-mnist", "digit_cnn-mnist", "meshcraft_vae-tiny", "mesh_pointnet-furniture"}


def test_every_shipped_checkpoint_is_a_case_or_draws_nothing():
    assert set(list_pretrained()) == set(SAMPLE) | NO_DRAWS


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        a, b = torch.as_tensor(a), torch.as_tensor(b)
    if isinstance(a, torch.Tensor):
        return a.shape == b.shape and (torch.equal(a, b) if not a.is_floating_point()
                                       else torch.allclose(a.float(), b.float(), atol=1e-4))
    return a == b


@pytest.mark.parametrize("name", sorted(SAMPLE))
def test_row_i_of_a_generator_list_is_the_one_row_call_with_generator_i(name):
    pipe = zoo.load(name)
    both = SAMPLE[name](pipe, 2, [g(1), g(2)])
    alone = [SAMPLE[name](pipe, 1, g(seed))[0] for seed in (1, 2)]
    assert _same(both[0], alone[0]) and _same(both[1], alone[1])
    assert not _same(alone[0], alone[1]), "the two seeds should give two samples, or the case tests nothing"


def test_a_list_whose_length_is_not_the_batch_is_refused_by_name():
    pipe = zoo.load("dd_parallel-mnist")
    with pytest.raises(ValueError, match="a list of 3 generators for a batch of 2 rows"):
        pipe(class_labels=[3, 4], generator=[g(1), g(2), g(3)])
    with pytest.raises(ValueError, match="a list of them"):
        pipe(class_labels=[3], generator=[g(1), 7])
    with pytest.raises(ValueError, match="empty"):
        pipe(class_labels=[3], generator=[])


def test_one_generator_draws_as_plain_torch_does():
    """Pinned samples stay: a single generator (or None) is the plain torch call."""
    assert torch.equal(generators.randn((3, 5), g(4)), torch.randn(3, 5, generator=g(4)))
    assert torch.equal(generators.rand((2, 7), g(4), dtype=torch.float64), torch.rand(2, 7, generator=g(4),
                                                                                     dtype=torch.float64))
    assert torch.equal(generators.randint(0, 9, (6,), g(4)), torch.randint(0, 9, (6,), generator=g(4)))
    rows = generators.randn((2, 5), [g(4), g(5)])
    assert torch.equal(rows[1], torch.randn(5, generator=g(5)))
    assert generators.select([g(0), g(1), g(2)], torch.tensor([2, 0]))[0].initial_seed() == 2
