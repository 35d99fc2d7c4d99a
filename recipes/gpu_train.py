"""Train, export, evaluate and report GPU-scale model configs in one run (what recipes/gpu_train.sh runs
after installing the carried wheels).

    python recipes/gpu_train.py [--dry-run] [--work outputs/gpu] [--pack-to DIR] MODEL_CONFIG... BUDGET_S

Each model config (recipes/configs/model/<name>.yaml) says in its ``gpu`` block what the run needs:

    gpu:
      eval: [task=bpt]               # recipes/eval.py arguments after model=<the checkpoint>
      eval_dry_run: [...]            # added to them in a dry run (a tiny evaluation)
      dry_run: [...]                 # train.py overrides of the dry run (a tiny network, tiny data)
      prepared: {data.data_tag: .cache/stdlib_code/py*-v4096-val20}   # an override set to the name of
                                     # a folder prepared on the CPU (a glob), on the device only
      needs: {data.vae: meshcraft_vae_small}  # an override set to the checkpoint an earlier config of
                                     # the same run wrote (it must come first on the command line)
      tokens_per_sample: ${data.seq_len}      # what tokens/s and MFU count (recipes/gpu_report.py)

Each config trains with trainer=gpu and its share of BUDGET_S (weighted by ``gpu.share``, default 1) as
Lightning's max_time, exports bf16 weights to <work>/checkpoints/<name> (the config's last underscore
a hyphen: dllm_code_small -> dllm_code-small), is evaluated, and gets throughput, MFU and the eval's
figures in its meta.json and a line of <work>/summary.jsonl. With ``--pack-to`` (the device's $OUT) the
checkpoints, logs, metrics and summary are packed into one tar split into parts of at most 15 MiB
there, since a device call returns at most 8 files of 16 MiB (64 MiB in all); unpack them here with
``cat DIR/gpu_results.tar.* | tar -x -C outputs/gpu``. ``--dry-run``: the same steps on the CPU with each
config's dry-run overrides and 3 steps (under a minute a config; CI runs it).
"""

from __future__ import annotations

import argparse
import glob
import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "recipes"))  # gpu_report, also when run from elsewhere
sys.path.insert(0, str(ROOT))  # the zoo package, also when run from elsewhere
from gpu_report import main as report  # noqa: E402
from zoo.ablation import lightning_duration  # noqa: E402

PART_BYTES = 15 * 2**20
RETURN_LIMIT = 64 * 2**20  # what one device call brings back, all files together


def checkpoint_name(config: str) -> str:
    head, _, tail = config.rpartition("_")
    return f"{head}-{tail}" if head else config


