"""Run a domain's ablation: any of its stages, rows kept as each stage ends, then the CSV, the plot and
one JSON summary on the last stdout line, the same way for every domain.

    python recipes/ablate.py model=vilad [stages=[sampling,rounds]] [quick=true] [+options.episodes=4]
    python recipes/ablate.py model=meshcraft stages=[weld] +options.welds=[0,4,8] +options.seeds=2

Ablations are registered by the domains (``zoo.register_ablation``; ``zoo.list_ablations()`` names
them); each describes its stages and options (``+options.<name>``; an unknown name is refused with
the list). Outputs go to ``out`` (outputs/ablations/<domain>): rows.jsonl (every stage's rows, a rerun
stage replacing its own), ablation.csv, ablation.png and the exports of the trainings, which
are reused when a call runs again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from zoo.ablation import AblationRun, lightning_duration, merged_rows, plot_rows, write_csv
from zoo.pretrained import REPO_ROOT
from zoo.recipe_help import exit_with_help_if_asked
from zoo.registry import get_ablation


def train(jobs: list[tuple[list[str], Path]], steps: int, minutes: float, parallel: int) -> list[Path]:
    """recipes/train.py with each job's overrides for ``steps`` steps (warm-up a tenth of them, at most
    200), ``minutes`` at most, one thread each, up to ``parallel`` jobs at once (0: all; the next starts
    as soon as one ends); finished exports are kept. Each job's stderr goes to <runs>/<name>.stderr.log;
    the first job that fails stops the others and raises with the end of its log."""
    pending = [(args, export) for args, export in jobs if not (export / "model.safetensors").is_file()]
    at_once = parallel or len(pending) or 1
    running: list[tuple[Path, Path, subprocess.Popen]] = []
    try:
        while pending or running:
            while pending and len(running) < at_once:
                args, export = pending.pop(0)
                log = export.parent / "runs" / f"{export.name}.stderr.log"
                log.parent.mkdir(parents=True, exist_ok=True)
                cmd = [sys.executable, "recipes/train.py", *args, "rich_progress=false",
                       "trainer.enable_progress_bar=false", f"trainer.max_steps={steps}",
                       f"model.lr_scheduler.warmup_steps={min(200, max(steps // 10, 1))}",
                       f'++trainer.max_time="{lightning_duration(minutes)}"',  # ++: also where the YAML sets none
                       f"hydra.run.dir={export.parent / 'runs' / export.name}", f"export_dir={export}"]
                with open(log, "w") as err:  # the child keeps its own handle
                    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                                            stdout=subprocess.DEVNULL, stderr=err)
                running.append((export, log, proc))
            time.sleep(0.5)
            for export, log, proc in [r for r in running if r[2].poll() is not None]:
                running.remove((export, log, proc))
                if proc.returncode:
                    raise RuntimeError(f"training {export.name} failed (all of it in {log}):\n"
                                       f"{log.read_text()[-3000:]}")
    finally:
        for _, _, proc in running:  # a failure, or an interrupt, stops the rest
            proc.kill()
            proc.wait()
    return [export for _, export in jobs]


@hydra.main(config_path="configs/run", config_name="ablate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    start = time.perf_counter()
    try:
        ablation = get_ablation(cfg.model)
        stages = ablation.check_stages(OmegaConf.to_container(cfg.stages) if cfg.stages is not None else None)
        options = ablation.check_options(OmegaConf.to_container(cfg.options))
    except ValueError as e:  # an unknown domain, stage or option: the message lists what exists
        sys.exit(f"error: {e}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    parallel = ablation.parallel if cfg.parallel is None else cfg.parallel
    run = AblationRun(out=out, quick=cfg.quick, options=options,
                      train=lambda jobs, steps: train(jobs, steps, cfg.max_minutes, parallel))
    rows = []
    for stage in stages:  # each stage's rows are kept when it ends, so a later crash loses none of them
        rows = merged_rows(out / "rows.jsonl", ablation.stages[stage].run(run), ablation.stages[stage].factors)
    write_csv(rows, out / "ablation.csv")
    plot_rows(rows, ablation.metrics, ablation.title, out / "ablation.png")
    print(json.dumps({"model": cfg.model, "stages": stages, "quick": cfg.quick, "options": vars(options),
                      "rows": len(rows), "csv": str(out / "ablation.csv"), "png": str(out / "ablation.png"),
                      "seconds": round(time.perf_counter() - start, 1)}))


if __name__ == "__main__":
    exit_with_help_if_asked(__doc__, Path(__file__).parent / "configs/run/ablate.yaml", ())
    main()
