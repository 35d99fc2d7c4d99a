"""The pretrained format: a directory holding

    config.json        {"format", "model": registered name, "model_kwargs", "pipeline_kwargs",
                        "weights_sha256": the hash of model.safetensors,
                        "files_sha256": {path: hash} of every other file but meta.json and README.md
                        (tokenizer, side files, sub-checkpoints' files), "model_sha256": the hash of
                        the model name and kwargs (a hand-edited config.json is caught)}
    model.safetensors  the weights (tied tensors stored once; metadata names the model)
    meta.json          how it was made: command, git sha, steps, wall time, hardware, metrics
    ...                the pipeline's own files (a tokenizer, say)

A checkpoint is written whole or not at all: into a hidden sibling folder, renamed into place when
every file is there, so an interrupted export leaves the previous checkpoint (or none), never a mix.
Loading never unpickles, checks that every file is the one config.json names (and a regular file),
that the weights are finite, and every failure names the file and what is wrong with it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from zoo.hub import hub_snapshot, is_hub_id
from zoo.registry import create_model

FORMAT = "zoo/1"
CONFIG, WEIGHTS, META = "config.json", "model.safetensors", "meta.json"
MISSING_HINT = f"; a checkpoint directory holds {CONFIG}, {WEIGHTS} and {META}"
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
    names = {p.name for d in checkpoint_dirs() if d.is_dir() for p in d.iterdir()
             if not p.name.startswith(".") and (p / CONFIG).is_file()}  # hidden: an export in progress
    return sorted(names)


def restore_interrupted(directory: Path) -> bool:
    """An export killed between its two renames leaves ``directory`` absent and the previous checkpoint
    as a hidden ``.<name>.old-<pid>`` sibling: put the newest such one back. True if one was restored."""
    if directory.exists() or not directory.parent.is_dir():
        return False
    olds = sorted(directory.parent.glob(f".{directory.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if not olds or not (olds[-1] / CONFIG).is_file():
        return False
    os.replace(olds[-1], directory)
    return True


def resolve(name_or_path: str | os.PathLike, download: bool = False, revision: str | None = None) -> Path:
    """A checkpoint directory from a pretrained name, a path (one an interrupted export moved aside is
    restored first) or a Hugging Face Hub id, "org/name", read from huggingface_hub's cache (zoo.hub;
    fetched only with ``download``)."""
    path = Path(name_or_path)
    restore_interrupted(path)
    if path.is_dir():
        return path
    for d in checkpoint_dirs():
        restore_interrupted(d / str(name_or_path))
        if (d / str(name_or_path)).is_dir():
            return d / str(name_or_path)
    if is_hub_id(str(name_or_path)):
        return hub_snapshot(str(name_or_path), revision, download)
    raise ValueError(f"no pretrained model {str(name_or_path)!r}; available: "
                     f"{', '.join(list_pretrained()) or 'none'} (or pass a checkpoint directory or a Hub id)")


def read_json(path: Path, missing: str = "") -> dict:
    """A JSON object from a checkpoint's file; ``missing`` is added to the error when it is absent."""
    if path.exists() and not path.is_file():
        raise CheckpointError(f"{path}: not a regular file")
    if not path.is_file():
        raise CheckpointError(f"{path}: missing{missing}")
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({type(e).__name__})") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot be read ({e.strerror})") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def load_config(directory: str | os.PathLike) -> dict:
    path = Path(directory) / CONFIG
    config = read_json(path, MISSING_HINT)
    for key in ("model", "model_kwargs"):
        if key not in config:
            raise CheckpointError(f"{path}: no {key!r} entry")
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format {config.get('format')!r}, expected {FORMAT!r}")
    return config


def load_meta(directory: str | os.PathLike) -> dict:
    return read_json(Path(directory) / META, MISSING_HINT)


def _unique_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """state_dict with tied tensors kept once (under their first name)."""
    seen, out = set(), {}
    for name, tensor in net.state_dict().items():
        key = (tensor.data_ptr(), tensor.shape, tensor.stride())
        if key not in seen:
            seen.add(key)
            out[name] = tensor.detach().contiguous().cpu()
    return out


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def atomic_dir(directory: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty hidden sibling of ``directory`` to write into; when the block ends without an
    error, it replaces ``directory`` (the old one is moved aside first, then removed). A crash leaves
    only the hidden folder: ``directory`` is the old checkpoint, or absent, never half-written."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    restore_interrupted(directory)  # an earlier export killed between the renames
    tmp = directory.parent / f".{directory.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = directory.parent / f".{directory.name}.old-{os.getpid()}"
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)


