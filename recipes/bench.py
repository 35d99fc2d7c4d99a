"""Time a domain's sampling settings on its shipped checkpoint, in one run on one machine.
Prints a table, then one JSON object on the last line.

    python recipes/bench.py model=dllm_code [quick=true]
    python recipes/bench.py model=distilled_decoding [quick=true]
    python recipes/bench.py model=meshcraft [quick=true] [+kwargs.steps=25] [+kwargs.guidance_scale=1.0]
    python recipes/bench.py model=dllm_code out=models/dllm_code/bench.json   # the JSON kept (a committed tree only)

Benchmarks are registered by the domains (``zoo.register_benchmark``); ``zoo.list_benchmarks()`` names
them. ``+kwargs`` are the benchmark's own sampling settings (its function's extra keyword arguments).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from zoo.pipeline import check_kwargs
from zoo.recipe_help import exit_with_help_if_asked
from zoo.pretrained import REPO_ROOT
from zoo.provenance import git_sha, hardware, uncommitted_code
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
    record = json.dumps({"model": cfg.model, "pretrained": cfg.pretrained, "quick": cfg.quick, "kwargs": kwargs,
                         **result, "git_sha": git_sha(), "hardware": hardware()})
    if cfg.out:
        write_record(Path(cfg.out), record)
    print(record)


def write_record(path: Path, record: str) -> None:
    """The JSON into ``path``: inside the repo only from a tree whose code is committed (the record's
    git_sha then names the code that made it); outside it, anywhere (its git_sha says -dirty)."""
    path = path.resolve()
    if path.is_relative_to(REPO_ROOT):
        changed = uncommitted_code(ignore=(str(path.relative_to(REPO_ROOT)),))
        if changed:
            sys.exit(f"error: out={path} is inside the repo and these files differ from the last commit: "
                     f"{', '.join(changed[:5])}; commit them first, or write the record outside the repo")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json.loads(record), indent=4) + "\n")


if __name__ == "__main__":
    exit_with_help_if_asked(__doc__, Path(__file__).parent / "configs/run/bench.yaml", ())
    main()
