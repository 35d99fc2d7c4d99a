"""The pretrained format and the registry: round trips, clear errors, and no unpickling."""

import json
import pickle

import pytest
import torch

import zoo
from models.text_kit.pipeline import CodePipeline
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
    with pytest.raises(CheckpointError, match="model_sha256 differs"):  # a hand edit, caught by the seal
        load_net(path)
    zoo.pretrained.seal(path)  # sealed again: a larger network than the weights hold, refused unbuilt
    with pytest.raises(CheckpointError, match="describes a network of"):
        load_net(path)
    config["model_kwargs"]["dim"] = 16  # a smaller one: refused by the weights' shapes
    (path / "config.json").write_text(json.dumps(config))
    zoo.pretrained.seal(path)
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
    with pytest.raises(CheckpointError, match="tokenizer.json: missing"):
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


# --- checkpoint identity and atomic export ---

def test_another_models_weights_do_not_load_silently(tmp_path):
    import shutil

    shipped = zoo.pretrained.resolve("dllm_code-tiny")
    swapped = tmp_path / "dllm_code-tiny"
    shutil.copytree(shipped, swapped)
    shutil.copyfile(zoo.pretrained.resolve("ar_code-tiny") / "model.safetensors", swapped / "model.safetensors")
    with pytest.raises(CheckpointError, match="model.safetensors: not the weights"):
        zoo.load(swapped)
    # without the recorded hash, the safetensors metadata still names the model the file holds
    net = zoo.create_model("ar_code-tiny", **SMALL)
    zoo.save_pretrained(net, tmp_path / "ar")
    zoo.save_pretrained(zoo.create_model("dllm_code-tiny", **SMALL), tmp_path / "dllm")
    shutil.copyfile(tmp_path / "ar" / "model.safetensors", tmp_path / "dllm" / "model.safetensors")
    config = json.loads((tmp_path / "dllm" / "config.json").read_text())
    del config["weights_sha256"]
    (tmp_path / "dllm" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="holds 'ar_code-tiny' weights"):
        load_net(tmp_path / "dllm")


KILL_DURING_EXPORT = """
import os, sys, pathlib, torch, zoo, zoo.pretrained
after = int(sys.argv[2])  # die right after the export's n-th file (1: weights, 2: config, 3: meta, 4: extra)
written = []
def count(name):
    written.append(name)
    if len(written) == after:
        os.kill(os.getpid(), 9)
save_file, write_text = zoo.pretrained.save_file, pathlib.Path.write_text
zoo.pretrained.save_file = lambda t, p, **kw: (save_file(t, p, **kw), count(p))[0]
pathlib.Path.write_text = lambda self, *a, **kw: (write_text(self, *a, **kw), count(self.name))[0]
net = zoo.create_model("dllm_code-tiny", vocab_size=64, dim=32, depth=1, num_heads=2, max_seq_len=32)
zoo.save_pretrained(net, sys.argv[1], meta={"steps": 2}, extra=lambda folder: (folder / "extra.txt").write_text("x"))
"""


@pytest.mark.slow
@pytest.mark.parametrize("after", [1, 2, 3, 4])
def test_an_interrupted_export_leaves_the_previous_checkpoint(checkpoint, after, monkeypatch):
    import subprocess
    import sys

    _, path = checkpoint
    before = (path / "model.safetensors").read_bytes()
    run = subprocess.run([sys.executable, "-c", KILL_DURING_EXPORT, str(path), str(after)], capture_output=True,
                         timeout=120)
    assert run.returncode == -9, run.stderr[-2000:]
    assert (path / "model.safetensors").read_bytes() == before
    assert zoo.pretrained.load_meta(path) == {"steps": 0} and not (path / "extra.txt").exists()
    load_net(path)
    monkeypatch.setenv("ZOO_CHECKPOINTS", str(path.parent))  # the killed export's hidden folder is not a checkpoint
    assert [p.name for p in path.parent.glob(".ckpt.tmp-*")] and "ckpt" in zoo.pretrained.list_pretrained()
    assert not [n for n in zoo.pretrained.list_pretrained() if n.startswith(".")]
    fresh = path.parent / "never_finished"
    run = subprocess.run([sys.executable, "-c", KILL_DURING_EXPORT, str(fresh), str(after)], capture_output=True,
                         timeout=120)
    assert run.returncode == -9 and not fresh.exists()


