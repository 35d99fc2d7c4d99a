"""Closed-loop data aggregation: the expert's label of a state equals what its own episode logged
there, a planner's states become training rows, and the datamodule draws them at the share asked."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from datamodules.highway import DrivingDataModule, expert_episode, expert_label, make_env, use_expert
from models.vilad.aggregation import AGGREGATED_KEYS, collect

from test_vilad import pipeline


@pytest.mark.slow
@pytest.mark.parametrize("env", ["merge", "intersection"])
def test_the_expert_labels_its_own_states_as_its_episode_logged_them(env):
    episode = expert_episode(env, 5)
    handle = make_env(env, 5)
    use_expert(handle)
    sim = handle.unwrapped
    idle = sim.action_type.actions_indexes["IDLE"]
    for t in range(4):
        label = expert_label(sim)
        np.testing.assert_array_equal(label["decision"][0], episode["decision"][t])
        np.testing.assert_allclose(label["waypoints"][0], episode["waypoints"][t], atol=1e-5)
        before = sim.vehicle.position.copy()
        sim.step(idle)
        assert not np.allclose(before, sim.vehicle.position)  # labelling drove a copy; the env moves only here


@pytest.mark.slow
def test_a_planners_round_becomes_training_rows(tmp_path):
    record = collect(pipeline("vilad-highway"), round=1, out_dir=tmp_path, envs=("merge",), episodes=1, every=3)
    rows = load_file(record["path"])
    assert set(rows) == set(AGGREGATED_KEYS)
    n = record["labelled"]
    assert n == len(rows["step"]) > 0 and (rows["step"] % 3 == 0).all()
    assert record["states"] >= 3 * (n - 1) + 1 and rows["frames"].shape == (n, 64, 64, 3)
    assert rows["decision"].shape == (n, 14) and (rows["episode"] == 0).all()


def test_collect_refuses_round_zero_and_test_seeds(tmp_path):
    with pytest.raises(ValueError, match="count from 1"):
        collect(None, round=0, out_dir=tmp_path)
    with pytest.raises(ValueError, match="training seeds end"):
        collect(None, round=2, out_dir=tmp_path, episodes=60_000)


def fake_split(n: int, lateral: int) -> dict[str, torch.Tensor]:
    return {"frames": torch.zeros(n, 64, 64, 3, dtype=torch.uint8), "context": torch.zeros(n, 4, dtype=torch.long),
            "decision": torch.zeros(n, 14, dtype=torch.long), "waypoints": torch.zeros(n, 6, 2),
            "lateral": torch.full((n,), lateral), "longitudinal": torch.zeros(n, dtype=torch.long),
            "neighbours": torch.zeros(n, 8, 6, 2), "env": torch.zeros(n, dtype=torch.long),
            "episode": torch.arange(n), "step": torch.zeros(n, dtype=torch.long)}


@pytest.mark.parametrize("mix", [0.25, 0.5])
def test_aggregated_rows_get_their_share_of_draws(tmp_path, monkeypatch, mix):
    expert = {**fake_split(90, 0), "expert_crashes": torch.tensor([0])}
    expert["lateral"][:10] = 1  # a rare meta-action, balanced within its own part
    save_file(fake_split(30, 0), tmp_path / "round1.safetensors")
    dm = DrivingDataModule(aggregated=[str(tmp_path / "round1.safetensors")], mix=mix, cache_dir=str(tmp_path))
    monkeypatch.setattr(dm, "load_split", lambda split: expert if split == "train" else fake_split(5, 0))
    weights = dm.draw_weights()
    raw = dm.split("train")
    assert len(weights) == 120 and raw["source"].sum() == 30
    assert weights[raw["source"] == 1].sum() == pytest.approx(mix)
    assert weights[:10].sum() > weights[10:20].sum()  # the rare pair drawn more than its count says
    with pytest.raises(ValueError, match="mix"):
        DrivingDataModule(mix=1.5)


def test_the_rounds_ablation_counts_every_cpu_second_a_round_took_to_reach():
    from models.vilad.ablation_study import cpu_minutes

    start = {"checkpoint": "checkpoints/x", "train_seconds": 600.0}
    assert cpu_minutes({"train_seconds": 120.0}) == 2.0  # a round 0 trained here: its own training
    assert cpu_minutes({"train_seconds": None, "init_from": start}) == 10.0  # 0 steps: the start's
    third = {"train_seconds": 60.0, "aggregation": {"start": start, "seconds_before_this_round": 1200.0}}
    assert cpu_minutes(third) == 31.0  # the start, two rounds of collecting and training, its own steps
    assert cpu_minutes({**third, "aggregation": {"start": None, "seconds_before_this_round": 1200.0}}) == 21.0
