"""One contract for every pretrained pipeline (``zoo.list_pretrained()``): a small seeded call returns
an output record with its NFE that can describe and save itself; the same seed gives the same output
and, where the method samples, another seed another output; save -> ``zoo.load`` reproduces it; a
wrong argument raises a ValueError that names it, at once."""

import inspect
import time

import pytest
import torch

import zoo

PRETRAINED = zoo.list_pretrained()
BAD = [0, -1, 1.5, True, "3", float("nan"), float("inf"), 10**9]  # every argument below refuses each of these


def contract_kwargs(pipe) -> dict:
    """The shared argument names at contract sizes: a generator samples 2 outputs in 2 steps (at
    temperature 1 where it has one: the code models decode greedily by default), from a short prompt
    where it takes one (a model fine-tuned on function bodies ends at once without one); an encoder
    gets 2 inputs of its own kind."""
    params = inspect.signature(pipe.__call__).parameters
    g = torch.Generator().manual_seed(100)  # inputs fixed across seeds
    inputs = {"batch_size": 2, "steps": 2, "gen_length": 2, "num_faces": 6, "temperature": 1.0,  # not greedy
              "prompt": "x = ",  # an open prompt: two seeds' samples differ even after fine-tuning
              "exact_faces": True,  # an AR mesh model stops at the count asked for, not at EOS (up to 800 faces)
              "images": torch.rand(2, 1, 28, 28, generator=g),
              "tokens": torch.randint(0, 128, (2, 6, 9), generator=g),
              "meshes": torch.rand(2, 64, 3, generator=g) - 0.5,  # a mesh classifier: points on 2 surfaces
              "texts": ["Return the value of the key.", "Close the file."],
              "frames": torch.randint(0, 256, (2, 64, 64, 3), generator=g, dtype=torch.uint8),  # a driving planner
              "context": [{"env": "highway", "speed": 25.0, "heading": 0.0},
                          {"env": "intersection", "speed": 8.0, "heading": -1.57, "nav": "left"}]}
    return {k: v for k, v in inputs.items() if k in params}


def samples(pipe) -> bool:
    """Does the method draw its outputs (a batch_size to fill), rather than map given inputs?"""
    return "batch_size" in inspect.signature(pipe.__call__).parameters


def fingerprint(out) -> bytes:
    for name in ("tokens", "probs", "latents"):
        value = getattr(out, name, None)
        if isinstance(value, torch.Tensor):
            return value.cpu().numpy().tobytes()
        if isinstance(value, list):
            return b"|".join(v.tobytes() for v in value)
    raise AssertionError(f"{type(out).__name__} has no tokens, probs or latents to compare")


@pytest.fixture(scope="module", params=PRETRAINED)
def loaded(request):
    return request.param, zoo.load(request.param)


def test_every_pretrained_model_is_covered():
    assert len(PRETRAINED) >= 10


def test_sampling_defaults_live_in_config_json_not_in_the_signature(loaded):
    """Every setting a pipeline reads is None in its ``__call__`` signature and set in the checkpoint's
    config.json (pipeline_kwargs): the one place a default lives, which an export writes from the YAML."""
    name, pipe = loaded
    params = inspect.signature(type(pipe).__call__).parameters
    assert {s: params[s].default for s in pipe.settings if s in params and params[s].default is not None} == {}
    assert set(pipe.settings) <= set(pipe.pipeline_kwargs), name


def test_call_returns_a_record_with_nfe_that_describes_and_saves_itself(loaded, tmp_path):
    name, pipe = loaded
    out = pipe(generator=torch.Generator().manual_seed(0), **contract_kwargs(pipe))
    assert isinstance(out.nfe, int) and out.nfe >= 1
    assert all(isinstance(line, str) for line in out.describe())
    written = out.save(tmp_path / name)
    assert written.exists() and any(p.stat().st_size > 0 for p in tmp_path.rglob("*") if p.is_file())


def test_same_seed_same_output_another_seed_another(loaded):
    name, pipe = loaded
    kwargs = contract_kwargs(pipe)
    a, b, c = (fingerprint(pipe(generator=torch.Generator().manual_seed(s), **kwargs)) for s in (0, 0, 1))
    assert a == b
    if samples(pipe):
        assert a != c, f"{name}: seeds 0 and 1 gave the same sample"


def test_save_and_load_reproduce_the_output(loaded, tmp_path):
    name, pipe = loaded
    kwargs = contract_kwargs(pipe)
    before = fingerprint(pipe(generator=torch.Generator().manual_seed(0), **kwargs))
    again = zoo.load(pipe.save_pretrained(tmp_path / name))
    assert fingerprint(again(generator=torch.Generator().manual_seed(0), **kwargs)) == before


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_a_wrong_argument_names_itself(loaded, bad):
    name, pipe = loaded
    kwargs = contract_kwargs(pipe)
    for arg in [a for a in ("batch_size", "steps", "gen_length", "num_faces") if a in kwargs]:
        if arg == "steps" and "gen_length" in kwargs and bad == 10**9:
            continue  # an AR code model refuses steps != gen_length by name too, but checks gen_length first
        start = time.perf_counter()
        with pytest.raises(ValueError, match=arg):
            pipe(generator=torch.Generator().manual_seed(0), **{**kwargs, arg: bad})
        assert time.perf_counter() - start < 1.0, f"{name}: {arg}={bad!r} took too long to refuse"
    for arg in [a for a in ("images", "tokens", "texts", "frames", "context") if a in kwargs]:
        with pytest.raises(ValueError, match=arg):
            pipe(**{**kwargs, arg: bad})


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), "3", True], ids=repr)
def test_a_wrong_sampling_number_names_itself(loaded, bad):
    name, pipe = loaded
    params = inspect.signature(pipe.__call__).parameters
    kwargs = contract_kwargs(pipe)
    for arg in [a for a in ("temperature", "guidance_scale", "threshold") if a in params]:
        start = time.perf_counter()
        with pytest.raises(ValueError, match=arg):
            pipe(generator=torch.Generator().manual_seed(0), **{**kwargs, arg: bad})
        assert time.perf_counter() - start < 1.0, f"{name}: {arg}={bad!r} took too long to refuse"
    if "temperature" in params:  # a temperature below zero has no meaning
        with pytest.raises(ValueError, match="temperature"):
            pipe(generator=torch.Generator().manual_seed(0), **{**kwargs, "temperature": -0.5})


@pytest.mark.parametrize("bad", [0, "seed", 1.5], ids=repr)
def test_a_generator_that_is_not_one_names_itself(loaded, bad):
    name, pipe = loaded
    with pytest.raises(ValueError, match="generator"):
        pipe(generator=bad, **contract_kwargs(pipe))


def test_a_wrong_tensor_input_names_itself(loaded):
    name, pipe = loaded
    kwargs = contract_kwargs(pipe)
    for arg in [a for a in ("images", "tokens") if a in kwargs]:
        good = kwargs[arg]
        wrong = {"shape": good[0], "dtype": good.double() if arg == "tokens" else good.long(),
                 "NaN": good.double().fill_(float("nan")), "range": good * 1000 + 1000}
        for what, value in wrong.items():
            with pytest.raises(ValueError, match=arg):
                pipe(**{**kwargs, arg: value})
