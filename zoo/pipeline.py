"""The sampling API: ``pipe = zoo.load(name)``; ``pipe(batch_size=..., steps=..., generator=..., ...)``.

Every domain's pipeline subclasses ``Pipeline`` and implements ``__call__`` with the shared argument
names (batch_size, steps, generator, prompt / cond, x_init) plus its own. Pipelines load in fp32 on
the CPU; ``.to(device, dtype)`` moves them.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from zoo.generators import check_generator
from zoo.pretrained import (CONFIG, LATENT_STATS, VAE_DIR, CheckpointError, load_config, load_meta, load_net, read_json, resolve,
                            save_pretrained)
from zoo.public import detect, is_public
from zoo.registry import get_entry


def _checked_call(call):
    """A pipeline's ``__call__`` that refuses a ``generator`` that is neither a torch.Generator nor a
    list of them (zoo.generators), by name, before any work (a seed or a numpy generator failed deep
    inside)."""
    @functools.wraps(call)
    def checked(self, *args, **kwargs):
        check_generator(kwargs.get("generator"))
        return call(self, *args, **kwargs)

    return checked


class Pipeline:
    default_task: str | None = None  # the eval task (zoo.registry.register_task) recipes/eval.py runs by default
    settings: tuple[str, ...] = ()  # the pipeline_kwargs (config.json) this pipeline reads; others are refused

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__call__" in cls.__dict__:
            cls.__call__ = _checked_call(cls.__dict__["__call__"])

    def __init__(self, net: nn.Module, meta: dict | None = None, **pipeline_kwargs):
        unknown = sorted(set(pipeline_kwargs) - set(self.settings))
        if unknown:
            raise TypeError(f"{type(self).__name__} reads no setting(s) {unknown}; it reads {list(self.settings)}")
        self.net = net
        self.meta = meta or {}
        self.pipeline_kwargs = pipeline_kwargs

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> "Pipeline":
        directory = Path(directory)
        net, config = load_net(directory)
        meta = load_meta(directory)
        components = cls.load_components(directory, net)
        try:
            return cls(net, meta=meta, **components, **config.get("pipeline_kwargs", {}))
        except TypeError as e:  # an unknown or missing pipeline_kwargs entry
            raise CheckpointError(f"{directory / CONFIG}: its pipeline_kwargs do not fit {cls.__name__} ({e})") from None

    @classmethod
    def from_public(cls, directory: str | os.PathLike, device=None, dtype=None, adapter=None) -> "Pipeline":
        """A public checkpoint folder in its own layout (zoo.public); a pipeline that reads one says how."""
        raise NotImplementedError(f"{cls.__name__} does not read public checkpoint folders")

    @classmethod
    def load_components(cls, directory: Path, net: nn.Module) -> dict:
        """The pipeline's own files in the checkpoint (a tokenizer, say), as constructor kwargs, each
        checked against ``net``; a broken or mismatched file raises a CheckpointError naming it."""
        return {}

    def save_components(self, directory: Path) -> None:
        """Write the files that ``load_components`` reads."""

    def save_pretrained(self, directory: str | os.PathLike, meta: dict | None = None) -> Path:
        return save_pretrained(self.net, directory, meta=meta if meta is not None else self.meta,
                               pipeline_kwargs=self.pipeline_kwargs, extra=self.save_components)

    def setting(self, name: str, value):
        """A sampling argument: the caller's value, else the checkpoint's default from config.json's
        pipeline_kwargs, the one place a pipeline's defaults live (the signature says None)."""
        if value is not None:
            return value
        if name not in self.pipeline_kwargs:
            raise ValueError(f"{name} was not given and this checkpoint's config.json sets no default for it "
                             f"(pipeline_kwargs: {sorted(self.pipeline_kwargs)})")
        return self.pipeline_kwargs[name]

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.net.parameters()).dtype

    def to(self, *args, device=None, dtype=None) -> "Pipeline":
        """Move the pipeline as a torch module moves: ``.to(device)``, ``.to(dtype)``, ``.to(device,
        dtype)`` or by keyword. Every network it holds (``net`` and its components: an autoencoder, a
        tokenizer network) moves device and dtype; its side tensors (latent statistics) move device
        and keep their float32, which is where the pipelines apply them."""
        for arg in args:
            if arg is None:
                continue
            if isinstance(arg, torch.dtype):
                dtype = arg
            elif isinstance(arg, (str, torch.device, int)):
                device = arg
            else:
                raise TypeError(f"{type(self).__name__}.to() takes a device and/or a torch.dtype; got {arg!r}")
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"{type(self).__name__}.to(): dtype must be a floating torch.dtype; got {dtype!r}")
        for name, value in list(vars(self).items()):
            if isinstance(value, nn.Module):
                value.to(device=device, dtype=dtype)
            elif isinstance(value, torch.Tensor) and device is not None:
                setattr(self, name, value.to(device))
        return self

    def __call__(self, *args, **kwargs):
        raise NotImplementedError


