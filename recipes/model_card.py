"""Write (or check) the model card, README.md, of every checkpoint folder, from its meta.json and config.json.

    python recipes/model_card.py                      # every folder under checkpoints/
    python recipes/model_card.py checkpoints/xar-mnist
    python recipes/model_card.py --check              # exit 1 and name the folders whose card is missing or stale

The card follows the Hugging Face model-card layout: YAML front matter (licence, tags, datasets,
metrics), then what the model is, its intended use, how to load it, its training data and that data's
licence, the command that trained it, its recorded metrics and the command that evaluates it, and its
limits. Everything comes from files in the repository: the registry (what the model is, its pipeline's
default task), the training command's data module (its ``card``: name, source, licence) and meta.json.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shlex
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zoo.pretrained import load_config, load_meta  # noqa: E402
from zoo.registry import get_entry  # noqa: E402

CARD = "README.md"
CONFIGS = ROOT / "recipes" / "configs"


def overrides(command: str) -> dict[str, str]:
    """The ``key=value`` arguments of a recorded training command."""
    return dict(arg.split("=", 1) for arg in shlex.split(command) if "=" in arg and not arg.startswith("-"))


def data_card(command: str):
    """The training data's ``DataCard``: the ``card`` of the data module that the recorded command's
    config (its ``model=`` and ``data=`` choices, composed as recipes/train.py composes them) builds.
    None when the command names no model config that exists."""
    from hydra import compose, initialize_config_dir

    args = overrides(command)
    if not (CONFIGS / "model" / f"{args.get('model', '')}.yaml").is_file():
        return None
    groups = [f"{k}={args[k]}" for k in ("model", "data") if k in args]
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        target = compose(config_name="train", overrides=groups).data._target_
    module, _, name = target.rpartition(".")
    return getattr(getattr(importlib.import_module(module), name), "card", None)


def number(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def aggregation_lines(record: dict, last_seconds: float, directory: Path) -> list[str]:
    """The data aggregation rounds that made the weights (recipes/train.py rounds.count; meta.json's
    ``aggregation``): where they started, and each round's collection record (its scalar fields, as
    the model's collector wrote them)."""
    start = record.get("start") or {}
    total = start.get("train_seconds", 0.0) + record["seconds_before_this_round"] + last_seconds
    which = "the weights this folder held before these" if Path(start.get("checkpoint", "")).name == directory.name \
        else "weights"
    lines = [f"Data aggregation, {record['rounds']} rounds of {record['steps_per_round']} fine-tuning steps "
             f"from `{start.get('checkpoint', '?')}` ({which}, sha256 `{start.get('weights_sha256', '?')}`), "
             f"{total / 60:.0f} minutes in all from the start's first step, collecting included. The rounds' "
             "collections:", ""]
    rounds = record.get("per_round") or []
    keys = [k for k in rounds[0] if k != "path" and isinstance(rounds[0][k], (int, float, list))] if rounds else []
    if keys:
        lines += ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join("-".join(map(str, r[k])) if isinstance(r[k], list) else number(r[k]) for k in keys)
                  + " |" for r in rounds]
    return lines + [""]


def card_text(directory: Path, data=False) -> str:
    """The model card of a checkpoint folder, as the text of its README.md. ``data``: the training data's
    DataCard when the caller has it (recipes/train.py at export), else found from the recorded command."""
    directory = Path(directory)
    config, meta = load_config(directory), load_meta(directory)
    name, model = directory.name, config["model"]
    entry = get_entry(model)
    module = entry.builder.__module__
    domain = module.split(".")[1] if module.startswith("models.") else module.split(".")[0]  # models.<domain>, or a package of its own
    what = " ".join((entry.builder.__doc__ or "").split())
    data = data_card(meta.get("command", "")) if data is False else data
    metrics = {k: v for k, v in (meta.get("metrics") or {}).items() if isinstance(v, (int, float))}
    task = entry.pipeline.default_task if entry.pipeline else None
    front = {"license": "mit", "library_name": "nar-zoo", "tags": ["nar-zoo", domain, model],
             **({"datasets": [data.name]} if data else {}), **({"metrics": sorted(metrics)} if metrics else {})}
    hw = meta.get("hardware") or {}
    where = f"{hw.get('cpu_count', '?')} CPU cores" + (f", {hw['gpu']}" if hw.get("gpu") else "")
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "", f"# {name}", "",
             f"`{model}` from the zoo's `{domain}` domain ([models/{domain}/README.md](../../models/{domain}/README.md)), "
             f"{meta.get('parameters', '?'):,} parameters. {what}", "",
             "## Intended use", "",
             "Research and teaching: a small checkpoint trained by this repository's recipe, to run, test and "
             "compare the method end to end at a size a laptop trains. It shows what the method does at this "
             "scale, not what it does at the paper's; it is not meant for use in products.", "",
             "## How to use", "", "```python", "import zoo", "", f'pipe = zoo.load("{name}")', "```", ""]
    if task:
        lines += [f"Evaluate: `python recipes/eval.py model={name}` (task `{task}`; the last stdout line is JSON).", ""]
    lines += ["## Training data", ""]
    lines += [f"{data.source} (`{data.name}`). Licence: {data.licence}." if data else
              "Not recorded by the training command.", ""]
    lines += ["## Training", "", f"`{meta.get('command', '?')}`", "",
              f"At commit `{meta.get('git_sha', '?')}`: {meta.get('steps', '?')} steps, "
              f"{number(meta.get('wall_seconds', '?'))} s of wall time on {where} (torch {hw.get('torch', '?')}).", ""]
    for key, label in (("init_from", "Initialised from"), ("resumed_from", "Resumed from")):
        if meta.get(key):
            lines += [f"{label}: `{json.dumps(meta[key]) if isinstance(meta[key], dict) else meta[key]}`.", ""]
    if meta.get("aggregation"):
        lines += aggregation_lines(meta["aggregation"], meta.get("train_seconds") or 0.0, directory)
    lines += ["## Evaluation", ""]
    if metrics:
        lines += ["Recorded when the weights were exported (meta.json; the training recipe's validation split):", "",
                  "| metric | value |", "|---|---|", *(f"| {k} | {number(v)} |" for k, v in metrics.items()), ""]
    else:
        lines += ["No metric recorded at export.", ""]
    lines += [f"The figures the domain's README reports, with the commands that regenerate them, are in "
              f"[models/{domain}/README.md](../../models/{domain}/README.md).", "",
              "## Limitations", "",
              "- Trained on a few thousand examples at a few million parameters or fewer: its samples are far "
              "from the paper's model's, and figures measured on it do not transfer to full-size models.",
              "- Metrics that need a feature network (image and mesh categories) use networks trained in this "
              "repository, so they compare runs here, not with published numbers.",
              "- Weights are safetensors; `zoo.load` never unpickles a file.", ""]
    return "\n".join(lines)


def folders(paths: list[str]) -> list[Path]:
    if paths:
        return [Path(p) for p in paths]
    return sorted(p for p in (ROOT / "checkpoints").iterdir() if (p / "config.json").is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("folders", nargs="*", help="checkpoint folders (default: every one under checkpoints/)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a card is missing or stale")
    args = parser.parse_args(argv)
    stale = []
    for directory in folders(args.folders):
        text, path = card_text(directory), directory / CARD
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(str(directory))
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("missing or stale model cards (python recipes/model_card.py writes them): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
