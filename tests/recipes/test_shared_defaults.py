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
