"""The pretrained format: a directory holding

    config.json        {"format", "model": registered name, "model_kwargs", "pipeline_kwargs"}
    model.safetensors  the weights (tied tensors stored once)
    meta.json          how it was made: command, git sha, steps, wall time, hardware, metrics
    ...                the pipeline's own files (a tokenizer, say)

Loading never unpickles; every failure names the file and what is wrong with it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from zoo.registry import create_model

FORMAT = "zoo/1"
CONFIG, WEIGHTS, META = "config.json", "model.safetensors", "meta.json"
# A checkpoint may carry the checkpoints it depends on in sub-folders, and side files beside its own:
TOKENIZER_DIR = "tokenizer"  # a token model's tokenizer (image_ar, distilled_decoding)
VAE_DIR = "vae"  # a latent model's autoencoder (meshcraft)
LATENT_STATS = "latent_stats.json"  # per-dimension mean / std of the latents it was trained on


def component_files(directory: Path, prefix: str) -> dict[str, Path]:
    """A checkpoint's files as another checkpoint carries it in ``prefix/``: {"prefix/config.json": path, ...}."""
    return {f"{prefix}/{name}": directory / name for name in (CONFIG, WEIGHTS, META) if (directory / name).is_file()}
REPO_ROOT = Path(__file__).resolve().parents[1]


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or does not match the model it describes."""


def checkpoint_dirs() -> list[Path]:
    """Where ``zoo.load(name)`` looks: $ZOO_CHECKPOINTS (os.pathsep-separated), then checkpoints/."""
    extra = [Path(p) for p in os.environ.get("ZOO_CHECKPOINTS", "").split(os.pathsep) if p]
    return extra + [REPO_ROOT / "checkpoints"]


def list_pretrained() -> list[str]:
    names = {p.name for d in checkpoint_dirs() if d.is_dir() for p in d.iterdir() if (p / CONFIG).is_file()}
    return sorted(names)


def resolve(name_or_path: str | os.PathLike) -> Path:
    """A checkpoint directory from a pretrained name or a path."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    for d in checkpoint_dirs():
        if (d / str(name_or_path)).is_dir():
            return d / str(name_or_path)
    raise ValueError(f"no pretrained model {str(name_or_path)!r}; available: "
                     f"{', '.join(list_pretrained()) or 'none'} (or pass a checkpoint directory)")


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; a checkpoint directory holds {CONFIG}, {WEIGHTS} and {META}")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None


def load_config(directory: str | os.PathLike) -> dict:
    path = Path(directory) / CONFIG
    config = _read_json(path)
    for key in ("model", "model_kwargs"):
        if key not in config:
            raise CheckpointError(f"{path}: no {key!r} entry")
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format {config.get('format')!r}, expected {FORMAT!r}")
    return config


def load_meta(directory: str | os.PathLike) -> dict:
    return _read_json(Path(directory) / META)


def _unique_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """state_dict with tied tensors kept once (under their first name)."""
    seen, out = set(), {}
    for name, tensor in net.state_dict().items():
        key = (tensor.data_ptr(), tensor.shape, tensor.stride())
        if key not in seen:
            seen.add(key)
            out[name] = tensor.detach().contiguous().cpu()
    return out


def save_pretrained(net: nn.Module, directory: str | os.PathLike, meta: dict | None = None,
                    pipeline_kwargs: dict | None = None) -> Path:
    """Write config.json, model.safetensors and meta.json for a net made by ``zoo.create_model``."""
    if not hasattr(net, "zoo_config"):
        raise ValueError("save_pretrained needs a net built by zoo.create_model (it has no zoo_config)")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = {"format": FORMAT, **net.zoo_config, "pipeline_kwargs": pipeline_kwargs or {}}
    (directory / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    save_file(_unique_state(net), str(directory / WEIGHTS), metadata={"format": "pt"})
    (directory / META).write_text(json.dumps(meta or {}, indent=2) + "\n")
    return directory


def load_weights(net: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load model.safetensors into net, checking every name and shape first."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: cannot be read as safetensors ({e}); the file is truncated "
                              f"or corrupt") from None
    expected = _unique_state(net)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
             for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        parts = [f"missing {missing[:5]}" if missing else "", f"unexpected {unexpected[:5]}" if unexpected else "",
                 f"shape mismatch {wrong[:5]}" if wrong else ""]
        raise CheckpointError(f"{path}: weights do not match the model in config.json: "
                              + "; ".join(p for p in parts if p))
    net.load_state_dict(state, strict=False)  # tied aliases are absent from the file by design
    return net


def load_net(directory: str | os.PathLike) -> tuple[nn.Module, dict]:
    """Rebuild the net from config.json and load its weights. Returns (net in eval mode, config)."""
    directory = Path(directory)
    config = load_config(directory)
    try:
        net = create_model(config["model"], **config["model_kwargs"])
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{directory / CONFIG}: cannot build the model ({e})") from None
    load_weights(net, directory / WEIGHTS)
    return net.eval(), config
