"""The registry: named builder functions, each tied to the pipeline that samples from it, and what the
recipes need of a domain (its eval tasks and its benchmark).

Domains register in their own packages (``models/<domain>``) and announce the package under the
``zoo.models`` entry-point group in pyproject.toml; the registry imports those packages the first time
it is asked for a name, so neither ``zoo`` nor a recipe ever imports ``models``. Tasks and benchmarks
are registered as ``"module:function"`` strings and imported when run, so loading a model does not
pull in evaluation code.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Callable

import torch.nn as nn

ENTRY_POINT_GROUP = "zoo.models"


@dataclass
class Example:
    """What the shared contract test (tests/models/test_contract.py) runs on a model."""

    args: tuple  # net(*args, **kwargs): usually (x_t, t, cond)
    kwargs: dict
    out_shape: tuple  # expected output shape
    sample: Callable  # (net, generator) -> tensor: a 2-step sample through the model's objective
    stochastic: bool = True  # the sample depends on the generator (another seed, another sample)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    pipeline: type | None  # the zoo.pipeline.Pipeline subclass that samples from this model
    example: Callable | None  # (net, generator) -> Example, for the contract test


_MODELS: dict[str, ModelEntry] = {}
_discovered = False


def register_model(name: str, pipeline: type | None = None, example: Callable | None = None):
    """Decorator: ``@register_model("dllm_code-tiny", pipeline=CodePipeline, example=...)`` on a
    builder whose keyword arguments (with defaults) are the model's hyperparameters."""

    def wrap(builder):
        if name in _MODELS and _MODELS[name].builder is not builder:
            raise ValueError(f"model {name!r} is registered twice")
        _MODELS[name] = ModelEntry(name, builder, pipeline, example)
        return builder

    return wrap


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()  # importing the package runs its @register_model decorators


def get_entry(name: str) -> ModelEntry:
    _discover()
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(list_models()) or 'none'}")
    return _MODELS[name]


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a glob pattern, sorted."""
    _discover()
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def model_kwargs(name: str, **overrides) -> dict:
    """The builder's full keyword arguments: its defaults updated by ``overrides``."""
    builder = get_entry(name).builder
    sig = inspect.signature(builder)
    unknown = sorted(set(overrides) - set(sig.parameters))
    if unknown:
        raise ValueError(f"model {name!r} has no argument(s) {unknown}; it takes {sorted(sig.parameters)}")
    bound = sig.bind(**overrides)
    bound.apply_defaults()
    return dict(bound.arguments)


def create_model(name: str, **overrides) -> nn.Module:
    """Build a registered model. The full arguments are kept on ``net.zoo_config`` so that
    ``save_pretrained`` can rebuild it from config.json."""
    kwargs = model_kwargs(name, **overrides)
    net = get_entry(name).builder(**kwargs)
    net.zoo_config = {"model": name, "model_kwargs": kwargs}
    return net


# name -> "module:function". A task: fn(pipe, generator=..., **kwargs) -> metrics dict. A benchmark:
# fn(pretrained=..., baseline=..., quick=..., repeats=..., seed=..., device=..., **settings) -> dict.
_TASKS: dict[str, str] = {}
_BENCHMARKS: dict[str, str] = {}
_ABLATIONS: dict[str, str] = {}  # domain -> "module:NAME" of a zoo.ablation.Ablation


def _register(table: dict, kind: str, name: str, target: str) -> None:
    if ":" not in target:
        raise ValueError(f"{kind} {name!r}: target {target!r} must read 'module:function'")
    if table.get(name, target) != target:
        raise ValueError(f"{kind} {name!r} is registered twice ({table[name]} and {target})")
    table[name] = target


def register_task(name: str, target: str) -> None:
    """An eval task for ``recipes/eval.py task=<name>``; a pipeline's ``default_task`` names one."""
    _register(_TASKS, "task", name, target)


def register_benchmark(domain: str, target: str) -> None:
    """The benchmark of ``recipes/bench.py model=<domain>``."""
    _register(_BENCHMARKS, "benchmark", domain, target)


def register_ablation(domain: str, target: str) -> None:
    """The ablation (a ``zoo.ablation.Ablation``) of ``recipes/ablate.py model=<domain>``."""
    _register(_ABLATIONS, "ablation", domain, target)


def _resolve(table: dict, kind: str, name: str) -> Callable:
    _discover()
    if name not in table:
        raise ValueError(f"unknown {kind} {name!r}; {kind}s: {', '.join(sorted(table)) or 'none'}")
    module, function = table[name].split(":")
    return getattr(importlib.import_module(module), function)


def get_task(name: str) -> Callable:
    return _resolve(_TASKS, "task", name)


def get_benchmark(domain: str) -> Callable:
    return _resolve(_BENCHMARKS, "benchmark", domain)


def get_ablation(domain: str):
    return _resolve(_ABLATIONS, "ablation", domain)


def list_ablations() -> list[str]:
    _discover()
    return sorted(_ABLATIONS)


def list_tasks() -> list[str]:
    _discover()
    return sorted(_TASKS)


def list_benchmarks() -> list[str]:
    _discover()
    return sorted(_BENCHMARKS)
