"""A validation metric against training wall minutes, from a training run's CSV log.

    python recipes/curve.py outputs/meshcraft_vae/<run> val/triangle_acc --out models/meshcraft/figures/vae_curve

Reads <run>/csv/metrics.csv (recipes/train.py writes it; ``val/wall_minutes`` is logged beside every
validation) and writes <out>.csv and <out>.png: one row a validation, with its step.
The last stdout line is one JSON object with the final point.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path


def read_curve(run_dir: Path, metric: str) -> list[dict]:
    """[{"step", "wall_minutes", metric}, ...] for every validation that logged the metric."""
    path = run_dir / "csv" / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no training log (give the run folder recipes/train.py wrote)")
    rows = []
    with open(path) as f:
        for row in csv.DictReader(f):
            if row.get(metric) and row.get("val/wall_minutes"):
                rows.append({"step": int(row["step"]), "wall_minutes": float(row["val/wall_minutes"]),
                             metric: float(row[metric])})
    if not rows:
        raise ValueError(f"{path}: no validation row has both {metric!r} and val/wall_minutes")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("metric", help="a column of metrics.csv, e.g. val/triangle_acc")
    parser.add_argument("--out", required=True, help="path without suffix: writes .csv and .png")
    parser.add_argument("--title", default=None)
    args = parser.parse_args()
    try:
        rows = read_curve(Path(args.run_dir), args.metric)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.plot([r["wall_minutes"] for r in rows], [r[args.metric] for r in rows], marker="o")
    ax.set(xlabel="training wall minutes (this machine)", ylabel=args.metric, title=args.title or str(args.run_dir))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)
    print(json.dumps({"csv": str(out.with_suffix(".csv")), "png": str(out.with_suffix(".png")), "points": len(rows),
                      "last": rows[-1]}))


if __name__ == "__main__":
    main()
