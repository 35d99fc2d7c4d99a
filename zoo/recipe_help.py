"""``--help`` for the Hydra recipes: the recipe's own docstring, its options with their comments (the
run config as written) and the choices of its config groups, in place of Hydra's generic page (which
cannot compose a config whose ``model`` is still to be chosen)."""

from __future__ import annotations

import sys
from pathlib import Path


def help_text(doc: str, config: Path, groups: tuple[str, ...] = ()) -> str:
    """The recipe's docstring, then its config file's options, then each group's choices."""
    options = [line for line in Path(config).read_text().splitlines() if not line.startswith("#")]
    cut = next((i for i, line in enumerate(options) if line.startswith("hydra:")), len(options))
    parts = [doc.strip(), "", f"Options (key=value on the command line; defaults from {config.name}):", "",
             *(line for line in options[:cut] if line.strip() and line != "defaults:" and not line.startswith("  - "))]
    for group in groups:
        names = sorted(p.stem for p in (config.parent / group).glob("*.yaml"))
        parts += ["", f"{group}= one of: {', '.join(names)}"]
    return "\n".join(parts) + "\n"


def exit_with_help_if_asked(doc: str, config: Path, groups: tuple[str, ...] = ()) -> None:
    """Print ``help_text`` and exit 0 when the command line asks for -h / --help."""
    if any(arg in ("-h", "--help") for arg in sys.argv[1:]):
        sys.stdout.write(help_text(doc, Path(config), groups))
        raise SystemExit(0)