def gpu_block(config: str) -> dict:
    """The composed config's ``gpu`` block (interpolations resolved); a config without one is refused."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(str(ROOT / "recipes" / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={config}"])
    if "gpu" not in cfg:
        raise SystemExit(f"error: model={config} has no gpu block (recipes/gpu_train.py says what it holds)")
    return OmegaConf.to_container(cfg.gpu, resolve=True)


def run_logged(cmd: list[str], log: Path) -> None:
    with open(log, "w") as f:
        code = subprocess.call(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    if code:
        sys.stderr.write(log.read_text()[-3000:])
        raise SystemExit(f"error: {' '.join(cmd[:3])} ... failed ({code}); all of it in {log}")


def train_one(config: str, block: dict, work: Path, seconds: int, dry_run: bool, python: str) -> dict:
    name = checkpoint_name(config)
    ckpt, run = work / "checkpoints" / name, work / "runs" / config
    max_time = lightning_duration(seconds / 60)
    overrides = [f"model={config}", "trainer=gpu", f"trainer.max_time={max_time}", f"export_dir={ckpt}",
                 "export_dtype=bf16", "export_eval=false", "rich_progress=false", f"hydra.run.dir={run}"]
    for key, needed in (block.get("needs") or {}).items():
        source = work / "checkpoints" / checkpoint_name(needed)
        if not (source / "model.safetensors").is_file():
            raise SystemExit(f"error: model={config} needs {needed}'s checkpoint ({source}): name {needed} before it")
        overrides.append(f"{key}={source}")
    if dry_run:
        overrides += ["trainer.accelerator=cpu", "trainer.precision=32-true", "debug=fast", *block.get("dry_run", [])]
    else:
        for key, pattern in (block.get("prepared") or {}).items():
            found = sorted(glob.glob(str(ROOT / pattern)))
            if not found:
                raise SystemExit(f"error: model={config} needs the folder {pattern}, prepared on the CPU and carried")
            overrides.append(f"{key}={Path(found[0]).name}")
    print(f"== {config} -> {ckpt} (max_time {max_time} on {'cpu' if dry_run else 'cuda'})", flush=True)
    start = time.perf_counter()
    run_logged([python, "recipes/train.py", *overrides], work / "logs" / f"{config}.train.log")
    eval_log = work / "logs" / f"{config}.eval.log"
    evaluation = [python, "recipes/eval.py", f"model={ckpt}", f"device={'cpu' if dry_run else 'cuda'}",
                  *block.get("eval", []), *(block.get("eval_dry_run", []) if dry_run else [])]
    run_logged(evaluation, eval_log)
    summary = report(str(ckpt), str(run), str(eval_log), float(block["tokens_per_sample"]))
    summary["seconds_with_eval"] = round(time.perf_counter() - start, 1)
    with open(work / "summary.jsonl", "a") as f:
        f.write(json.dumps(summary) + "\n")
    return summary


def pack(work: Path, into: Path) -> list[Path]:
    """Checkpoints, logs, each run's metrics.csv and config, and the summary -> into/gpu_results.tar.NN
    (parts of at most 15 MiB); Lightning's resume checkpoints stay behind."""
    into.mkdir(parents=True, exist_ok=True)
    tar_path = work / "gpu_results.tar"
    with tarfile.open(tar_path, "w") as tar:
        for path in sorted(work.rglob("*")):
            rel = path.relative_to(work)
            keep = rel.parts[0] in ("checkpoints", "logs") or rel.name in ("summary.jsonl", "metrics.csv", "config.yaml")
            if path.is_file() and keep and path != tar_path:
                tar.add(path, arcname=str(rel))
    size = tar_path.stat().st_size
    if size > RETURN_LIMIT - 2**20:
        print(f"warning: {size / 2**20:.1f} MiB of results: a device call returns at most 64 MiB; "
              "fetch the rest from the warm machine in a second call", file=sys.stderr)
    parts = []
    with open(tar_path, "rb") as f:
        while chunk := f.read(PART_BYTES):
            parts.append(into / f"gpu_results.tar.{len(parts):02d}")
            parts[-1].write_bytes(chunk)
    print(f"packed {size / 2**20:.1f} MiB into {len(parts)} parts in {into}", flush=True)
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--work", default="outputs/gpu")
    parser.add_argument("--pack-to", default=None)
    parser.add_argument("configs", nargs="+", help="model configs, then the budget in seconds")
    args = parser.parse_args()
    *configs, budget = args.configs
    if not configs or not budget.isdigit():
        parser.error(f"expected MODEL_CONFIG... BUDGET_S (a whole number of seconds); got {args.configs}")
    work = Path(args.work).resolve()
    for sub in ("logs", "checkpoints", "runs"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    blocks = {c: gpu_block(c) for c in configs}  # every config checked before the first second is spent
    shares = {c: float(blocks[c].get("share", 1.0)) for c in configs}
    for config in configs:
        seconds = max(int(int(budget) * shares[config] / sum(shares.values())), 1)
        train_one(config, blocks[config], work, seconds, args.dry_run, sys.executable)  # its report prints a line
    if args.pack_to:
        pack(work, Path(args.pack_to))


if __name__ == "__main__":
    main()
