"""Ablations as data (zoo/ablation.py, recipes/ablate.py): rows of earlier calls are kept, a failed
training says why, the one plot draws any domain's rows, every registered ablation is well formed,
and each domain's training settings compose."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from hydra import compose, initialize_config_dir

import zoo
from zoo.ablation import Ablation, AblationRun, Stage, Training, lightning_duration, merged_rows, plot_rows
from zoo.registry import get_ablation

from test_train import ROOT  # tests/recipes is on sys.path (pytest rootdir-relative imports)

CONFIGS = str(ROOT / "recipes" / "configs")


def ablate_recipe():
    spec = importlib.util.spec_from_file_location("ablate_recipe", ROOT / "recipes" / "ablate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_rerun_stage_replaces_its_rows_and_keeps_the_others(tmp_path):
    path = tmp_path / "rows.jsonl"
    first = merged_rows(path, [{"factor": "latent_dim", "setting": 8, "triangle_acc": 0.1},
                               {"factor": "steps", "setting": 5, "mmd_x1e3": 20.0}], ["latent_dim", "steps"])
    assert len(first) == 2
    rows = merged_rows(path, [{"factor": "steps", "setting": 10, "mmd_x1e3": 19.0}], ["steps"])
    assert rows == [{"factor": "latent_dim", "setting": 8, "triangle_acc": 0.1},
                    {"factor": "steps", "setting": 10, "mmd_x1e3": 19.0}]
    assert [json.loads(line) for line in path.read_text().splitlines()] == rows
    assert not path.with_suffix(".tmp").exists()


def test_training_budgets_become_lightning_max_time_strings():
    assert lightning_duration(40) == "00:00:40:00" and lightning_duration(0.5) == "00:00:00:30"
    assert lightning_duration(1500) == "01:01:00:00"


def test_a_failed_training_raises_with_its_log_and_a_finished_export_is_not_retrained(tmp_path):
    train = ablate_recipe().train
    done = tmp_path / "done"
    done.mkdir()
    (done / "model.safetensors").write_bytes(b"")  # a finished export: not run again
    bad = tmp_path / "bad"
    with pytest.raises(RuntimeError, match="training bad failed") as failure:
        train([(["model=sentence_ae"], done), (["model=no_such_model"], bad)], steps=2, minutes=1, parallel=2)
    assert "no_such_model" in str(failure.value)
    assert "no_such_model" in (tmp_path / "runs" / "bad.stderr.log").read_text()
    assert not (tmp_path / "runs" / "done.stderr.log").exists()
    assert train([(["model=sentence_ae"], done)], steps=2, minutes=1, parallel=2) == [done]


def test_compare_trains_each_model_once_and_scores_each_setting_once(tmp_path, monkeypatch):
    trained, loaded = [], []
    monkeypatch.setattr("zoo.ablation.load", lambda model: loaded.append(Path(str(model)).name) or f"pipe of {model}")

    def train(jobs, steps):
        trained.extend(export.name for _, export in jobs)
        for _, export in jobs:
            export.mkdir()
            (export / "meta.json").write_text(json.dumps({"steps": steps, "train_seconds": 1.5}))
        return [export for _, export in jobs]

    scored = []

    def score(pipe, **kwargs):
        scored.append((Path(pipe.removeprefix("pipe of ")).name, kwargs))
        return {"metric": kwargs.get("steps", 0)}

    run = AblationRun(out=tmp_path, quick=True, options=SimpleNamespace(), train=train)
    trainings = [Training("a", 1, "m", ("model=x",), {"steps": 1}), Training("b", 2, "m", ("model=x",), {"steps": 1}),
                 Training("b", 3, "m", ("model=x",), {"steps": 3}, {"series": "s"}),
                 Training("c", "as is", "some-checkpoint", None)]
    rows = run.compare(trainings, 7, score)
    assert trained == ["m_7steps"] and loaded == ["m_7steps", "some-checkpoint"]  # three rows, trained and loaded once
    assert scored == [("m_7steps", {"steps": 1}), ("m_7steps", {"steps": 3}), ("some-checkpoint", {})]
    assert [(r["factor"], r["setting"], r["steps_trained"], r["train_seconds"], r["metric"]) for r in rows] == [
        ("a", 1, 7, 1.5, 1), ("b", 2, 7, 1.5, 1), ("b", 3, 7, 1.5, 3), ("c", "as is", 0, None, 0)]
    assert rows[2]["series"] == "s" and rows[3]["export"] == "some-checkpoint"
    assert Path(rows[0]["export"]) == tmp_path / "m_7steps"  # outside the repo: the path as it is
    with pytest.raises(ValueError, match=r"named \['m'\] are given different overrides"):
        run.compare([Training("a", 1, "m", ("model=x",)), Training("a", 2, "m", ("model=y",))], 7, score)


def test_one_plot_draws_numbers_names_series_and_seeds(tmp_path):
    rows = ([{"factor": "latent_dim", "setting": d, "triangle_acc": 0.01 * d} for d in (4, 8)]
            + [{"factor": "weld", "setting": w, "seed": s, "loose_faces": 10.0 - w + s} for w in (0, 4) for s in (0, 1)]
            + [{"factor": "policy", "setting": p, "model": m, "crash_rate": 0.1} for p in ("random", "margin")
               for m in ("a", "b")]
            + [{"factor": "guidance_scale", "setting": w, "series": f"xar{r}", "crash_rate": w} for w in (1.0, 2.0)
               for r in ("", ", no ramp")]
            + [{"factor": "empty", "setting": "x", "unplotted": 1.0}])
    plot_rows(rows, ("triangle_acc", "loose_faces", "crash_rate"), "test", tmp_path / "ablation.png")
    assert (tmp_path / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "ablation.png").stat().st_size > 20_000


def test_the_domains_register_their_ablations():
    assert {"dllm_code", "distilled_decoding", "meshcraft", "sentence_vae", "vilad", "xar"} <= set(zoo.list_ablations())


@pytest.mark.parametrize("domain", zoo.list_ablations())
def test_every_registered_ablation_is_well_formed(domain):
    ablation = get_ablation(domain)
    assert isinstance(ablation, Ablation) and ablation.stages and ablation.metrics
    assert all(isinstance(stage, Stage) and stage.factors and callable(stage.run) for stage in ablation.stages.values())
    factors = [f for stage in ablation.stages.values() for f in stage.factors]
    assert len(factors) == len(set(factors))  # a rerun stage replaces its own rows, never another's
    with pytest.raises(ValueError, match="unknown option"):
        ablation.check_options({"no_such_option": 1})
    with pytest.raises(ValueError, match="expected a non-empty subset"):
        ablation.check_stages(["no_such_stage"])


def test_the_recipe_refuses_an_unknown_option_or_stage_with_the_choices(tmp_path):
    for args, says in ((["+options.no_such_option=1"], "this ablation reads"), (["stages=[nope]"], "subset of")):
        result = subprocess.run([sys.executable, "recipes/ablate.py", "model=vilad", f"out={tmp_path}", *args],
                                cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 1 and says in result.stderr, result.stderr[-1500:]


def compose_all(trainings) -> list:
    with initialize_config_dir(CONFIGS, version_base="1.3"):
        return [compose("train", overrides=list(t.overrides)) for t in trainings]


def test_vilad_settings_compose():
    from models.vilad.ablation_study import TRAINED

    image, codec = compose_all(TRAINED["image"]), compose_all(TRAINED["codec"])
    assert [c.model.net.get("use_image", True) for c in image] == [True, False]
    assert [(c.model.net.get("waypoint_codec", "grid"), c.data.waypoint_codec) for c in codec] == [
        ("grid", "grid")] * 2 + [("codebook", "codebook")] * 2  # the network and the data agree on the codec
    assert [(t.name, t.setting, t.kwargs) for t in TRAINED["codec"]] == [
        ("vilad", "grid (14 slots), 1 pass", {"steps": 1}), ("vilad", "grid (14 slots), 14 passes", {"steps": 14}),
        ("vilad_codebook", "codebook (3 slots), 1 pass", {"steps": 1}),
        ("vilad_codebook", "codebook (3 slots), 3 passes", {"steps": 3})]
    assert TRAINED["image"][0].overrides == TRAINED["codec"][0].overrides  # one baseline run for both stages


def test_dllm_code_training_runs_compose():
    from models.dllm_code.ablation_study import trainings

    rows = trainings(400, "dllm_code-tiny")
    assert [(t.factor, t.setting, t.name) for t in rows] == [
        ("sft", "off", "dllm_code-tiny"), ("sft", "on", "scratch"), ("init", "scratch", "scratch"),
        ("init", "adapted", "adapted_anneal100"), ("anneal_steps", 0, "adapted_anneal0"),
        ("anneal_steps", 100, "adapted_anneal100"), ("anneal_steps", 200, "adapted_anneal200"),
        ("reference", "ar_sft", "ar_sft")]
    assert rows[0].overrides is None  # SFT off: the file-level model as it is, not trained
    trained = {t.name: t for t in rows if t.overrides is not None}
    cfgs = dict(zip(trained, compose_all(trained.values())))
    anneal = {name: cfg.get("anneal_attention_steps") for name, cfg in cfgs.items()}
    assert anneal == {"scratch": None, "adapted_anneal100": 100, "adapted_anneal0": 0, "adapted_anneal200": 200,
                      "ar_sft": None}
    assert cfgs["scratch"].init_from == "checkpoints/dllm_code-tiny" and not cfgs["scratch"].model.net.get("shift")
    assert all(cfgs[n].init_from == "checkpoints/ar_code-tiny" and cfgs[n].model.net.shift
               for n in ("adapted_anneal0", "adapted_anneal100", "adapted_anneal200"))
    assert cfgs["ar_sft"].model.net.name == "ar_code-tiny"
    assert trained["ar_sft"].kwargs == {} and trained["scratch"].kwargs == {"block_length": 32}


def test_sentence_vae_settings_compose():
    from models.sentence_vae.ablation_study import autoencoder_settings

    settings = autoencoder_settings(1e-3)
    assert len({(t.factor, t.setting) for t in settings}) == len({t.name for t in settings}) == len(settings) == 8
    assert ("kl", "VAE, KL 0.001", ("model=sentence_ae", "++model.net.decoder_depth=2", "++model.net.variational=true",
                                    "model.objective.kl_weight=0.001")) in [(t.factor, t.setting, t.overrides)
                                                                            for t in settings]
    # every row but the depth row keeps the two-layer base its figures were measured with
    assert [(t.factor, t.overrides[1]) for t in settings
            if t.factor == "decoder_depth" or t.overrides[1] != "++model.net.decoder_depth=2"] \
        == [("decoder_depth", "++model.net.decoder_depth=1")]
    compose_all(settings)  # every setting's overrides compose
    with initialize_config_dir(CONFIGS, version_base="1.3"):
        lm = compose("train", overrides=["model=sentence_vae", "++model.net.lm_depth=6"])
    assert lm.model.net.lm_depth == 6


def test_xar_defaults_rule_takes_the_cheapest_setting_within_tolerance():
    from models.xar.sampling_defaults import cheapest_within

    rows = [{"net_calls": 32, "cls_fid": 100.0}, {"net_calls": 16, "cls_fid": 104.0},
            {"net_calls": 8, "cls_fid": 106.0}, {"net_calls": 16, "cls_fid": 103.0}]
    assert cheapest_within(rows, 0.05) == {"net_calls": 16, "cls_fid": 103.0}  # 8 calls is 6% worse
    assert cheapest_within(rows, 0.10)["net_calls"] == 8
    assert cheapest_within(rows, 0.0)["net_calls"] == 32
