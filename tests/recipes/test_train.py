"""The Hydra recipes: every config composes and instantiates; training runs end to end (one process,
two DDP processes on CPU), resumes exactly, and exports a loadable checkpoint."""

import csv
import math
import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import zoo

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "recipes" / "configs"
MODELS = sorted(p.stem for p in (CONFIGS / "model").glob("*.yaml"))
TRAINERS = sorted(p.stem for p in (CONFIGS / "trainer").glob("*.yaml"))
@pytest.fixture(scope="session")
def public_inputs(tmp_path_factory):
    """What model=public_sft and model=public_adapt need from outside the repo: a tiny LLaDA folder, a tiny
    Qwen2 folder and a JSONL of pairs."""
    import json

    from models.dllm_code.tiny_public import write_tiny_folder

    root = tmp_path_factory.mktemp("public_sft")
    folders = {family: write_tiny_folder(root / family, family) for family in ("llada", "qwen2")}
    pairs = root / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"def f{i}(x):\n", "answer": f"    return x + {i}\n"}) + "\n"
                             for i in range(20)))
    return {"public_sft": [f"public_folder={folders['llada']}", f"data.path={pairs}"],
            "public_adapt": [f"public_folder={folders['qwen2']}", f"data.path={pairs}"]}


def external(model: str, public_inputs: dict) -> list[str]:
    """The overrides a config needs from outside the repo (a public folder and its data)."""
    return public_inputs.get(model, [])


# A very small network and data, so a run takes seconds.
SMALL = ["++model.net.dim=32", "++model.net.depth=1", "++model.net.num_heads=2", "data.seq_len=32", "data.val_windows=4"]


def test_every_yaml_starts_with_the_command_that_uses_it():
    for path in CONFIGS.rglob("*.yaml"):
        lines = [ln for ln in path.read_text().splitlines() if not ln.startswith("# @package")]
        assert lines[0].startswith("# python recipes/"), path


@pytest.mark.parametrize("model", MODELS)
def test_every_config_writes_sampling_defaults_its_pipeline_reads(model, public_inputs):
    """An export's config.json must load: its pipeline_kwargs (null ones dropped, as recipes/train.py
    does) are settings the model's pipeline reads (a derived config nulls its parent's others)."""
    from zoo.registry import get_entry

    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={model}", *external(model, public_inputs)], return_hydra_config=False)
    kwargs = {k: v for k, v in (cfg.model.get("pipeline_kwargs") or {}).items() if v is not None}
    pipeline = get_entry(instantiate(cfg.model.net).zoo_config["model"]).pipeline
    assert set(kwargs) <= set(pipeline.settings), f"{model}: {sorted(set(kwargs) - set(pipeline.settings))}"


@pytest.mark.parametrize("trainer", TRAINERS)
@pytest.mark.parametrize("model", MODELS)
def test_train_configs_compose_and_instantiate(model, trainer, public_inputs):
    # trainer=gpu is instantiated on this machine's CPU; what it sets for the GPU is checked below
    on_cpu = ["trainer.accelerator=cpu", "trainer.precision=32-true"] if trainer == "gpu" else []
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={model}", f"trainer={trainer}", "debug=fast", *on_cpu,
                                          *external(model, public_inputs)],
                      return_hydra_config=False)
    net = instantiate(cfg.model.net)
    assert isinstance(net.zoo_config, dict)
    instantiate(cfg.model.objective)
    instantiate(cfg.model.optimizer)(net.parameters())
    instantiate(cfg.data)
    assert cfg.trainer.max_steps == 3  # debug wins over the model's budget
    assert instantiate(cfg.trainer, logger=False, enable_checkpointing=False).max_steps == 3


@pytest.mark.parametrize("logger, classes", [("csv", {"CSVLogger"}), ("tensorboard", {"CSVLogger", "TensorBoardLogger"}),
                                             ("mlflow", {"CSVLogger", "MLFlowLogger"}), ("wandb", {"CSVLogger", "WandbLogger"})])
def test_loggers_are_a_config_group_that_keeps_the_csv_log(tmp_path, monkeypatch, logger, classes):
    import importlib.util

    train_module = load_train_module()
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=["model=dllm_code", f"logger={logger}"], return_hydra_config=False)
    assert {str(node._target_).rsplit(".", 1)[-1] for node in cfg.logger.values()} == classes
    missing = [m for cls in classes for m in train_module.LOGGER_NEEDS.get(cls, ())[:1] if not importlib.util.find_spec(m)]
    if missing:  # an optional logger that is not installed is refused by name, before any step
        with pytest.raises(SystemExit, match=f"needs the {missing[0]} package"):
            train_module.make_loggers(cfg, tmp_path)
        return
    loggers = train_module.make_loggers(cfg, tmp_path)
    assert {type(x).__name__ for x in loggers} == classes
    csv_logger = next(x for x in loggers if type(x).__name__ == "CSVLogger")
    assert Path(csv_logger.log_dir) == tmp_path / "csv"  # where recipes/curve.py reads metrics.csv


