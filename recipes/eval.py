"""Evaluate a pretrained model on a task. The last line of stdout is one JSON object.

    python recipes/eval.py model=dllm_code-tiny task=bpt
    python recipes/eval.py model=dllm_code-tiny task=humaneval +kwargs.steps=128 +kwargs.block_length=32
    python recipes/eval.py model=distilled_decoding-mnist task=images +kwargs.steps=1
    python recipes/eval.py model=meshcraft-tiny            # the pipeline's default task (here: meshes)
    python recipes/eval.py model=/path/to/LLaDA-8B-Instruct task=humaneval device=cuda   # a public folder

Tasks are registered by the domains (``zoo.register_task``); ``zoo.list_tasks()`` names them.
"""

from __future__ import annotations

import json
from pathlib import Path
import sys
import time

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

import zoo
from zoo.recipe_help import exit_with_help_if_asked
from zoo.pipeline import check_kwargs, dtype_named
from zoo.provenance import git_sha, hardware
from zoo.registry import get_task


@hydra.main(config_path="configs/run", config_name="eval", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        pipe = zoo.load(cfg.model, device=cfg.device, dtype=dtype_named(cfg.dtype))
        task = cfg.task or pipe.default_task
        if task is None:
            raise ValueError(f"{cfg.model} has no default task: name one of {', '.join(zoo.list_tasks())}")
        run_task = get_task(task)
    except ValueError as e:
        sys.exit(f"error: {e}")
    start = time.perf_counter()
    generator = torch.Generator(device=cfg.device).manual_seed(cfg.seed)
    kwargs = OmegaConf.to_container(cfg.kwargs)
    try:
        check_kwargs(run_task, kwargs, given=("pipe", "generator"))
        metrics = run_task(pipe, generator=generator, **kwargs)
    except ValueError as e:  # impossible arguments for this task or pipeline: the message says which
        sys.exit(f"error: {e}")
    print(json.dumps({"model": cfg.model, "task": task, **metrics,
                      "seconds": round(time.perf_counter() - start, 2), "git_sha": git_sha(),
                      "hardware": hardware()}))


if __name__ == "__main__":
    exit_with_help_if_asked(__doc__, Path(__file__).parent / "configs/run/eval.yaml", ())
    main()
