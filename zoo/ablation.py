"""Ablations as data. A domain describes its ablation once, as an ``Ablation`` (its stages, the options
they read with their defaults, the metrics its plot draws) and registers it
(``zoo.register_ablation(domain, "module:NAME")``); ``recipes/ablate.py model=<domain>`` runs any of
its stages and keeps, writes and plots the rows the same way for every domain:

- a stage returns rows, each {"factor", "setting", metrics...}; the runner keeps every stage's rows in
  ``rows.jsonl`` as soon as the stage ends (a later crash loses none), and a stage run again replaces
  its own factors' rows and keeps the others';
- ``ablation.csv`` holds every kept row, ``ablation.png`` draws one panel per factor (each metric
  against the setting, one line or bar group per model where rows name one);
- trainings go through ``run.train(jobs, steps)`` (the recipe trains each job with recipes/train.py,
  one thread each, a finished export reused); a stage that compares trained models lists them as
  ``Training`` rows and calls ``run.compare(trainings, steps, score)``.
"""

from __future__ import annotations

import csv
import json
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

from zoo.pipeline import load
from zoo.pretrained import REPO_ROOT, load_meta


@dataclass(frozen=True)
class Stage:
    """factors: the factor names its rows carry (a rerun replaces those rows); run(run) -> rows."""

    factors: tuple[str, ...]
    run: Callable[["AblationRun"], list[dict]]


@dataclass(frozen=True)
class Ablation:
    """A domain's ablation. options: every option its stages read, with its default (None: the stage
    picks one by ``quick``); metrics: what the plot draws for each factor, where the rows have them."""

    title: str
    stages: dict[str, Stage]
    metrics: tuple[str, ...]
    options: dict = field(default_factory=dict)
    parallel: int = 2  # trainings at once by default (0: all of a stage's)

    def check_options(self, given: dict) -> SimpleNamespace:
        """The options with ``given`` over the defaults; an unknown name is a ValueError naming them all."""
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown}; this ablation reads {sorted(self.options)}")
        return SimpleNamespace(**{**self.options, **given})

    def check_stages(self, stages) -> list[str]:
        chosen = list(self.stages) if stages is None else list(stages)
        unknown = [s for s in chosen if s not in self.stages]
        if not chosen or unknown:
            raise ValueError(f"stages={chosen}: expected a non-empty subset of {list(self.stages)}")
        return chosen


@dataclass(frozen=True)
class Training:
    """One row of a comparison of trained models: the model recipes/train.py makes from ``overrides``
    (exported to <out>/<name>_<steps>steps), or, where ``overrides`` is None, the checkpoint ``name`` as
    it is; scored with ``kwargs``; ``fields`` go into the row as they are. Rows naming the same model
    share one training, and with the same kwargs one scoring."""

    factor: str
    setting: object
    name: str
    overrides: tuple[str, ...] | None
    kwargs: dict = field(default_factory=dict)
    fields: dict = field(default_factory=dict)


def shown(path) -> str:
    """A path under the repo as a relative one (rows read the same in any checkout); others as given."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(REPO_ROOT)) if resolved.is_relative_to(REPO_ROOT) else str(path)


@dataclass
class AblationRun:
    """What a stage gets: the output folder, the quick switch, the options (``run.options.samples``)
    and ``train(jobs, steps) -> exports``, jobs being (recipes/train.py overrides, export folder)."""

    out: Path
    quick: bool
    options: SimpleNamespace
    train: Callable[[list[tuple[list[str], Path]], int], list[Path]]

    def pick(self, name: str, quick, full):
        """The option ``name`` if set, else ``quick`` or ``full`` by the run's quick switch."""
        value = getattr(self.options, name)
        return value if value is not None else (quick if self.quick else full)

    @staticmethod
    def log(row: dict) -> dict:
        print(json.dumps(row), flush=True)
        return row

    def compare(self, trainings: list[Training], steps: int, score: Callable[..., dict]) -> list[dict]:
        """Trains every model the rows name (``self.train``, ``steps`` steps each), then one row each:
        factor, setting, the fields, the export, its steps and training seconds (meta.json; 0 steps for
        a checkpoint used as it is), and ``score(pipe, **kwargs)``, each model loaded once."""
        jobs = {t.name: (list(t.overrides), self.out / f"{t.name}_{steps}steps") for t in trainings
                if t.overrides is not None}
        clash = sorted({t.name for t in trainings if t.name in jobs and list(t.overrides or ()) != jobs[t.name][0]})
        if clash:  # one export folder cannot hold two models
            raise ValueError(f"trainings named {clash} are given different overrides")
        exports = dict(zip(jobs, self.train(list(jobs.values()), steps)))
        records = {}
        for name, path in exports.items():
            meta = load_meta(path)
            records[name] = {"export": shown(path), "steps_trained": meta["steps"],
                             "train_seconds": meta.get("train_seconds")}
        pipes, scores, rows = {}, {}, []
        for t in trainings:
            key = (t.name, json.dumps(t.kwargs, sort_keys=True))
            if key not in scores:
                if t.name not in pipes:
                    pipes[t.name] = load(exports.get(t.name, t.name))
                scores[key] = score(pipes[t.name], **t.kwargs)
            record = records.get(t.name, {"export": t.name, "steps_trained": 0, "train_seconds": None})
            rows.append(self.log({"factor": t.factor, "setting": t.setting, **t.fields, **record, **scores[key]}))
        return rows


