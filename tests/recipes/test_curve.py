"""recipes/curve.py: validation rows of a run's CSV log, with their wall minutes."""

import pytest

from recipes.curve import read_curve


def test_reads_only_validation_rows_with_wall_minutes(tmp_path):
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "metrics.csv").write_text(
        "step,train/loss,val/acc,val/wall_minutes\n"
        "9,2.0,,\n"
        "99,,0.25,1.5\n"
        "149,1.0,,\n"
        "199,,0.5,3.0\n")
    assert read_curve(tmp_path, "val/acc") == [{"step": 99, "wall_minutes": 1.5, "val/acc": 0.25},
                                               {"step": 199, "wall_minutes": 3.0, "val/acc": 0.5}]
    with pytest.raises(ValueError, match="val/nothing"):
        read_curve(tmp_path, "val/nothing")
    with pytest.raises(FileNotFoundError):
        read_curve(tmp_path / "missing", "val/acc")
