"""Time a domain's sampling settings on its shipped checkpoint, in one run on one machine.
Prints a table, then one JSON object on the last line.

    python recipes/bench.py model=dllm_code [quick=true]
"""

from __future__ import annotations

import json
import sys

import hydra
import torch
from omegaconf import DictConfig

import zoo
from models.dllm_code import bench as dllm_code_bench
from zoo.provenance import git_sha, hardware



def bench_dllm_code(pipe, cfg: DictConfig) -> dict:
    grid = [(64, 1)] if cfg.quick else [(64, 1), (128, 1), (128, 8)]
    rows = []
    for gen_length, batch_size in grid:
        for name, setting in dllm_code_bench.SETTINGS.items():
            row = {"setting": name, **dllm_code_bench.run_setting(pipe, setting, gen_length, batch_size,
                                                                   cfg.repeats, cfg.seed)}
            rows.append(row)
            print(" | ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    longest = max(g for g, b in grid)
    pick = {r["setting"]: r for r in rows if r["gen_length"] == longest and r["batch_size"] == 1}
    return {"rows": rows, "speedup_threshold_vs_vanilla":
            round(pick["vanilla"]["seconds"] / pick["threshold"]["seconds"], 2)}


@hydra.main(config_path="configs/run", config_name="bench", version_base="1.3")
def main(cfg: DictConfig) -> None:
    runners = {"dllm_code": bench_dllm_code}
    if cfg.model not in runners:
        sys.exit(f"error: no benchmark for {cfg.model!r}; benchmarks: {', '.join(sorted(runners))}")
    try:
        pipe = zoo.load(cfg.pretrained).to(cfg.device)
    except ValueError as e:
        sys.exit(f"error: {e}")
    torch.manual_seed(cfg.seed)
    result = runners[cfg.model](pipe, cfg)
    print(json.dumps({"model": cfg.model, "pretrained": cfg.pretrained, "quick": cfg.quick, **result,
                      "git_sha": git_sha(), "hardware": hardware()}))


if __name__ == "__main__":
    main()
