"""Training defaults are stated once, in recipes/configs/train.yaml: a model config sets one only to
differ from what it would otherwise inherit (train.yaml's value, or its parent model config's)."""

from pathlib import Path

import yaml

CONFIGS = Path(__file__).resolve().parents[2] / "recipes" / "configs"
SHARED = ("ema_decay",)


def inherited(name: str, key: str, default):
    """The value model config ``name`` would get for ``key`` without its own line."""
    config = yaml.safe_load((CONFIGS / "model" / f"{name}.yaml").read_text()) or {}
    parents = [d for d in config.get("defaults", []) if isinstance(d, str) and d != "_self_"]
    value = default
    for parent in parents:
        own = yaml.safe_load((CONFIGS / "model" / f"{parent}.yaml").read_text()) or {}
        value = own.get(key, inherited(parent, key, default))
    return value


def test_no_model_config_repeats_a_shared_training_default():
    train = yaml.safe_load((CONFIGS / "train.yaml").read_text())
    repeats = []
    for path in sorted((CONFIGS / "model").glob("*.yaml")):
        config = yaml.safe_load(path.read_text()) or {}
        for key in SHARED:
            if key in config and config[key] == inherited(path.stem, key, train[key]):
                repeats.append(f"{path.name}: {key}: {config[key]}")
    assert not repeats, "state these once, in train.yaml (or leave them to the parent config): " + "; ".join(repeats)


def test_every_cache_folder_and_run_folder_follows_the_paths_group(tmp_path):
    """paths.cache_dir moves every training data cache, paths.output_dir the run folders: no data
    config names a cache folder of its own."""
    from hydra import compose, initialize_config_dir

    for path in sorted((CONFIGS / "data").glob("*.yaml")):
        cache = (yaml.safe_load(path.read_text()) or {}).get("cache_dir")
        assert cache is None or str(cache).startswith("${paths.cache_dir}/"), path.name
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        for model in ("dllm_code", "meshcraft", "vilad", "sentence_vae", "distilled_decoding"):
            cfg = compose("train", overrides=[f"model={model}", f"paths.cache_dir={tmp_path}"])
            assert str(cfg.data.cache_dir).startswith(str(tmp_path)), model
    train = yaml.safe_load((CONFIGS / "train.yaml").read_text())
    assert train["hydra"]["run"]["dir"].startswith("${paths.output_dir}/")