def load_train_module():
    spec = importlib.util.spec_from_file_location("train_recipe", ROOT / "recipes" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sample_config_composes():
    with initialize_config_dir(str(CONFIGS / "run"), version_base="1.3"):
        cfg = compose("sample", overrides=["model=dllm_code-tiny", "+kwargs.gen_length=8"])
    assert cfg.model == "dllm_code-tiny" and cfg.kwargs.gen_length == 8


def run_train(tmp_path: Path, *overrides: str, timeout: int = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "recipes/train.py", f"hydra.run.dir={tmp_path}", "rich_progress=false",
           "trainer.enable_progress_bar=false", *overrides]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def train_losses(run_dir: Path) -> dict[int, float]:
    with open(run_dir / "csv" / "metrics.csv") as f:
        return {int(r["step"]): float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")}


@pytest.mark.slow
def test_unknown_model_lists_the_valid_names(tmp_path):
    result = run_train(tmp_path, "model=no_such_model")
    assert result.returncode != 0
    assert "dllm_code" in result.stderr + result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("model, metric", [("dllm_code", "elbo_bits_per_token"), ("ar_code", "nll_bits_per_token")])
def test_debug_fast_run_exports_a_loadable_checkpoint(tmp_path, model, metric):
    export = tmp_path / "export"
    result = run_train(tmp_path / "run", f"model={model}", "debug=fast", *SMALL, f"export_dir={export}")
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "M parameters" in log and "Tip" not in log and "FLOPs" not in log  # quiet, correct logs
    meta = zoo.pretrained.load_meta(export)
    assert meta["steps"] == 3 and metric in meta["metrics"]
    assert meta["command"].startswith("python recipes/train.py") and f"model={model}" in meta["command"]
    assert {"git_sha", "wall_seconds", "hardware"} <= set(meta)
    card = (export / "README.md").read_text()  # the model card, as recipes/model_card.py writes it
    assert card.startswith("---\nlicense: mit") and f"model={model}" in card
    out = zoo.load(export)(prompt="def f():\n", gen_length=8)  # one token per step by default
    assert out.tokens.shape == (1, 8) and 1 <= out.nfe <= 8 and len(out.texts) == 1


@pytest.mark.slow
def test_aggregation_rounds_collect_add_and_fine_tune(tmp_path):
    """rounds.count=1: round 0 trains and exports, the collector drives it, the round fine-tunes from
    that export on the union and writes the record into meta.json."""
    export = tmp_path / "export"
    result = run_train(tmp_path / "run", "model=vilad", "debug=fast", "rounds.count=1", "rounds.steps=2",
                       "rounds.collect.episodes=1", "+rounds.collect.envs=[merge]", "rounds.collect.every=4",
                       f"export_dir={export}", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    meta = zoo.pretrained.load_meta(export)
    round1 = meta["aggregation"]["per_round"][0]
    assert meta["steps"] == 2 and meta["aggregation"]["round0_steps"] == 3 and round1["labelled"] > 0
    assert meta["init_from"]["checkpoint"] == str(tmp_path / "run" / "rounds" / "round0")
    round0 = zoo.pretrained.load_meta(tmp_path / "run" / "rounds" / "round0")
    assert meta["init_from"]["train_seconds"] == round0["train_seconds"]  # kept where the folder may change
    assert Path(round1["path"]).is_file() and meta["config"]["net"]["name"] == "vilad-highway"
    assert meta["data"]["train"]["samples"] == round0["data"]["train"]["samples"] + round1["labelled"]
    failed = run_train(tmp_path / "bad", "model=vilad", "debug=fast", "rounds.count=1")
    assert failed.returncode != 0 and "needs export_dir" in failed.stderr


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(tmp_path):
    result = run_train(tmp_path, "model=dllm_code", "debug=fast", "trainer=ddp", "trainer.accelerator=cpu",
                       "trainer.devices=2", *SMALL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert "world_size: 2" in result.stderr + result.stdout or "GLOBAL_RANK: 1" in result.stderr + result.stdout


@pytest.mark.slow
def test_resume_reproduces_the_uninterrupted_losses(tmp_path):
    common = ["model=dllm_code", "debug=fast", *SMALL, "trainer.max_steps=6", "++trainer.max_time=00:01:00:00",
              "trainer.val_check_interval=6", "ckpt_every_n_steps=3"]
    full = run_train(tmp_path / "full", *common)
    assert full.returncode == 0, full.stderr[-3000:]
    mid = tmp_path / "full" / "checkpoints" / "step000003.ckpt"
    resumed = run_train(tmp_path / "resumed", *common, f"resume={mid}", f"export_dir={tmp_path / 'export'}",
                        "export_eval=false")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = train_losses(tmp_path / "full"), train_losses(tmp_path / "resumed")
    assert sorted(b) == [3, 4, 5]
    for step in (3, 4, 5):
        assert b[step] == pytest.approx(a[step], rel=1e-5), step
    # meta.json keeps the training time of both runs (the max_time Timer's, restored from the checkpoint)
    meta = zoo.pretrained.load_meta(tmp_path / "export")
    assert meta["resumed_from"] == str(mid) and meta["train_seconds"] > 0


@pytest.mark.slow
def test_an_unwritable_export_dir_fails_before_training(tmp_path):
    result = run_train(tmp_path, "model=dllm_code", "debug=fast", "export_dir=/proc/zoo-export")
    assert result.returncode != 0 and "cannot be written" in result.stderr
    assert not (tmp_path / "csv").exists()  # no training step was logged


def test_the_gpu_trainer_and_gpu_models_compose():
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=["model=ar_code_small", "trainer=gpu"], return_hydra_config=False)
    assert (cfg.trainer.accelerator, cfg.trainer.precision, cfg.trainer.devices) == ("gpu", "bf16-mixed", 1)
    assert cfg.trainer.max_time == "00:00:04:00" and cfg.trainer.max_steps == 6000
    assert cfg.model.net.name == "ar_code-small" and "NextTokenPrediction" in cfg.model.objective._target_
    assert cfg.data.batch_size == 64 and cfg.model.optimizer.lr == 1.0e-3  # what the twin shares with dllm_code_small
    assert cfg.gpu.tokens_per_sample == cfg.data.seq_len == 512


def bf16_mib(name: str) -> float:
    return 2 * sum(p.numel() for p in zoo.create_model(name).parameters()) / 2**20


def test_what_one_gpu_run_trains_comes_back_from_one_device_call():
    """A device call returns at most 64 MiB: each pair recipes/gpu_train.sh names runs together fits,
    the mesh DiT's checkpoint counting the VAE it carries."""
    assert bf16_mib("dllm_code-small") == bf16_mib("ar_code-small")  # equal twins
    assert bf16_mib("dllm_code-small") + bf16_mib("ar_code-small") < 60
    assert 2 * bf16_mib("meshcraft_vae-small") + bf16_mib("meshcraft-small") < 60


def test_the_gpu_run_refuses_a_config_without_a_gpu_block_and_a_dependency_out_of_order(tmp_path):
    sys.path.insert(0, str(ROOT / "recipes"))
    import gpu_train

    with pytest.raises(SystemExit, match="no gpu block"):
        gpu_train.gpu_block("vilad")
    block = gpu_train.gpu_block("meshcraft_small")
    assert block["needs"] == {"data.vae": "meshcraft_vae_small"} and block["tokens_per_sample"] == 396
    with pytest.raises(SystemExit, match="name meshcraft_vae_small before it"):
        gpu_train.train_one("meshcraft_small", block, tmp_path, 10, True, sys.executable)
    assert gpu_train.checkpoint_name("meshcraft_vae_small") == "meshcraft_vae-small"


@pytest.mark.slow
def test_gpu_script_dry_run(tmp_path):
    """The prepared GPU run on the CPU, the priority list's first two pairs: trained, evaluated,
    reported, and packed into parts that unpack to the checkpoints."""
    import json
    import tarfile

    import torch
    from safetensors import safe_open

    env = {**__import__("os").environ, "WORK": str(tmp_path / "work"), "OUT": str(tmp_path / "out"),
           "PYTHON": sys.executable}
    configs = ["dllm_code_small", "ar_code_small", "meshcraft_vae_small", "meshcraft_small"]
    run = subprocess.run(["bash", "recipes/gpu_train.sh", "--dry-run", *configs, "120"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "work" / "summary.jsonl").read_text().splitlines()]
    assert [Path(r["checkpoint"]).name for r in rows] == ["dllm_code-small", "ar_code-small", "meshcraft_vae-small",
                                                          "meshcraft-small"]
    assert "bits_per_token" in rows[0]["metrics"] and "triangle_acc" in rows[2]["metrics"] and "cov" in rows[3]["metrics"]
    for row in rows:
        assert row["tokens_per_second"] > 0
        with safe_open(str(Path(row["checkpoint"]) / "model.safetensors"), "pt") as f:
            assert f.get_tensor(next(iter(f.keys()))).dtype == torch.bfloat16
    out = zoo.load(rows[0]["checkpoint"])(prompt="def f():\n", gen_length=4, steps=4)
    assert out.nfe >= 1
    parts = sorted((tmp_path / "out").iterdir())
    assert parts and all(p.name.startswith("gpu_results.tar.") and p.stat().st_size <= 15 * 2**20 for p in parts)
    (tmp_path / "joined.tar").write_bytes(b"".join(p.read_bytes() for p in parts))
    with tarfile.open(tmp_path / "joined.tar") as tar:
        names = tar.getnames()
    assert {"summary.jsonl", "checkpoints/meshcraft-small/model.safetensors", "checkpoints/meshcraft-small/meta.json",
            "checkpoints/dllm_code-small/config.json"} <= set(names)
    assert not any(n.endswith(".ckpt") for n in names)  # Lightning's resume checkpoints stay on the device


@pytest.mark.slow
@pytest.mark.parametrize("model, limit_mb", [("meshcraft_vae", 1), ("meshcraft", 1), ("meshgpt_ar", 1),
                                             ("distilled_decoding", 1), ("dllm_code", 4)])
def test_debug_fast_builds_only_a_small_subset(tmp_path, model, limit_mb):
    # the models whose data took a minute or more to build: debug=fast now builds a few dozen meshes,
    # a few hundred pairs, 300 files of the code corpus (its full train stream is 18 MB)
    cache = tmp_path / "cache"
    result = run_train(tmp_path / "run", f"model={model}", "debug=fast", f"data.cache_dir={cache}")
    assert result.returncode == 0, result.stderr[-3000:]
    built = [p for p in cache.rglob("*") if p.suffix in (".safetensors", ".npy")]
    assert built and all(p.stat().st_size < limit_mb * 2**20 for p in built), [(p.name, p.stat().st_size) for p in built]


DEBUG_COVERED = {"dllm_code", "ar_code", "meshcraft_vae", "meshcraft", "meshgpt_ar", "distilled_decoding",
                 "public_sft", "public_adapt"}  # above (public_sft: its own test, below, with a folder and data it
# makes; public_adapt: tests/models/dllm_code/test_public_adaptation.py, with a Qwen2 folder)


@pytest.mark.slow
@pytest.mark.parametrize("model", [m for m in MODELS if m not in DEBUG_COVERED])
def test_every_other_model_config_runs_debug_fast_from_a_clean_cache(tmp_path, model):
    """The wiring check of every model config, from an empty data cache, in well under a
    minute on two CPU cores (120 s here leaves room for a loaded CI machine)."""
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={model}"], return_hydra_config=False)
    clean = [f"data.cache_dir={tmp_path / 'cache'}"] if "cache_dir" in cfg.data else []  # digits have no cache
    start = time.perf_counter()
    result = run_train(tmp_path / "run", f"model={model}", "debug=fast", *clean)
    assert result.returncode == 0, result.stderr[-3000:]
    assert time.perf_counter() - start < 120


def test_init_from_copies_matching_weights_and_names_what_does_not_fit(tmp_path):
    import torch

    from recipes.train import init_weights

    torch.manual_seed(0)
    ar = zoo.create_model("ar_code-tiny", vocab_size=64, dim=32, depth=1, num_heads=2, max_seq_len=16)
    zoo.pretrained.save_pretrained(ar, tmp_path / "ar")
    diffusion = zoo.create_model("dllm_code-tiny", vocab_size=64, dim=32, depth=1, num_heads=2, max_seq_len=16,
                                 shift=True)
    init_weights(diffusion, str(tmp_path / "ar"))  # the causal twin's weights fit its shifted diffusion sibling
    assert all(torch.equal(a, b) for a, b in zip(ar.state_dict().values(), diffusion.state_dict().values()))
    unshifted = zoo.create_model("dllm_code-tiny", vocab_size=64, dim=32, depth=1, num_heads=2, max_seq_len=16)
    with pytest.raises(ValueError, match="shift"):  # same shapes, but its logit at i would mean another token
        init_weights(unshifted, str(tmp_path / "ar"))
    wider = zoo.create_model("dllm_code-tiny", vocab_size=64, dim=64, depth=1, num_heads=2, max_seq_len=16,
                             shift=True)
    with pytest.raises(ValueError, match="do not fit"):
        init_weights(wider, str(tmp_path / "ar"))


def test_init_into_fills_one_submodule(tmp_path):
    import torch

    from recipes.train import init_weights

    torch.manual_seed(0)
    kwargs = dict(vocab_size=64, dim=32, encoder_depth=1, decoder_depth=1, num_heads=2, max_sentence_len=8)
    ae = zoo.create_model("sentence_ae-prose", **kwargs)
    zoo.pretrained.save_pretrained(ae, tmp_path / "ae")
    lm = zoo.create_model("sentence_vae-prose", lm_depth=1, max_sentences=4, **kwargs)
    before = {k: v.clone() for k, v in lm.state_dict().items()}
    init_weights(lm, str(tmp_path / "ae"), into="autoencoder")
    assert all(torch.equal(v, lm.autoencoder.state_dict()[k]) for k, v in ae.state_dict().items())
    assert all(torch.equal(v, lm.state_dict()[k]) for k, v in before.items() if not k.startswith("autoencoder."))
    with pytest.raises(ValueError, match="do not fit"):  # the whole LM is not an autoencoder
        init_weights(lm, str(tmp_path / "ae"))
    with pytest.raises(ValueError, match="no such submodule"):
        init_weights(lm, str(tmp_path / "ae"), into="encoder")


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llada", "dream"])
def test_a_public_model_fine_tunes_and_exports_in_its_own_layout(tmp_path, family):
    """A few SFT steps of a tiny public folder from a JSONL file: the losses are finite, the export is the
    folder's layout (same tensor names, config.json, tokenizer) with a meta.json, and zoo.load samples it."""
    import json

    from safetensors import safe_open

    from models.dllm_code.tiny_public import write_tiny_folder

    folder = write_tiny_folder(tmp_path / family, family)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"def f{i}(x):\n", "answer": f"    return x * {i}\n"}) + "\n"
                             for i in range(24)))
    export = tmp_path / "export"
    result = run_train(tmp_path / "run", "model=public_sft", f"public_folder={folder}", f"data.path={pairs}",
                       "trainer.max_steps=4", "trainer.val_check_interval=4", "data.batch_size=4", "data.seq_len=64",
                       f"export_dir={export}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert all(math.isfinite(v) for v in train_losses(tmp_path / "run").values())
    assert (export / "config.json").read_text() == (folder / "config.json").read_text()
    with safe_open(str(export / "model.safetensors"), "pt") as a, safe_open(str(folder / "model.safetensors"), "pt") as b:
        assert set(a.keys()) == set(b.keys())
        assert any(not a.get_tensor(k).equal(b.get_tensor(k)) for k in a.keys())  # trained
    meta = json.loads((export / "meta.json").read_text())
    assert meta["steps"] == 4 and meta["data"]["train"]["rows"] > 0
    out = zoo.load(export)(prompt="def f(x):\n", gen_length=8, steps=8)
    assert out.tokens.shape == (1, 8)


@pytest.mark.slow
def test_lora_fine_tuning_exports_an_adapter_that_loads_on_its_base(tmp_path):
    import json

    from models.dllm_code.tiny_public import write_tiny_folder

    folder = write_tiny_folder(tmp_path / "dream", "dream")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"x = {i}\n", "answer": f"y = {i}\n"}) + "\n" for i in range(12)))
    export = tmp_path / "adapter"
    result = run_train(tmp_path / "run", "model=public_sft", f"public_folder={folder}", f"data.path={pairs}",
                       "+lora.r=4", "trainer.max_steps=3", "trainer.val_check_interval=3", "data.batch_size=4",
                       "data.seq_len=32", "model.optimizer.lr=1e-2", f"export_dir={export}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert {p.name for p in export.iterdir()} == {"adapter_config.json", "adapter_model.safetensors", "meta.json"}
    assert json.loads((export / "adapter_config.json").read_text())["r"] == 4
    base, tuned = zoo.load(folder), zoo.load(folder, adapter=export)
    x = torch.randint(0, base.net.vocab_size, (1, 8))
    with torch.no_grad():
        assert not torch.allclose(base.net(x), tuned.net(x))  # the adapter learned something, and it is applied