def test_an_unwritable_export_dir_is_refused_up_front(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="not a folder"):
        zoo.pretrained.check_writable(tmp_path / "file")
    with pytest.raises(ValueError, match="cannot be written"):
        zoo.pretrained.check_writable("/proc/zoo-export")
    zoo.pretrained.check_writable(tmp_path / "fine")
    assert list(tmp_path.iterdir()) == [tmp_path / "file"]


def _copy(name, tmp_path):
    import shutil

    target = tmp_path / name
    shutil.copytree(zoo.pretrained.resolve(name), target)
    return target


@pytest.mark.parametrize("name, file, content, message", [
    ("dllm_code-tiny", "tokenizer.json", '{"version": "1.0", "trunc', "cannot be read as a tokenizer"),
    ("meshcraft-tiny", "latent_stats.json", "{not json", "latent_stats.json: expected"),
    ("meshcraft-tiny", "latent_stats.json", '{"mean": [0.0]}', "latent_stats.json: expected"),
    ("meshcraft-tiny", "latent_stats.json", '{"mean": [0.0], "std": [1.0]}', "must be 16 finite numbers"),
    ("meshcraft-tiny", "latent_stats.json", json.dumps({"mean": [0] * 16, "std": [1] * 15 + [0]}), "std > 0"),
])
def test_a_broken_side_file_is_named(tmp_path, name, file, content, message):
    path = _copy(name, tmp_path)
    (path / file).write_text(content)
    with pytest.raises(CheckpointError, match=f"{file}: not the file"):  # the seal sees the change
        zoo.load(path)
    zoo.pretrained.seal(path)  # sealed with the broken file: refused for what it holds
    with pytest.raises(CheckpointError, match=message):
        zoo.load(path)


def test_mismatched_side_files_and_settings_are_named(tmp_path):
    import shutil

    from tokenizers import Tokenizer, models

    code = _copy("dllm_code-tiny", tmp_path)
    Tokenizer(models.BPE()).save(str(code / "tokenizer.json"))  # a tokenizer of another vocabulary
    zoo.pretrained.seal(code)  # sealed with it: refused for its size
    with pytest.raises(CheckpointError, match="tokenizer.json: 0 tokens, but the network has 4096"):
        zoo.load(code)
    image = _copy("image_ar-mnist", tmp_path)
    shutil.rmtree(image / "tokenizer")
    shutil.copytree(zoo.pretrained.resolve("digit_cnn-mnist"), image / "tokenizer")  # not a tokenizer at all
    zoo.pretrained.seal(image)
    with pytest.raises(CheckpointError, match="tokenizer: holds 'digit_cnn-mnist'"):
        zoo.load(image)
    mesh = _copy("meshgpt_ar-tiny", tmp_path)
    config = json.loads((mesh / "config.json").read_text())
    config["pipeline_kwargs"]["temprature"] = 1.0
    (mesh / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="config.json: its pipeline_kwargs do not fit"):
        zoo.load(mesh)


def test_an_export_killed_between_its_renames_is_restored(checkpoint):
    """atomic_dir moves the old checkpoint aside, then renames the new one in; a kill between the two
    leaves only the hidden old folder, which the next load (or export) puts back."""
    import os

    net, path = checkpoint
    aside = path.parent / f".{path.name}.old-12345"
    os.replace(path, aside)
    loaded, _ = load_net(zoo.pretrained.resolve(path))
    assert path.is_dir() and not aside.exists()
    x = torch.randint(0, 64, (1, 8))
    assert torch.equal(net.eval()(x), loaded(x))


@pytest.mark.parametrize("content", ["null", "42", "[1, 2]", "[" * 100000 + "]" * 100000])
def test_a_config_that_is_not_an_object_is_named(checkpoint, content):
    _, path = checkpoint
    (path / "config.json").write_text(content)
    with pytest.raises(CheckpointError, match="config.json"):
        zoo.load(path)


