"""Ablations as data (zoo/ablation.py, recipes/ablate.py): rows of earlier calls are kept, a failed
training says why, the one plot draws any domain's rows, every registered ablation is well formed,
and each domain's training settings compose."""

import importlib.util
import json
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

import zoo
from zoo.ablation import Ablation, Stage, lightning_duration, merged_rows, plot_rows
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


def test_vilad_settings_compose():
    from models.vilad.ablation_study import TRAINED

    with initialize_config_dir(CONFIGS, version_base="1.3"):
        cfgs = {stage: [compose("train", overrides=overrides) for _, _, overrides in runs]
                for stage, runs in TRAINED.items()}
    assert [c.model.net.get("use_image", True) for c in cfgs["image"]] == [True, False]
    assert [(c.model.net.get("waypoint_codec", "grid"), c.data.waypoint_codec) for c in cfgs["codec"]] == [
        ("grid", "grid"), ("codebook", "codebook")]  # the network and the data agree on the codec
    assert TRAINED["image"][0][1:] == TRAINED["codec"][0][1:]  # one baseline run for both stages


def test_dllm_code_training_runs_compose():
    from models.dllm_code.ablation_study import training_runs

    with initialize_config_dir(CONFIGS, version_base="1.3"):
        cfgs = {name: compose("train", overrides=overrides) for name, overrides in training_runs(400).items()}
    anneal = {name: cfg.get("anneal_attention_steps") for name, cfg in cfgs.items()}
    assert anneal == {"scratch": None, "adapted_anneal0": 0, "adapted_anneal100": 100, "adapted_anneal200": 200,
                      "ar_sft": None}
    assert cfgs["scratch"].init_from == "checkpoints/dllm_code-tiny" and not cfgs["scratch"].model.net.get("shift")
    assert all(cfgs[n].init_from == "checkpoints/ar_code-tiny" and cfgs[n].model.net.shift
               for n in ("adapted_anneal0", "adapted_anneal100", "adapted_anneal200"))
    assert cfgs["ar_sft"].model.net.name == "ar_code-tiny"


def test_sentence_vae_settings_compose():
    from models.sentence_vae.ablation_study import autoencoder_settings

    settings = autoencoder_settings(1e-3)
    assert len({(f, s) for f, s, _ in settings}) == len(settings) == 8
    assert ("kl", "VAE, KL 0.001", ["++model.net.decoder_depth=2", "++model.net.variational=true",
                                    "model.objective.kl_weight=0.001"]) in settings
    # every row but the depth row keeps the two-layer base its figures were measured with
    assert [(f, o[0]) for f, _, o in settings if f == "decoder_depth" or o[0] != "++model.net.decoder_depth=2"] \
        == [("decoder_depth", "++model.net.decoder_depth=1")]
    with initialize_config_dir(CONFIGS, version_base="1.3"):  # every setting's overrides compose
        for _, _, overrides in settings:
            compose("train", overrides=["model=sentence_ae", *overrides])
        lm = compose("train", overrides=["model=sentence_vae", "++model.net.lm_depth=6"])
    assert lm.model.net.lm_depth == 6


def test_xar_defaults_rule_takes_the_cheapest_setting_within_tolerance():
    from models.xar.sampling_defaults import cheapest_within

    rows = [{"net_calls": 32, "cls_fid": 100.0}, {"net_calls": 16, "cls_fid": 104.0},
            {"net_calls": 8, "cls_fid": 106.0}, {"net_calls": 16, "cls_fid": 103.0}]
    assert cheapest_within(rows, 0.05) == {"net_calls": 16, "cls_fid": 103.0}  # 8 calls is 6% worse
    assert cheapest_within(rows, 0.10)["net_calls"] == 8
    assert cheapest_within(rows, 0.0)["net_calls"] == 32
