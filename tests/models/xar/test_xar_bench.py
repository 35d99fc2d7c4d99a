"""The xar benchmark's bookkeeping: which rows run with which sampler settings, and how the summary
reads them (sampling and timing replaced by stand-ins; the sampler itself is tested in test_xar.py)."""

import pytest

import zoo
from models.xar import bench


@pytest.fixture
def calls(monkeypatch):
    seen = []

    def quality(pipe, classifier, num_samples, seeds, **kwargs):
        kind = getattr(getattr(pipe.net, "partition", None), "kind", "token")
        seen.append(("quality", kind, kwargs, len(seeds)))
        fid = 100.0 if kind == "cell" else 120.0
        return {"nfe": 4, "seeds": seeds, **{k: fid for k in ("cls_fid", "cls_fid_min", "cls_fid_max")},
                **{k: 0.5 for k in ("class_accuracy", "precision", "recall")}}

    def speed(pipe, quick, repeats, seed, **kwargs):
        seen.append(("speed", kwargs))
        slow = 2.0 if kwargs else 1.0  # a shortcut switched off costs twice
        return {f"s_per_image_{b}{s}": slow * (3.0 if pipe.net.__class__.__name__ != "NextXTransformer" else 1.0) * f
                for b in ("b1", "b64") for s, f in (("", 1.0), ("_min", 0.9), ("_max", 1.1))}

    monkeypatch.setattr(bench, "quality", quality)
    monkeypatch.setattr(bench, "speed", speed)
    monkeypatch.setattr(bench, "reference_rows", lambda *a: [])
    return seen


def test_rows_summary_and_shortcut_gains(calls):
    result = bench.run(quick=True, matched={"steps": 1})
    methods = [r["method"] for r in result["rows"]]
    assert methods[:2] == ["xar", "dit"] and "xar_matched" in methods and "token_ar" in methods
    assert set(bench.SHORTCUTS) <= set(methods)
    ncl = [c for c in calls if c[0] == "quality" and c[2] and "steps" in c[2] and c[2] != {"steps": 1}]
    assert ncl, "the NCL-off model samples with xAR's own defaults, given explicitly"
    assert result["clsfid_ratio_vs_dit"] == pytest.approx(100.0 / 120.0)
    assert result["gain_over_xar_no_cache"] == 2.0 and result["gain_over_xar_no_cache_range"] == [1.64, 2.44]
    assert result["seeds"] == [0] and result["matched_nfe"] == 4


def test_a_matched_setting_equal_to_the_defaults_is_not_run_twice(calls):
    pipe = zoo.load("xar-mnist")
    same = {k: pipe.pipeline_kwargs[k] for k in pipe.settings}
    result = bench.run(quick=True, matched=same)
    assert "xar_matched" not in [r["method"] for r in result["rows"]] and "matched_clsfid" not in result