def load_latent_components(directory: Path, latent_size: int, size_attr: str, user: str) -> dict:
    """A latent model's autoencoder (``vae/``) and latent normalisation (``latent_stats.json``), as
    {"vae": net, "latent_stats": {"mean": [...], "std": [...]}}, both checked against the
    ``latent_size`` the model ``user`` works on (read from the autoencoder's ``size_attr``)."""
    if not (directory / VAE_DIR).is_dir() or not (directory / LATENT_STATS).is_file():
        raise CheckpointError(f"{directory}: needs {VAE_DIR}/ and {LATENT_STATS}")
    vae, config = load_net(directory / VAE_DIR)
    if getattr(vae, size_attr, None) != latent_size:
        raise CheckpointError(f"{directory / VAE_DIR}: holds {config['model']!r} with {getattr(vae, size_attr, 'no')}-d "
                              f"latents, but the {user} works on {latent_size}")
    path = directory / LATENT_STATS
    try:
        stats = json.loads(path.read_text())
        mean, std = torch.tensor(stats["mean"], dtype=torch.float32), torch.tensor(stats["std"], dtype=torch.float32)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: expected {{\"mean\": [...], \"std\": [...]}} ({type(e).__name__}: {e})") from None
    if mean.shape != (latent_size,) or std.shape != (latent_size,) or not (
            torch.isfinite(mean).all() and torch.isfinite(std).all() and (std > 0).all()):
        raise CheckpointError(f"{path}: mean and std must be {latent_size} finite numbers (std > 0)")
    return {"vae": vae, "latent_stats": stats}


def save_latent_components(directory: Path, vae: nn.Module, mean: torch.Tensor, std: torch.Tensor) -> None:
    """What ``load_latent_components`` reads."""
    save_pretrained(vae, directory / VAE_DIR)
    (directory / LATENT_STATS).write_text(json.dumps({"mean": mean.tolist(), "std": std.tolist()}))


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def dtype_named(name: str | None) -> torch.dtype | None:
    """A recipe's ``dtype=`` option (None, float32, bfloat16, float16) as a torch dtype."""
    if name is None:
        return None
    if str(name) not in DTYPES:
        raise ValueError(f"dtype={name!r}: expected one of {sorted(DTYPES)}")
    return DTYPES[str(name)]


def load(name_or_path: str | os.PathLike, device: torch.device | str | None = None,
         dtype: torch.dtype | None = None, adapter: str | os.PathLike | None = None, revision: str | None = None,
         download: bool = False) -> Pipeline:
    """Load a pretrained pipeline by name (see ``list_pretrained``) or from a checkpoint directory: the
    zoo's own format, or a public checkpoint folder (LLaDA, Dream, DiffuCoder, Qwen2, LLaMA; zoo.public),
    whose weights go straight to ``device`` in ``dtype`` (default: float32 on a CPU, bfloat16 on a GPU).
    The zoo's own checkpoints load in float32 and then move. ``adapter``: a LoRA adapter folder (peft's
    files, zoo.lora) merged into a public model's weights. A Hugging Face Hub id ("org/name", at
    ``revision``) is read from huggingface_hub's cache; ``download=True`` lets it fetch (zoo.hub)."""
    directory = resolve(name_or_path, download=download, revision=revision)
    raw = read_json(directory / CONFIG)
    if is_public(raw):
        entry = get_entry(detect(directory).model)
        return entry.pipeline.from_public(directory, device=device, dtype=dtype, adapter=adapter)
    if adapter is not None:
        raise ValueError("adapter= applies to a public checkpoint folder; this is a zoo checkpoint")
    config = load_config(directory)
    entry = get_entry(config["model"])
    if entry.pipeline is None:
        raise ValueError(f"model {config['model']!r} has no pipeline registered")
    pipe = entry.pipeline.from_pretrained(directory)
    return pipe.to(device, dtype) if device is not None or dtype is not None else pipe


def check_kwargs(fn: Callable, kwargs: dict, given: tuple[str, ...] = ()) -> None:
    """Raise a ValueError naming any keyword ``fn`` does not take (and the ones it does), or any
    argument it requires that neither ``kwargs`` nor the caller (``given``) supplies, so a mistyped
    or missing recipe argument fails with a message instead of a TypeError from deep inside."""
    params = inspect.signature(fn).parameters
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    missing = [n for n, p in params.items() if p.kind in named and p.default is inspect.Parameter.empty
               and n not in kwargs and n not in given and n != "self"]
    if missing:
        raise ValueError(f"{getattr(fn, '__qualname__', fn)} needs argument(s) {missing}, which this "
                         f"command does not supply")
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise ValueError(f"{getattr(fn, '__qualname__', fn)} takes no argument(s) {unknown}; "
                         f"it takes {sorted(n for n in params if n != 'self')}")
