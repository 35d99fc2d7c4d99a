"""Time a domain's sampling settings on its shipped checkpoint, in one run on one machine.
Prints a table, then one JSON object on the last line.

    python recipes/bench.py model=dllm_code [quick=true]
    python recipes/bench.py model=distilled_decoding [quick=true]
    python recipes/bench.py model=meshcraft [quick=true] [+kwargs.steps=25] [+kwargs.guidance_scale=1.0]
"""

from __future__ import annotations

import json
import sys

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

import zoo
from models.distilled_decoding import bench as distilled_decoding_bench
from models.dllm_code import bench as dllm_code_bench
from models.meshcraft import bench as meshcraft_bench
from zoo.provenance import git_sha, hardware


def bench_dllm_code(cfg: DictConfig) -> dict:
    pipes = {"diffusion": zoo.load(cfg.pretrained or "dllm_code-tiny").to(cfg.device)}
    baseline = cfg.get("baseline") or "ar_code-tiny"
    pipes["ar"] = zoo.load(baseline).to(cfg.device) if baseline in zoo.list_pretrained() else None
    if pipes["ar"] is None:
        print(f"note: no {baseline} checkpoint; the AR rows are left out")
    return dllm_code_bench.bench(pipes, cfg.quick, cfg.repeats, cfg.seed)


def bench_distilled_decoding(cfg: DictConfig) -> dict:
    pipes = {"student": zoo.load(cfg.pretrained or "distilled_decoding-mnist"), "teacher": zoo.load(cfg.get("baseline") or "image_ar-mnist"),
             "parallel": zoo.load("dd_parallel-mnist")}
    for pipe in pipes.values():
        pipe.to(cfg.device)
    classifier = zoo.load("digit_cnn-mnist").net
    pairs = pipes["student"].meta.get("data") or {}  # the teacher settings the student's pairs were made with
    teacher_kwargs = {k: pairs[k] for k in ("guidance", "temperature") if k in pairs}
    return distilled_decoding_bench.bench(pipes, classifier, pipes["teacher"].net, cfg.quick, cfg.repeats, cfg.seed,
                                          teacher_kwargs)


def bench_meshcraft(cfg: DictConfig) -> dict:
    pipes = {"meshcraft": zoo.load(cfg.pretrained or "meshcraft-tiny"), "ar": zoo.load(cfg.get("baseline") or "meshgpt_ar-tiny")}
    for pipe in pipes.values():
        pipe.to(cfg.device)
    return meshcraft_bench.bench(pipes, cfg.quick, cfg.repeats, cfg.seed,
                                 meshcraft_kwargs=OmegaConf.to_container(cfg.kwargs))


KWARGS = {"meshcraft": ("steps", "guidance_scale")}  # sampling settings a benchmark passes to the timed model


@hydra.main(config_path="configs/run", config_name="bench", version_base="1.3")
def main(cfg: DictConfig) -> None:
    runners = {"dllm_code": bench_dllm_code, "distilled_decoding": bench_distilled_decoding,
               "meshcraft": bench_meshcraft}
    if cfg.model not in runners:
        sys.exit(f"error: no benchmark for {cfg.model!r}; benchmarks: {', '.join(sorted(runners))}")
    kwargs, allowed = OmegaConf.to_container(cfg.kwargs), KWARGS.get(cfg.model, ())
    if set(kwargs) - set(allowed):
        sys.exit(f"error: kwargs {sorted(set(kwargs) - set(allowed))} not taken by the {cfg.model} benchmark; "
                 f"it takes {list(allowed) or 'none'}")
    torch.manual_seed(cfg.seed)
    try:
        result = runners[cfg.model](cfg)
    except ValueError as e:  # a missing checkpoint: the message lists what exists
        sys.exit(f"error: {e}")
    print(json.dumps({"model": cfg.model, "pretrained": cfg.pretrained, "quick": cfg.quick, "kwargs": kwargs, **result,
                      "git_sha": git_sha(), "hardware": hardware()}))


if __name__ == "__main__":
    main()
