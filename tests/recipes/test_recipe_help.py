"""``--help`` on every recipe prints what it does and its main options, and exits 0 (no traceback)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RECIPES = {  # recipe -> a line its help must show
    "train.py": "model= one of:", "eval.py": "task: null", "sample.py": "Options", "bench.py": "Options",
    "gallery.py": "--check", "curve.py": "--out", "model_card.py": "--check", "ablate.py": "stages: null",
}


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_help_prints_the_recipes_purpose_and_options(recipe):
    result = subprocess.run([sys.executable, f"recipes/{recipe}", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert RECIPES[recipe] in result.stdout
    assert len(result.stdout.splitlines()) > 5