def read_rows(path: Path) -> list[dict]:
    """The rows kept at ``path`` (one JSON object a line); none where there is no file yet."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def merged_rows(path: Path, new: list[dict], factors) -> list[dict]:
    """Earlier calls' rows (``read_rows``) whose factor was not rerun, then the new rows; written back to
    path (to a temporary name first, so a crash never leaves half a file)."""
    old = read_rows(path)
    rows = [r for r in old if r["factor"] not in set(factors)] + new
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


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _series(row: dict):
    """The line or bar group a row belongs to: its "series" where it names one, else its "model"."""
    return row.get("series", row.get("model"))


def plot_rows(rows: list[dict], metrics: tuple[str, ...], title: str, path: Path) -> None:
    """One panel per factor (in the order rows first name them): each metric the rows carry against
    the setting, a line where every setting is a number, else grouped bars; rows that name a series
    (or a model) get one each; repeated settings (seeds) draw their mean, with the range as a band or
    error bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    factors = list(dict.fromkeys(r["factor"] for r in rows))
    cols = min(max(len(factors), 1), 4)
    lines = -(-max(len(factors), 1) // cols)
    fig, axes = plt.subplots(lines, cols, figsize=(4.6 * cols, 3.8 * lines), squeeze=False)
    for ax in axes.flat[len(factors):]:
        ax.axis("off")
    for ax, factor in zip(axes.flat, factors):
        mine = [r for r in rows if r["factor"] == factor]
        settings = list(dict.fromkeys(r["setting"] for r in mine))
        numeric = all(_number(s) for s in settings)
        if numeric:
            settings.sort()
        series = [(m, model) for m in metrics for model in dict.fromkeys(_series(r) for r in mine)
                  if any(_number(r.get(m)) and _series(r) == model for r in mine)]
        width = 0.8 / max(len(series), 1)
        for k, (metric, model) in enumerate(series):
            values = [[r[metric] for r in mine if r["setting"] == s and _series(r) == model and _number(r.get(metric))]
                      for s in settings]
            kept = [(i, s, v) for i, (s, v) in enumerate(zip(settings, values)) if v]
            mean = [statistics.mean(v) for _, _, v in kept]
            low, high = [min(v) for _, _, v in kept], [max(v) for _, _, v in kept]
            label = metric if model is None or len({_series(r) for r in mine}) == 1 else f"{metric}, {model}"
            if numeric:
                xs = [s for _, s, _ in kept]
                ax.plot(xs, mean, marker="o", label=label)
                if low != high:
                    ax.fill_between(xs, low, high, alpha=0.15)
            else:
                xs = [i - 0.4 + width * (k + 0.5) for i, _, _ in kept]
                ax.bar(xs, mean, width, yerr=[[m - lo for m, lo in zip(mean, low)], [h - m for m, h in zip(mean, high)]],
                       label=label)
        if not numeric:
            ax.set_xticks(range(len(settings)), [str(s) for s in settings], rotation=20, fontsize=7, ha="right")
        ax.set_title(factor)
        if series:
            ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def lightning_duration(minutes: float) -> str:
    """Minutes -> Lightning's max_time string "DD:HH:MM:SS"."""
    seconds = max(int(minutes * 60), 1)
    return f"{seconds // 86400:02d}:{seconds // 3600 % 24:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
