"""Time a domain's sampling settings on its shipped checkpoint, in one run on one machine.
Prints a table, then one JSON object on the last line.

    python recipes/bench.py model=dllm_code [quick=true]
    python recipes/bench.py model=distilled_decoding [quick=true]
    python recipes/bench.py model=meshcraft [quick=true] [+kwargs.steps=25] [+kwargs.guidance_scale=1.0]

Benchmarks are registered by the domains (``zoo.register_benchmark``); ``zoo.list_benchmarks()`` names
them. ``+kwargs`` are the benchmark's own sampling settings (its function's extra keyword arguments).
"""

from __future__ import annotations

import json
import sys

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from zoo.pipeline import check_kwargs
from zoo.provenance import git_sha, hardware
from zoo.registry import get_benchmark

COMMON = ("pretrained", "baseline", "quick", "repeats", "seed", "device")  # every benchmark takes these


@hydra.main(config_path="configs/run", config_name="bench", version_base="1.3")
def main(cfg: DictConfig) -> None:
    kwargs = OmegaConf.to_container(cfg.kwargs)
    try:
        run = get_benchmark(cfg.model)
        if set(kwargs) & set(COMMON):
            raise ValueError(f"set {sorted(set(kwargs) & set(COMMON))} as top-level options, not +kwargs")
        check_kwargs(run, kwargs, given=COMMON)
        torch.manual_seed(cfg.seed)
        result = run(**{k: cfg[k] for k in COMMON}, **kwargs)
    except ValueError as e:  # an unknown domain or setting, a missing checkpoint: the message lists what exists
        sys.exit(f"error: {e}")
    print(json.dumps({"model": cfg.model, "pretrained": cfg.pretrained, "quick": cfg.quick, "kwargs": kwargs, **result,
                      "git_sha": git_sha(), "hardware": hardware()}))


if __name__ == "__main__":
    main()
