"""The ablations keep the rows of stages run in earlier calls (recipes/ablations/common.py), and the
meshcraft ablation plots every factor (recipes/ablations/meshcraft.py)."""

import importlib.util
import json

import pytest

from hydra import compose, initialize_config_dir

from test_train import ROOT  # tests/recipes is on sys.path (pytest rootdir-relative imports)


def load_ablation(name: str = "meshcraft"):
    spec = importlib.util.spec_from_file_location(f"{name}_ablation", ROOT / f"recipes/ablations/{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_rerun_stage_replaces_its_rows_and_keeps_the_others(tmp_path):
    merged_rows = load_ablation("common").merged_rows
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
    duration = load_ablation("common").lightning_duration
    assert duration(40) == "00:00:40:00" and duration(0.5) == "00:00:00:30" and duration(1500) == "01:01:00:00"


def test_a_failed_training_raises_with_its_log_and_a_finished_export_is_not_retrained(tmp_path):
    train = load_ablation("common").train
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


def test_plot_draws_every_factor_and_the_seed_band(tmp_path):
    row = {"mmd_x1e3": 20.0, "nna_1": 90.0}
    rows = ([{"factor": "latent_dim", "setting": d, "triangle_acc": 0.01 * d} for d in (4, 8)]
            + [{"factor": "face_count_embedding", "setting": on, **row} for on in (True, False)]
            + [{"factor": f, "setting": v, **row} for f in ("steps", "guidance_scale") for v in (1, 2)]
            + [{"factor": "seed", "setting": s, **row, "mmd_x1e3": 18.0 + s} for s in range(3)])
    load_ablation().plot(rows, tmp_path / "ablation.png")
    assert (tmp_path / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_xar_plot_draws_partitions_steps_and_guidance(tmp_path):
    row = {"cls_fid": 150.0, "s_per_image_b64": 0.1}
    rows = ([{"factor": "partition", "setting": name, **row} for name in ("cell4", "image")]
            + [{"factor": "steps", "setting": s, "model": m, "cfg_ramp": False, **row, "cls_fid": 300.0 / s}
               for m in ("xar-mnist", "xar_dit-mnist") for s in (2, 4)]
            + [{"factor": "guidance_scale", "setting": w, "model": "xar-mnist", "cfg_ramp": ramp, **row}
               for ramp in (True, False) for w in (1.0, 2.0)])
    rows += [{"factor": "defaults", "model": m, "net_calls": n, "cls_fid": 150.0 + n, "cls_fid_min": 149.0 + n,
              "cls_fid_max": 152.0 + n} for m in ("xar", "dit") for n in (8, 16)]
    load_ablation("xar").plot(rows, tmp_path / "ablation.png")
    assert (tmp_path / "ablation.png").stat().st_size > 10_000


def test_xar_defaults_rule_takes_the_cheapest_setting_within_tolerance():
    cheapest_within = load_ablation("xar_defaults").cheapest_within
    rows = [{"net_calls": 32, "cls_fid": 100.0}, {"net_calls": 16, "cls_fid": 104.0},
            {"net_calls": 8, "cls_fid": 106.0}, {"net_calls": 16, "cls_fid": 103.0}]
    assert cheapest_within(rows, 0.05) == {"net_calls": 16, "cls_fid": 103.0}  # 8 calls is 6% worse
    assert cheapest_within(rows, 0.10)["net_calls"] == 8
    assert cheapest_within(rows, 0.0)["net_calls"] == 32


def test_sentence_vae_settings_and_plot(tmp_path):
    ablation = load_ablation("sentence_vae")
    settings = ablation.autoencoder_settings(1e-3)
    assert len({(f, s) for f, s, _ in settings}) == len(settings) == 8
    assert ("kl", "VAE, KL 0.001", ["++model.net.decoder_depth=2", "++model.net.variational=true",
                                    "model.objective.kl_weight=0.001"]) in settings
    # every row but the depth row keeps the two-layer base its figures were measured with
    assert [(f, o[0]) for f, _, o in settings if f == "decoder_depth" or o[0] != "++model.net.decoder_depth=2"] \
        == [("decoder_depth", "++model.net.decoder_depth=1")]
    configs = ROOT / "recipes" / "configs"
    with initialize_config_dir(str(configs), version_base="1.3"):  # every setting's overrides compose
        for _, _, overrides in settings:
            compose("train", overrides=["model=sentence_ae", *overrides])
        lm = compose("train", overrides=["model=sentence_vae", "++model.net.lm_depth=6"])
    assert lm.model.net.lm_depth == 6
    rows = ([{"stage": "autoencoder", "factor": f, "setting": s, "exact_match": 0.4, "token_accuracy": 0.8}
             for f, s, _ in settings]
            + [{"stage": "lm", "factor": "lm_depth", "setting": d, "ppl": 40.0 / d} for d in (1, 3)])
    ablation.plot(rows, tmp_path / "ablation.png")
    assert (tmp_path / "ablation.png").stat().st_size > 10_000


def test_vilad_settings_compose_and_plot(tmp_path):
    ablation = load_ablation("vilad")
    with initialize_config_dir(str(ROOT / "recipes" / "configs"), version_base="1.3"):
        cfgs = {stage: [compose("train", overrides=overrides) for _, _, overrides in runs]
                for stage, runs in ablation.TRAINED.items()}
    assert [c.model.net.get("use_image", True) for c in cfgs["image"]] == [True, False]
    assert [(c.model.net.get("waypoint_codec", "grid"), c.data.waypoint_codec) for c in cfgs["codec"]] == [
        ("grid", "grid"), ("codebook", "codebook")]  # the network and the data agree on the codec
    assert ablation.TRAINED["image"][0][1:] == ablation.TRAINED["codec"][0][1:]  # one baseline run for both stages
    metrics = {"l2_avg": 1.0, "crash_rate": 0.1, "nfe": 4}
    rows = ([{"factor": "steps", "setting": s, **metrics} for s in (1, 4, 14)]
            + [{"factor": "policy", "setting": p, **metrics} for p in ("low_confidence", "random")]
            + [{"factor": stage, "setting": name, **metrics} for stage, runs in ablation.TRAINED.items()
               for name, _, _ in runs])
    ablation.plot(rows, tmp_path / "ablation.png")
    assert (tmp_path / "ablation.png").stat().st_size > 10_000


def test_dllm_code_training_runs_compose_and_both_kinds_of_rows_plot(tmp_path):
    ablation = load_ablation("dllm_code")
    runs = ablation.training_runs(400)
    with initialize_config_dir(str(ROOT / "recipes" / "configs"), version_base="1.3"):
        cfgs = {name: compose("train", overrides=overrides) for name, overrides in runs.items()}
    anneal = {name: cfg.get("anneal_attention_steps") for name, cfg in cfgs.items()}
    assert anneal == {"scratch": None, "adapted_anneal0": 0, "adapted_anneal100": 100, "adapted_anneal200": 200,
                      "ar_sft": None}
    assert cfgs["scratch"].init_from == "checkpoints/dllm_code-tiny" and not cfgs["scratch"].model.net.get("shift")
    assert all(cfgs[n].init_from == "checkpoints/ar_code-tiny" and cfgs[n].model.net.shift
               for n in ("adapted_anneal0", "adapted_anneal100", "adapted_anneal200"))
    assert cfgs["ar_sft"].model.net.name == "ar_code-tiny"
    metrics = {"parse_rate": 0.3, "indented_rate": 0.9}
    rows = ([{"factor": "decoding", "setting": p, "policy": p, "nfe": n, "parse_rate": 0.1, "ar_bits_per_token": 6.0}
             for p in ("random", "threshold") for n in (8, 64)]
            + [{"factor": f, "setting": s, **metrics} for f, s in (("sft", "off"), ("init", "adapted"), ("anneal_steps", 0))])
    ablation.plot(rows, tmp_path / "ablation.png")
    assert (tmp_path / "ablation.png").stat().st_size > 10_000
    ablation.plot(rows[4:], tmp_path / "training_only.png")  # a call that ran one stage still draws
    assert (tmp_path / "training_only.png").stat().st_size > 10_000