def test_a_fifo_in_place_of_the_weights_fails_instead_of_blocking(checkpoint):
    import os
    import time

    _, path = checkpoint
    (path / "model.safetensors").unlink()
    os.mkfifo(path / "model.safetensors")
    start = time.monotonic()
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_net(path)
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("value", ["no", "false", 0, 1, None])
def test_switches_take_only_true_or_false(value):
    from zoo.checks import check_bool

    with pytest.raises(ValueError, match="cfg_ramp"):
        check_bool("cfg_ramp", value)
    assert check_bool("cfg_ramp", True) is True and check_bool("cfg_ramp", None, optional=True) is None


def test_every_file_of_a_checkpoint_is_checked(tmp_path):
    import os
    import shutil

    from safetensors.torch import load_file, save_file

    from zoo.pretrained import seal

    # a tokenizer from another checkpoint with the same vocabulary: loaded silently before the seal
    code = _copy("dllm_code-tiny", tmp_path)
    other = zoo.pretrained.resolve("ar_code-tiny") / "tokenizer.json"
    if other.read_bytes() != (code / "tokenizer.json").read_bytes():
        shutil.copyfile(other, code / "tokenizer.json")
    else:  # the twins share one tokenizer: change a byte of it instead
        (code / "tokenizer.json").write_text((code / "tokenizer.json").read_text() + " ")
    with pytest.raises(CheckpointError, match="tokenizer.json: not the file"):
        zoo.load(code)

    # a hand-edited config.json (a longer context than the weights were trained for)
    net_dir = _copy("ar_code-tiny", tmp_path)
    config = json.loads((net_dir / "config.json").read_text())
    config["model_kwargs"]["max_seq_len"] *= 2
    (net_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="model_sha256 differs"):
        zoo.load(net_dir)

    # another autoencoder in the mesh model's vae/ folder
    mesh = _copy("meshcraft-tiny", tmp_path)
    shutil.rmtree(mesh / "vae")
    shutil.copytree(zoo.pretrained.resolve("kl_ae-mnist"), mesh / "vae")
    with pytest.raises(CheckpointError, match="vae/"):
        zoo.load(mesh)

    # NaN weights, sealed again so that every hash agrees: refused for what they hold
    nan = _copy("vq-mnist", tmp_path)
    state = load_file(nan / "model.safetensors")
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first] = torch.full_like(state[first], float("nan"))
    save_file(state, nan / "model.safetensors", metadata={"format": "pt", "model": "vq-mnist"})
    config = json.loads((nan / "config.json").read_text())
    config["weights_sha256"] = zoo.pretrained.file_sha256(nan / "model.safetensors")
    (nan / "config.json").write_text(json.dumps(config))
    seal(nan)
    with pytest.raises(CheckpointError, match="non-finite"):
        zoo.load(nan)

    # a FIFO in place of a side file: refused at once, not read (which would block)
    fifo = _copy("meshcraft-tiny", tmp_path / "fifo")
    (fifo / "latent_stats.json").unlink()
    os.mkfifo(fifo / "latent_stats.json")
    with pytest.raises(CheckpointError, match="latent_stats.json: missing or not a regular file"):
        zoo.load(fifo)


def test_every_shipped_checkpoint_is_sealed():
    for name in zoo.list_pretrained():
        config = json.loads((zoo.pretrained.resolve(name) / "config.json").read_text())
        assert config.get("model_sha256") and "files_sha256" in config and config.get("weights_sha256"), name


def test_a_config_asking_for_a_huge_network_is_refused_before_it_is_built(tmp_path):
    import time

    big = _copy("ar_code-tiny", tmp_path)
    config = json.loads((big / "config.json").read_text())
    config["model_kwargs"]["vocab_size"] = 10**9  # 192 billion parameters: an allocation error before
    del config["model_sha256"]  # as a config from before the seal
    (big / "config.json").write_text(json.dumps(config))
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match="describes a network of 192,002,664,960 parameters"):
        zoo.load(big)
    assert time.perf_counter() - start < 5
