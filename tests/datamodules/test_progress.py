"""datamodules.base.progress: every item passes through unchanged, with rich or without it (the GPU
machine has no rich: then a count and an ETA go to stderr)."""

import builtins

from datamodules.base import progress


def test_progress_yields_every_item_with_rich():
    assert list(progress(iter(range(5)), 5, "items")) == [0, 1, 2, 3, 4]


def test_progress_without_rich_prints_a_count_and_eta(monkeypatch, capsys):
    real_import = builtins.__import__

    def no_rich(name, *args, **kwargs):
        if name.startswith("rich"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_rich)
    assert list(progress(iter("abc"), 3, "letters")) == ["a", "b", "c"]
    err = capsys.readouterr().err
    assert "letters: 3/3" in err and "left" in err
