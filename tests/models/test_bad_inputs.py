"""Inputs that used to be accepted silently, or to fail with an error that did not name them, are refused
by name before any work: NaN noise and sentence vectors, images the tokenizer would crop, 2-d labels,
a 0-d float face count, a category index, a missing prompt, a mesh too large for the VAE."""

import pytest
import torch

import zoo


def g() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.fixture(scope="module")
def pipes():
    names = ("distilled_decoding-mnist", "vq-mnist", "meshcraft-tiny", "meshcraft_vae-tiny", "sentence_vae-prose",
             "sentence_ae-prose")
    return {name: zoo.load(name) for name in names}


CASES = {
    "NaN noise": ("distilled_decoding-mnist", lambda p: p(class_labels=[1], noise=torch.full((1, 49, 8), float("nan"))),
                  "noise: contains NaN"),
    "2-d class labels": ("distilled_decoding-mnist", lambda p: p(class_labels=[[1, 2], [3, 4]], generator=g()),
                         "one label a row"),
    "a 30x30 image": ("vq-mnist", lambda p: p(torch.rand(1, 1, 30, 30)), "multiples of 4"),
    "a 0-d float face count": ("meshcraft-tiny", lambda p: p(num_faces=torch.tensor(2.0), steps=1), "num_faces=2.0"),
    "a category index": ("meshcraft-tiny", lambda p: p(num_faces=10, category=3, steps=1), "category must be a name"),
    "20,000 faces": ("meshcraft_vae-tiny", lambda p: p(torch.zeros(1, 20_000, 9, dtype=torch.long)), "at most 3200"),
    "prompt=None": ("sentence_vae-prose", lambda p: p(None), "prompt must be a string"),
    "NaN sentence vectors": ("sentence_ae-prose", lambda p: p.decode(torch.full((1, p.net.dim), float("nan"))),
                             "vectors: contains NaN"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_input_is_refused_by_name(pipes, case):
    name, call, message = CASES[case]
    with pytest.raises(ValueError, match=message):
        call(pipes[name])


def test_the_good_neighbours_of_those_inputs_still_run(pipes):
    assert pipes["vq-mnist"](torch.rand(1, 1, 32, 32)).tokens.shape == (1, 64)  # any multiple of the stride
    assert len(pipes["meshcraft-tiny"](num_faces=torch.tensor(3), steps=1, generator=g()).tokens[0]) == 3
    assert pipes["distilled_decoding-mnist"](class_labels=torch.tensor(4), generator=g()).images.shape[0] == 1
