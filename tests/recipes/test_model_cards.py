"""Every shipped checkpoint carries a current model card (recipes/model_card.py writes them)."""

import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "recipes"))

import model_card  # noqa: E402

SHIPPED = sorted(p for p in (ROOT / "checkpoints").iterdir() if (p / "config.json").is_file())


@pytest.mark.parametrize("folder", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_checkpoint_has_a_current_model_card(folder):
    card = folder / model_card.CARD
    assert card.is_file(), f"{folder.name}: no model card; run python recipes/model_card.py"
    assert card.read_text() == model_card.card_text(folder), f"{folder.name}: stale card; run python recipes/model_card.py"


def test_a_card_names_its_data_licence_command_and_metrics():
    text = model_card.card_text(ROOT / "checkpoints" / "digit_cnn-mnist")
    front = yaml.safe_load(text.split("---")[1])
    assert front["license"] == "mit" and front["datasets"] == ["mnist5k"] and "accuracy" in " ".join(front["metrics"])
    assert "CC BY-SA 3.0" in text and "python recipes/train.py model=digit_cnn" in text
    mesh = model_card.card_text(ROOT / "checkpoints" / "meshcraft-tiny")
    assert "Evaluate: `python recipes/eval.py model=meshcraft-tiny` (task `meshes`" in mesh
    assert "procedural-furniture" in mesh and "LICENSE" in mesh


def test_the_check_finds_a_missing_or_stale_card(tmp_path, capsys):
    import shutil

    folder = tmp_path / "vq-mnist"
    shutil.copytree(ROOT / "checkpoints" / "vq-mnist", folder)
    assert model_card.main(["--check", str(folder)]) == 0
    (folder / model_card.CARD).write_text("old")
    assert model_card.main(["--check", str(folder)]) == 1 and "stale" in capsys.readouterr().out
    (folder / model_card.CARD).unlink()
    assert model_card.main(["--check", str(folder)]) == 1
    assert model_card.main([str(folder)]) == 0 and model_card.main(["--check", str(folder)]) == 0


def test_a_card_lists_the_aggregation_rounds_and_where_they_started(tmp_path):
    import json
    import shutil

    folder = tmp_path / "vilad-highway"
    shutil.copytree(ROOT / "checkpoints" / "vilad-highway", folder)
    text = model_card.card_text(folder)
    meta = json.loads((folder / "meta.json").read_text())
    rounds = meta["aggregation"]["per_round"]
    assert "the weights this folder held before these" in text  # the start was this folder's round-0 weights
    assert meta["aggregation"]["start"]["weights_sha256"] in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "-" in line.split("|")[2]]
    assert len(rows) == len(rounds) and all(f"| {r['round']} | {r['seeds'][0]}-{r['seeds'][1]} |" in text for r in rounds)
    renamed = tmp_path / "elsewhere"
    shutil.move(folder, renamed)  # started from another folder's weights: named as weights only
    assert "held before" not in model_card.card_text(renamed)
