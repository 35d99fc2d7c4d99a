"""Evaluate a pretrained model on a task. The last line of stdout is one JSON object.

    python recipes/eval.py model=dllm_code-tiny task=bpt
    python recipes/eval.py model=dllm_code-tiny task=humaneval +kwargs.steps=128 +kwargs.block_length=32
    python recipes/eval.py model=distilled_decoding-mnist task=images +kwargs.steps=1
    python recipes/eval.py model=meshcraft-tiny            # a mesh model's default task: meshes
    python recipes/eval.py model=meshcraft_vae-tiny        # the VAE's: reconstruction of the test split
"""

from __future__ import annotations

import json
import sys
import time

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

import zoo
from models.dllm_code.evaluate import bits_per_token
from models.dllm_code.humaneval import humaneval
from models.image_ar.evaluate import images_task
from models.meshcraft.evaluate import meshes_task, reconstruction_task
from zoo.pipeline import check_kwargs
from zoo.provenance import git_sha, hardware

TASKS = {"bpt": bits_per_token, "humaneval": humaneval, "images": images_task, "meshes": meshes_task,
         "reconstruction": reconstruction_task}  # task name -> fn(pipe, generator=..., **kwargs) -> metrics dict


@hydra.main(config_path="configs/run", config_name="eval", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        pipe = zoo.load(cfg.model)
    except ValueError as e:
        sys.exit(f"error: {e}")
    task = cfg.task or getattr(pipe, "default_task", None)
    if task not in TASKS:
        sys.exit(f"error: unknown task {task!r}; tasks: {', '.join(sorted(TASKS))}")
    pipe.to(cfg.device)
    start = time.perf_counter()
    generator = torch.Generator(device=cfg.device).manual_seed(cfg.seed)
    kwargs = OmegaConf.to_container(cfg.kwargs)
    try:
        check_kwargs(TASKS[task], kwargs, given=("pipe", "generator"))
        metrics = TASKS[task](pipe, generator=generator, **kwargs)
    except ValueError as e:  # impossible arguments for this task or pipeline: the message says which
        sys.exit(f"error: {e}")
    print(json.dumps({"model": cfg.model, "task": task, **metrics,
                      "seconds": round(time.perf_counter() - start, 2), "git_sha": git_sha(),
                      "hardware": hardware()}))


if __name__ == "__main__":
    main()
