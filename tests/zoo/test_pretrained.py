"""The pretrained format and the registry: round trips, clear errors, and no unpickling."""

import json
import pickle

import pytest
import torch

import zoo
from models.dllm_code.pipeline import CodePipeline
from zoo.pretrained import CheckpointError, load_net

SMALL = dict(vocab_size=64, dim=32, depth=1, num_heads=2, max_seq_len=32)


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    net = zoo.create_model("dllm_code-tiny", **SMALL)
    zoo.save_pretrained(net, tmp_path / "ckpt", meta={"steps": 0})
    return net, tmp_path / "ckpt"


def test_round_trip_is_bit_identical_and_ties_survive(checkpoint):
    net, path = checkpoint
    loaded, config = load_net(path)
    x = torch.randint(0, 64, (2, 16))
    assert torch.equal(net.eval()(x), loaded(x))
    assert loaded.head.weight is loaded.tok_emb.weight
    assert config["model_kwargs"]["dim"] == 32


def test_truncated_weights_name_the_file(checkpoint):
    _, path = checkpoint
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="model.safetensors.*truncated"):
        load_net(path)


def test_config_that_does_not_match_the_weights(checkpoint):
    _, path = checkpoint
    config = json.loads((path / "config.json").read_text())
    config["model_kwargs"]["dim"] = 48
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="model.safetensors.*shape mismatch"):
        load_net(path)


def test_missing_and_broken_files(checkpoint):
    _, path = checkpoint
    (path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json.*not valid JSON"):
        load_net(path)
    (path / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json: missing"):
        load_net(path)


def test_pipeline_without_its_tokenizer_says_so(checkpoint):
    _, path = checkpoint
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        CodePipeline.from_pretrained(path)


def test_registry_errors_list_what_exists():
    with pytest.raises(ValueError, match="dllm_code-tiny"):
        zoo.create_model("no-such-model")
    with pytest.raises(ValueError, match="no argument"):
        zoo.create_model("dllm_code-tiny", width=3)
    with pytest.raises(ValueError, match="available"):
        zoo.load("no-such-checkpoint")
    assert "dllm_code-tiny" in zoo.list_models("dllm_code*")


def test_loading_never_unpickles(checkpoint, monkeypatch):
    _, path = checkpoint

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling during load")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    load_net(path)


def test_check_kwargs_names_what_a_function_takes():
    from zoo.pipeline import check_kwargs

    def f(a, b=1):
        return a + b

    check_kwargs(f, {"b": 2}, given=("a",))
    with pytest.raises(ValueError, match=r"no argument\(s\) \['c'\].*\['a', 'b'\]"):
        check_kwargs(f, {"a": 0, "c": 3})
    with pytest.raises(ValueError, match=r"needs argument\(s\) \['a'\]"):
        check_kwargs(f, {"b": 2})
    check_kwargs(lambda **kw: kw, {"anything": 1})  # **kwargs take everything
