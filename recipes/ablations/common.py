"""What the ablation scripts share: the command line of a staged ablation, training a setting through
recipes/train.py, keeping the rows of earlier calls, and writing the CSV, the plot and the summary."""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def staged_parser(doc: str, name: str, stages: tuple[str, ...], quick_help: str, parallel: int = 2
                  ) -> argparse.ArgumentParser:
    """The options every staged ablation takes: --quick, --out (outputs/ablations/<name>), --stages,
    --max-minutes and --parallel (its trainings); a script adds its own after them."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--out", default=f"outputs/ablations/{name}")
    parser.add_argument("--stages", default=",".join(stages), help="comma-separated, of " + ", ".join(stages))
    parser.add_argument("--max-minutes", type=float, default=40.0, help="time guard of each training")
    parser.add_argument("--parallel", type=int, default=parallel,
                        help="trainings at once, one thread each (0: all of a stage's)")
    return parser


def parse_staged(parser: argparse.ArgumentParser, stages: tuple[str, ...]) -> tuple[argparse.Namespace, list[str], Path]:
    """The parsed options, the stages asked for (an unknown one is a usage error) and the output folder
    (made)."""
    args = parser.parse_args()
    chosen = [x for x in args.stages.split(",") if x]
    if not chosen or set(chosen) - set(stages):
        parser.error(f"--stages takes a comma-separated subset of {', '.join(stages)}; got {args.stages!r}")
    out = ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    return args, chosen, out


def finish(rows: list[dict], out: Path, plot, quick: bool, stages: list[str]) -> None:
    """ablation.csv and ablation.png (``plot(rows, path)``) in ``out``, and the JSON summary line."""
    write_csv(rows, out / "ablation.csv")
    plot(rows, out / "ablation.png")
    print(json.dumps({"csv": str(out / "ablation.csv"), "png": str(out / "ablation.png"), "rows": len(rows),
                      "quick": quick, "stages": stages}))


def lightning_duration(minutes: float) -> str:
    """Minutes -> Lightning's max_time string "DD:HH:MM:SS"."""
    seconds = max(int(minutes * 60), 1)
    return f"{seconds // 86400:02d}:{seconds // 3600 % 24:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def train(jobs: list[tuple[list[str], Path]], steps: int, minutes: float, parallel: int) -> list[Path]:
    """recipes/train.py with each job's args for ``steps`` steps (warm-up a tenth of them, at most the
    YAML's), ``minutes`` at most, one thread each, up to ``parallel`` jobs at once (the next starts as
    soon as one ends); finished exports are kept. Each job's stderr goes to <runs>/<name>.stderr.log; the
    first job that fails stops the others and raises with the end of its log."""
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
                    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
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


def merged_rows(path: Path, new: list[dict], factors: list[str]) -> list[dict]:
    """Earlier calls' rows (path, one JSON object a line) whose factor was not rerun, then the new rows;
    written back to path (to a temporary name first, so a crash never leaves half a file)."""
    old = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    rows = [r for r in old if r["factor"] not in factors] + new
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, path)
    return rows


def write_csv(rows: list[dict], path: Path) -> None:
    """Every row under the union of their keys, factor and setting first."""
    keys = sorted({k for r in rows for k in r}, key=lambda k: (k not in ("factor", "setting"), k))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
