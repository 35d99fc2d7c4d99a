"""Add throughput, MFU and the eval figures to a GPU-trained checkpoint's meta.json (recipes/gpu_train.sh).

    python recipes/gpu_report.py CHECKPOINT_DIR RUN_DIR EVAL_LOG

tokens/s = steps x batch_size x tokens per sample / wall seconds (the run's composed config gives the
batch, and its gpu block the tokens a sample counts: seq_len for the code models, the mean face count of
the training meshes for the mesh models);
MFU = 6 x parameters x tokens/s over the H200's dense bf16 peak (989 TFLOP/s), and beside it the share
of the ~790 TFLOP/s matmul ceiling measured on that machine. The attention's FLOPs are left out, as in
the usual 6N estimate. Prints the checkpoint's summary as one JSON line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from omegaconf import OmegaConf

H200_BF16_PEAK = 989e12
H200_MEASURED_CEILING = 790e12


def main(checkpoint: str, run_dir: str, eval_log: str, tokens_per_sample: float | None = None) -> dict:
    meta_path = Path(checkpoint) / "meta.json"
    meta = json.loads(meta_path.read_text())
    cfg = OmegaConf.load(Path(run_dir) / ".hydra" / "config.yaml")
    if tokens_per_sample is None:
        tokens_per_sample = float(cfg.gpu.tokens_per_sample)
    tokens_per_step = int(cfg.data.batch_size) * tokens_per_sample
    tokens_per_second = meta["steps"] * tokens_per_step / max(meta["wall_seconds"], 1e-9)
    flops = 6 * meta["parameters"] * tokens_per_second
    lines = [line for line in Path(eval_log).read_text().splitlines() if line.startswith("{")]
    evaluation = json.loads(lines[-1]) if lines else {"error": f"no JSON line in {eval_log}"}
    meta["throughput"] = {"tokens_per_step": tokens_per_step, "tokens_per_second": round(tokens_per_second),
                          "model_flops_per_second": flops, "mfu_vs_bf16_peak": round(flops / H200_BF16_PEAK, 4),
                          "share_of_measured_ceiling": round(flops / H200_MEASURED_CEILING, 4)}
    meta["metrics"] = {**meta.get("metrics", {}), **{k: v for k, v in evaluation.items()
                                                      if k not in ("model", "git_sha", "hardware")}}
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    summary = {"checkpoint": checkpoint, "steps": meta["steps"], "wall_seconds": meta["wall_seconds"],
               **meta["throughput"], "metrics": meta["metrics"], "hardware": meta["hardware"]}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