def check_writable(directory: str | os.PathLike, what: str = "export_dir") -> None:
    """Fail now, not after hours of training (or minutes of sampling), if a folder cannot be written at
    ``directory``; ``what`` names the setting in the message."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{what} {directory} exists and is not a folder")
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        os.rmdir(tempfile.mkdtemp(prefix=f".{directory.name}.probe-", dir=directory.parent))  # what atomic_dir does
    except OSError as e:
        raise ValueError(f"{what} {directory} cannot be written: {e}") from None


# not in files_sha256: the config itself, provenance and documentation (appended to after export), and
# the weights, whose hash is weights_sha256
UNSEALED = (CONFIG, META, "README.md", WEIGHTS)


def model_sha256(config: dict) -> str:
    """The hash of what builds the network: the model's name and its kwargs (canonical JSON)."""
    text = json.dumps({"model": config["model"], "model_kwargs": config["model_kwargs"]}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def sealed_files(directory: Path) -> list[str]:
    """The files a checkpoint's config.json records in files_sha256: every regular file under it,
    sub-folders included, but its own config.json, meta.json, README.md and weights (a sub-checkpoint's
    files, its config.json and weights among them, are recorded)."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")
                  if p.is_file() and str(p.relative_to(directory)) not in UNSEALED
                  and not any(part.startswith(".") for part in p.relative_to(directory).parts))


def seal(directory: Path) -> dict:
    """Record in config.json the hash of every file the checkpoint holds and of the model it builds."""
    directory = Path(directory)
    config = read_json(directory / CONFIG, MISSING_HINT)
    config["files_sha256"] = {name: file_sha256(directory / name) for name in sealed_files(directory)}
    config["model_sha256"] = model_sha256(config)
    (directory / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return config


def check_sealed(directory: Path, config: dict) -> None:
    """Every file config.json records is there, a regular file, and the one it was written with; the
    model name and kwargs are the ones it was written with. Checkpoints from before the seal have none."""
    recorded = config.get("model_sha256")
    if recorded is not None and model_sha256(config) != recorded:
        raise CheckpointError(f"{directory / CONFIG}: its model or model_kwargs were changed after export "
                              f"(model_sha256 differs); the weights were trained for the recorded ones")
    for name, digest in (config.get("files_sha256") or {}).items():
        path = directory / name
        if not path.is_file():
            raise CheckpointError(f"{path}: missing or not a regular file (config.json records it)")
        try:
            same = file_sha256(path) == digest
        except OSError as e:
            raise CheckpointError(f"{path}: cannot be read ({e.strerror})") from None
        if not same:
            raise CheckpointError(f"{path}: not the file {directory / CONFIG} was written with (sha256 differs)")


def save_pretrained(net: nn.Module, directory: str | os.PathLike, meta: dict | None = None,
                    pipeline_kwargs: dict | None = None, extra: Callable[[Path], None] | None = None) -> Path:
    """Write config.json, model.safetensors and meta.json for a net made by ``zoo.create_model``, and
    whatever ``extra(folder)`` adds (a pipeline's tokenizer, the data's side files), atomically."""
    if not hasattr(net, "zoo_config"):
        raise ValueError("save_pretrained needs a net built by zoo.create_model (it has no zoo_config)")
    directory = Path(directory)
    with atomic_dir(directory) as tmp:
        save_file(_unique_state(net), str(tmp / WEIGHTS), metadata={"format": "pt", "model": net.zoo_config["model"]})
        config = {"format": FORMAT, **net.zoo_config, "pipeline_kwargs": pipeline_kwargs or {},
                  "weights_sha256": file_sha256(tmp / WEIGHTS)}
        (tmp / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        (tmp / META).write_text(json.dumps(meta or {}, indent=2) + "\n")
        if extra is not None:
            extra(tmp)
        seal(tmp)
    return directory


def load_weights(net: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load model.safetensors into net, checking every name and shape first."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: missing or not a regular file")
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
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path}: non-finite values (NaN or inf) in {bad[:5]}")
    net.load_state_dict(state, strict=False)  # tied aliases are absent from the file by design
    return net


def load_net(directory: str | os.PathLike) -> tuple[nn.Module, dict]:
    """Rebuild the net from config.json and load its weights. Returns (net in eval mode, config)."""
    directory = Path(directory)
    config = load_config(directory)
    check_sealed(directory, config)
    check_size(directory, config)
    try:
        net = create_model(config["model"], **config["model_kwargs"])
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{directory / CONFIG}: cannot build the model ({e})") from None
    check_identity(directory, config)
    load_weights(net, directory / WEIGHTS)
    return net.eval(), config


def check_size(directory: Path, config: dict) -> None:
    """The network config.json describes, built on the meta device (nothing allocated), has no more
    parameters than the weights file holds (read from its header): a config asking for a vocabulary
    of 10^9 is refused before memory is spent on it."""
    path = directory / WEIGHTS
    if not path.is_file():
        return  # load_weights names it
    try:
        with torch.device("meta"):
            net = create_model(config["model"], **config["model_kwargs"])
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{directory / CONFIG}: cannot build the model ({e})") from None
    except (RuntimeError, NotImplementedError):
        return  # a builder that computes with tensor values (.item()) cannot run on the meta device
    described = sum(p.numel() for p in net.parameters())
    try:
        with safe_open(str(path), "pt") as f:
            held = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    except (SafetensorError, OSError):
        return  # load_weights reports an unreadable file
    if described > held:
        raise CheckpointError(f"{directory / CONFIG}: describes a network of {described:,} parameters, but "
                              f"{path.name} holds {held:,} values")


def check_identity(directory: Path, config: dict) -> None:
    """The weights are the ones this config.json was written with: their hash (recorded at export;
    checkpoints from before it have none) and the model their safetensors metadata names."""
    path = directory / WEIGHTS
    recorded = config.get("weights_sha256")
    if not path.is_file():
        return  # load_weights reports it (a FIFO or device here would block the reads below)
    if recorded is not None and file_sha256(path) != recorded:
        raise CheckpointError(f"{path}: not the weights {directory / CONFIG} was written with (sha256 "
                              f"differs): another model's or another export's file")
    try:
        with safe_open(str(path), "pt") as f:
            named = (f.metadata() or {}).get("model")
    except (SafetensorError, OSError):
        return  # load_weights reports an unreadable file
    if named is not None and named != config["model"]:
        raise CheckpointError(f"{path}: holds {named!r} weights, but {directory / CONFIG} describes {config['model']!r}")
