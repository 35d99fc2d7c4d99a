"""ViLaD: the decision template (always parses when constrained, even from random weights), both
waypoint codecs and the k-means that makes the codebook, the data labels on a scripted lane change,
the closed-loop harness, and bad input refused by name."""

import numpy as np
import pytest
import torch

import zoo
from datamodules.driving_codec import (DECISION_LEN, DECISION_SLOTS, GRID_VOCAB_SIZE, LATERAL, OFFSETS, PATH_CODES,
                                       VOCAB_SIZE, Context, encode_decision, fit_path_codebook, parse_decision,
                                       path_codebook, slot_logit_mask, template)
from models.vilad.evaluate import collides, contexts_of, evenly, macro_f1
from models.vilad.pipeline import ViladARPipeline, ViladPipeline


def pipeline(name: str, seed: int = 0, codec: str = "grid") -> ViladPipeline:
    torch.manual_seed(seed)
    net = zoo.create_model(name, dim=32, depth=1, num_heads=2, waypoint_codec=codec)
    if net.causal:
        return ViladARPipeline(net, temperature=0.0)
    return ViladPipeline(net, steps=min(4, len(template(codec))), policy="low_confidence", temperature=0.0)


def frames(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 64, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


CONTEXTS = [Context("highway", 25.0, 0.0), Context("intersection", 7.0, -1.57, "left"),
            Context("roundabout", 12.0, 2.0, "straight"), Context("merge", 21.0, 0.1)]


def test_decision_round_trip_and_slot_types():
    waypoints = np.array([[[5.0 * k, 0.25 * k - 1.0] for k in range(1, 7)]])
    tokens = encode_decision(np.array([1]), np.array([2]), waypoints)[0]
    decision = parse_decision(tokens)
    assert (decision.lateral, decision.longitudinal) == ("left", "decelerate")
    np.testing.assert_allclose(decision.waypoints, waypoints[0])  # on bin centres: exact
    assert "lateral: left" in decision.text()
    straight = parse_decision(encode_decision(np.array([0]), np.array([0]), np.array([[[10.1, 0.03]] * 6]))[0])
    assert straight.waypoints[0, 1] == 0.0  # a straight path decodes to y = 0
    swapped = tokens.copy()
    swapped[0] = tokens[2]  # a waypoint token in the lateral slot
    assert parse_decision(swapped) is None
    assert parse_decision(tokens[:-1]) is None
    allowed = slot_logit_mask()
    assert allowed.shape[0] == DECISION_LEN and bool(allowed[0, OFFSETS["lateral"]]) and not bool(allowed[0, OFFSETS["x"]])
    assert DECISION_SLOTS[:2] == ("lateral", "longitudinal")


def test_contexts_round_trip_through_tokens():
    tokens = torch.tensor([c.tokens() for c in CONTEXTS])
    assert torch.equal(torch.tensor([c.tokens() for c in contexts_of(tokens)]), tokens)


def test_codebook_codec_round_trip_and_a_grid_vocabulary_unchanged():
    paths = path_codebook()
    assert paths.shape == (PATH_CODES, 6, 2) and torch.isfinite(paths).all()
    assert GRID_VOCAB_SIZE == 453 == OFFSETS["path"] and VOCAB_SIZE == 453 + PATH_CODES  # shipped grid planners load
    tokens = encode_decision(np.array([2, 0]), np.array([1, 0]), paths[[5, 17]].numpy() + 0.01, "codebook")
    assert tokens.shape == (2, 3) and tokens[:, 2].tolist() == [OFFSETS["path"] + 5, OFFSETS["path"] + 17]
    decision = parse_decision(tokens[0], "codebook")
    assert (decision.lateral, decision.longitudinal) == ("right", "accelerate")
    np.testing.assert_allclose(decision.waypoints, paths[5].numpy())
    assert parse_decision(tokens[0], "grid") is None  # three tokens are not a grid decision
    wrong = tokens[0].copy()
    wrong[2] = OFFSETS["x"]
    assert parse_decision(wrong, "codebook") is None
    allowed = slot_logit_mask(template("codebook"))
    assert allowed.shape == (3, VOCAB_SIZE) and int(allowed[2].sum()) == PATH_CODES and not bool(allowed[2, OFFSETS["x"]])
    with pytest.raises(ValueError, match="waypoint_codec"):
        template("spline")


def test_kmeans_finds_the_paths_it_was_given():
    rng = np.random.default_rng(0)
    centres = np.stack([np.stack([np.arange(1, 7) * v, np.arange(1, 7) * w], 1) for v, w in [(5, 0), (2, 1), (8, -1)]])
    paths = np.concatenate([c + rng.normal(0, 0.05, (40, 6, 2)) for c in centres])
    found = fit_path_codebook(paths, codes=3).numpy()
    order = [int(np.argmin(np.abs(found - c).sum((1, 2)))) for c in centres]
    assert sorted(order) == [0, 1, 2]  # one code for each cluster
    np.testing.assert_allclose(found[order], centres, atol=0.05)
    with pytest.raises(ValueError, match="waypoints"):
        fit_path_codebook(paths[:2], codes=3)


def test_evaluation_subsets_spread_over_the_split():
    raw = {"env": torch.arange(10) // 5, "step": torch.arange(10), "expert_crashes": torch.tensor([1])}
    picked = evenly(raw, 4)
    assert picked["env"].tolist() == [0, 0, 1, 1] and picked["step"].tolist() == [0, 3, 6, 9]
    assert picked["expert_crashes"].tolist() == [1] and evenly(raw, None) is raw


@pytest.mark.parametrize("name, codec", [("vilad-highway", "grid"), ("vilad_ar-highway", "grid"),
                                         ("vilad-highway", "codebook"), ("vilad_ar-highway", "codebook")])
def test_constrained_output_always_parses_even_from_random_weights(name, codec):
    pipe = pipeline(name, codec=codec)
    out = pipe(frames(4), CONTEXTS, temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert out.parse_failures == 0 and not torch.isnan(out.waypoints).any()
    assert out.waypoints.shape == (4, 6, 2) and len(out.texts) == 4 and all(a is not None for a in out.meta_actions)
    slots = len(template(codec))
    assert out.tokens.shape == (4, 4 + slots) and out.nfe == (slots if pipe.net.causal else min(4, slots))
    raw = pipe(frames(4), CONTEXTS, temperature=1.0, constrained=False, generator=torch.Generator().manual_seed(0))
    assert raw.parse_failures > 0  # random weights put tokens in the wrong slots: the constraint matters


@pytest.mark.parametrize("name", ["vilad-highway", "vilad_ar-highway"])
def test_seeds_repeat_and_differ(name):
    pipe = pipeline(name)

    def tokens(seed):
        return pipe(frames(4), CONTEXTS, temperature=1.0, generator=torch.Generator().manual_seed(seed)).tokens

    assert torch.equal(tokens(0), tokens(0))
    assert not torch.equal(tokens(0), tokens(1))


def test_the_planner_reads_the_frame_unless_told_not_to():
    torch.manual_seed(0)
    net = zoo.create_model("vilad-highway", dim=32, depth=1, num_heads=2)
    x = torch.tensor([CONTEXTS[0].tokens() + [OFFSETS["lateral"]] * DECISION_LEN])
    assert not torch.allclose(net(x, None, frames(1, 0)), net(x, None, frames(1, 1)))
    blind = zoo.create_model("vilad-highway", dim=32, depth=1, num_heads=2, use_image=False)
    assert torch.equal(blind(x, None, frames(1, 0)), blind(x, None, None))


def test_bad_input_is_refused_by_name():
    pipe = pipeline("vilad-highway")
    with pytest.raises(ValueError, match="frames"):
        pipe(torch.zeros(1, 32, 32, 3, dtype=torch.uint8), CONTEXTS[:1])
    with pytest.raises(ValueError, match="frames"):
        pipe(torch.zeros(1, 64, 64, 3), CONTEXTS[:1])  # float, not uint8
    with pytest.raises(ValueError, match="env"):
        pipe(frames(1), [{"env": "racetrack", "speed": 10.0, "heading": 0.0}])
    with pytest.raises(ValueError, match="context"):
        pipe(frames(2), CONTEXTS[:1])
    with pytest.raises(ValueError, match="steps"):
        pipe(frames(1), CONTEXTS[:1], steps=0)
    with pytest.raises(ValueError, match="context"):
        pipe(frames(1), True)
    with pytest.raises(ValueError, match="speed"):
        pipe(frames(1), [Context("highway", float("nan"), 0.0)])
    with pytest.raises(ValueError, match="steps"):  # the codebook template has three slots
        pipeline("vilad-highway", codec="codebook")(frames(1), CONTEXTS[:1], steps=4)
    from datamodules.highway import DrivingDataModule

    with pytest.raises(ValueError, match="waypoint_codec"):
        DrivingDataModule(waypoint_codec="spline")
    with pytest.raises(ValueError, match="episodes"):
        DrivingDataModule(episodes={"train": 1, "test": 1, "dev": 1})


def test_metrics_count_what_they_say():
    assert macro_f1(np.array([0, 1, 2]), np.array([0, 1, 2]), 3) == 1.0
    assert macro_f1(np.array([0, 0, 0]), np.array([0, 1, 2]), 3) == pytest.approx(1 / 3 * 2 * 1 / 4)
    path = np.array([[[5.0 * k, 0.0] for k in range(1, 7)]])
    ahead = np.full((1, 1, 6, 2), np.nan)
    ahead[0, 0, 2] = [16.0, 1.0]  # 1 m off the 15 m waypoint at that time: inside a car box
    assert collides(path, ahead)[0]
    ahead[0, 0, 2] = [16.0, 3.5]  # the next lane
    assert not collides(path, ahead)[0]


@pytest.mark.slow
def test_a_scripted_lane_change_is_labelled_left():
    from datamodules.highway import make_env, meta_actions

    handle = make_env("highway", seed=3)
    sim = handle.unwrapped
    actions = sim.action_type.actions_indexes
    script = ["IDLE", "LANE_LEFT", "IDLE", "IDLE", "IDLE"]
    lanes, speeds = [], []
    for name in script:
        lanes.append(sim.vehicle.target_lane_index)
        speeds.append(sim.vehicle.speed)
        sim.step(actions[name])
    handle.close()
    assert lanes[0][2] > 0, "the scripted ego must start right of the leftmost lane"
    lateral, _ = meta_actions(lanes, speeds, np.arange(3))
    assert [LATERAL[i] for i in lateral] == ["keep", "left", "keep"]


@pytest.mark.slow
def test_the_expert_passes_through_the_closed_loop_with_its_logged_crashes():
    """The harness drives the IDM expert on the seeds the data generator logged: the same crashes."""
    from datamodules.highway import expert_episode
    from models.vilad.closed_loop import drive

    seeds = [0, 1]
    logged = [bool(expert_episode("roundabout", s)["expert_crashed"][:1].any()) for s in seeds]
    driven = [r["crashed"] for r in drive("roundabout", seeds, None)]
    assert driven == logged and logged == [True, False]  # roundabout seed 0: the expert's known crash


def test_an_intersection_made_first_does_not_change_the_next_scenarios_traffic():
    """intersection-v0 writes IDM settings onto the vehicle class; make_env puts them back, so an env's
    traffic does not depend on what the process made before it."""
    from highway_env.vehicle.behavior import IDMVehicle

    from datamodules.highway import IDM_CLASS_SETTINGS, make_env

    def first_steps():
        handle = make_env("roundabout", 0)
        values = {name: getattr(IDMVehicle, name) for name in IDM_CLASS_SETTINGS}
        sim = handle.unwrapped
        for _ in range(3):
            sim.step(sim.action_type.actions_indexes["IDLE"])
        return values, np.stack([v.position for v in sim.road.vehicles])

    before, positions = first_steps()
    make_env("intersection", 0)
    assert IDMVehicle.DISTANCE_WANTED != before["DISTANCE_WANTED"]  # what the intersection writes
    after, positions_after = first_steps()
    assert after == before
    np.testing.assert_array_equal(positions, positions_after)


def test_scene_mode_refuses_what_it_cannot_drive():
    pipe = pipeline("vilad-highway")
    with pytest.raises(ValueError, match="scene"):
        pipe(scene="racetrack")
    with pytest.raises(ValueError, match="scene"):
        pipe(frames(1), CONTEXTS[:1], scene="highway")
    with pytest.raises(ValueError, match="frames and context"):
        pipe(frames(1))


@pytest.mark.slow
def test_a_driven_episode_saves_a_gif_and_a_strip(tmp_path):
    from PIL import Image

    out = pipeline("vilad-highway")(scene="intersection", scene_seed=100_001, generator=torch.Generator().manual_seed(0))
    assert len(out.frames) == len(out.decisions) >= 1 and out.nfe == 4
    out.save(tmp_path)
    gif = Image.open(tmp_path / "episode.gif")
    shown = 0
    for i in range(gif.n_frames):  # Pillow merges identical neighbours into one longer frame
        gif.seek(i)
        shown += gif.info["duration"]
    assert shown == 500 * len(out.frames) and gif.size == (256, 256)
    assert Image.open(tmp_path / "episode.png").size[1] == 256


def test_both_objectives_score_a_batch_with_its_frames():
    """The export's evaluation passes the frames on, as the loss does (the AR export once dropped them)."""
    from zoo.objectives import MaskedDiffusion
    from zoo.objectives.autoregressive import NextTokenPrediction

    x1 = torch.tensor([c.tokens() + [OFFSETS["lateral"], OFFSETS["longitudinal"]] + [OFFSETS["x"], OFFSETS["y"]] * 6
                       for c in CONTEXTS])
    fixed = torch.zeros_like(x1, dtype=torch.bool)
    fixed[:, :4] = True
    batch = {"x1": x1, "cond": frames(4), "fixed": fixed}
    ar = pipeline("vilad_ar-highway").net
    assert np.isfinite(NextTokenPrediction().evaluate(ar, [batch])["nll_bits_per_token"])
    md = pipeline("vilad-highway").net
    assert np.isfinite(MaskedDiffusion(mask_id=1).evaluate(md, [batch], num_samples=2)["elbo_bits_per_token"])


def test_the_masked_planner_runs_its_conv_stem_once_per_call():
    pipe = pipeline("vilad-highway")
    calls = []
    pipe.net.stem.register_forward_hook(lambda *a: calls.append(1))
    out = pipe(frames(2), CONTEXTS[:2], steps=4)
    assert out.nfe == 4 and len(calls) == 1
    embedded = pipe.net.embed_frames(frames(2))
    tokens = out.tokens
    assert torch.equal(pipe.net(tokens, None, frames(2)), pipe.net(tokens, None, embedded))


def test_closed_loop_crash_rates_carry_wilson_intervals_per_scenario():
    from models.vilad.bench import with_interval

    loop = {"episodes": 100, "crash_rate": 0.1, "per_env": {"merge": {"episodes": 50, "crash_rate": 0.0},
                                                            "intersection": {"episodes": 50, "crash_rate": 0.2}}}
    out = with_interval(loop)
    low, high = out["crash_rate_ci95"]
    assert low == pytest.approx(0.0552, abs=1e-3) and high == pytest.approx(0.1744, abs=1e-3)  # 10 of 100
    assert out["per_env"]["merge"]["crash_rate_ci95"][0] == 0.0 and out["per_env"]["merge"]["crash_rate_ci95"][1] > 0.05
    assert out["per_env"]["intersection"]["crash_rate_ci95"][0] < 0.2 < out["per_env"]["intersection"]["crash_rate_ci95"][1]


def test_block_length_one_commits_the_slots_left_to_right_and_a_bad_one_is_refused():
    from datamodules.driving_codec import CONTEXT_LEN, MASK_ID

    pipe = pipeline("vilad-highway")
    seen = []
    pipe.net.register_forward_hook(lambda module, args, out: seen.append(args[0][:, CONTEXT_LEN:].clone()))
    out = pipe(frames(2), CONTEXTS[:2], steps=DECISION_LEN, block_length=1)
    assert out.nfe == DECISION_LEN and len(seen) == DECISION_LEN
    for k, tokens in enumerate(seen):  # pass k sees slots 0..k-1 decided, the rest still masked
        assert (tokens[:, :k] != MASK_ID).all() and (tokens[:, k:] == MASK_ID).all()
    assert torch.equal(pipe(frames(2), CONTEXTS[:2], steps=4, block_length=DECISION_LEN).tokens,
                       pipe(frames(2), CONTEXTS[:2], steps=4).tokens)  # one block: the default
    for bad, steps in ((5, DECISION_LEN), (0, DECISION_LEN), (2, 4)):  # 14 % 5; below 1; 7 blocks in 4 passes
        with pytest.raises(ValueError, match="block_length"):
            pipe(frames(1), CONTEXTS[:1], steps=steps, block_length=bad)
