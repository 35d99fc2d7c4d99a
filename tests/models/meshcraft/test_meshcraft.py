"""MeshCraft: face-count control by shape, clear errors, VAE fitting, masking, AR cache, metrics."""

import numpy as np
import pytest
import torch
import trimesh

import zoo
from datamodules.mesh_codec import CATEGORIES, canonical, quantize, to_tokens, weld
from datamodules.meshes import make_shape
from models.meshcraft import FaceLatentFlow, MeshAR, MeshCraftPipeline, MeshGPTPipeline, MeshVAELoss
from models.meshcraft.metrics import (chamfer_matrix, connectivity, coverage_metrics, face_count_accuracy,
                                     mesh_connectivity, validity)
from models.meshcraft.objective import padding_mask, sample_latents
from models.meshcraft.pipeline import tokens_to_mesh


def tiny(name, **kw):
    torch.manual_seed(0)
    return zoo.create_model(name, dim=32, num_heads=2, **kw).eval()


@pytest.fixture(scope="module")
def pipes():
    vae = tiny("meshcraft_vae-tiny", enc_depth=1, dec_depth=1)
    dit = tiny("meshcraft-tiny", depth=1, max_faces=50)
    ar = tiny("meshgpt_ar-tiny", depth=1, max_faces=50)
    stats = {"mean": [0.0] * 8, "std": [1.0] * 8}
    return MeshCraftPipeline(dit, vae=vae, latent_stats=stats, steps=3, guidance_scale=2.0, solver="euler",
                              weld=0.0), MeshGPTPipeline(ar, temperature=1.0, weld=0.0)


def test_meshcraft_returns_exactly_the_requested_faces_before_cleanup(pipes):
    out = pipes[0](num_faces=[7, 50, 1], category=["chair", "lamp", "bench"], generator=torch.Generator().manual_seed(0))
    assert [len(t) for t in out.tokens] == [7, 50, 1] == out.requested
    assert all(t.shape[1] == 9 for t in out.tokens)
    assert out.categories == ["chair", "lamp", "bench"]
    assert all(e <= r for e, r in zip(out.effective_faces, out.requested))  # cleanup only removes
    assert out.nfe == 3 and out.decoder_calls == 1  # 3 guided Euler steps, one batched pass each; the VAE decode apart


def test_ar_exact_faces_stops_at_the_requested_count(pipes):
    out = pipes[1](num_faces=[3, 5], category="table", exact_faces=True, generator=torch.Generator().manual_seed(0))
    assert [len(t) for t in out.tokens] == [3, 5]
    assert out.nfe == 9 * 5


@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("kwargs, match", [
    ({"num_faces": 0}, r"\[1, 50\]"), ({"num_faces": 51}, r"trained maximum"), ({"num_faces": 2.5}, "integer"),
    ({"category": "sofa"}, "chair"), ({"num_faces": [3, 4], "batch_size": 3}, "2 values for a batch of 3")])
def test_bad_requests_say_what_is_allowed(pipes, which, kwargs, match):
    with pytest.raises(ValueError, match=match):
        pipes[which](**{"num_faces": 5, "category": "chair", **kwargs})


@pytest.mark.parametrize("steps", [0, -2, 2.5])
def test_meshcraft_refuses_impossible_step_counts(pipes, steps):
    with pytest.raises(ValueError, match="steps"):  # 0 once fell back to the default silently
        pipes[0](num_faces=5, category="chair", steps=steps)


def test_same_generator_same_meshes(pipes):
    a = pipes[0](num_faces=20, batch_size=2, category=None, generator=torch.Generator().manual_seed(3))
    b = pipes[0](num_faces=20, batch_size=2, category=None, generator=torch.Generator().manual_seed(3))
    assert a.categories == b.categories and all(np.array_equal(x, y) for x, y in zip(a.tokens, b.tokens))


def test_padding_does_not_leak_into_real_faces():
    dit = tiny("meshcraft-tiny", depth=2)
    x = torch.randn(1, 10, 8)
    mask = torch.arange(10)[None] < 6
    cond, t = torch.tensor([[1, 6]]), torch.tensor([0.3])
    with torch.no_grad():
        a = dit(x, t, cond, mask=mask)
        x2 = x.clone()
        x2[:, 6:] = 100.0
        b = dit(x2, t, cond, mask=mask)
    assert torch.allclose(a[:, :6], b[:, :6], atol=1e-5)


def test_unpadded_batches_skip_the_mask_and_sample_the_same_latents():
    dit = tiny("meshcraft-tiny", depth=2)
    cond, full = torch.tensor([[0, 12], [2, 12]]), torch.ones(2, 12, dtype=torch.bool)
    padded = full.clone()
    padded[1, 9:] = False
    assert padding_mask(full) is None and padding_mask(padded) is padded
    fast = sample_latents(dit, cond, full, steps=3, guidance_scale=2.0,
                                     generator=torch.Generator().manual_seed(0))
    x0 = torch.randn(2, 12, 8, generator=torch.Generator().manual_seed(0))
    masked = FaceLatentFlow().sample(dit, x0=x0, steps=3, cond=cond, guidance_scale=2.0, mask=full)
    assert torch.allclose(fast.x, masked.x, atol=1e-5)


def test_face_count_condition_changes_the_velocity_unless_ablated():
    x, t, mask = torch.randn(1, 6, 8), torch.tensor([0.5]), torch.ones(1, 6, dtype=torch.bool)
    for on in (True, False):
        dit = tiny("meshcraft-tiny", depth=1, face_count_embedding=on)
        torch.nn.init.normal_(dit.blocks[0].ada.linear.weight, std=0.1)  # leave the zero init
        with torch.no_grad():
            a, b = dit(x, t, torch.tensor([[0, 100]]), mask=mask), dit(x, t, torch.tensor([[0, 700]]), mask=mask)
        assert (not torch.allclose(a, b)) == on


def test_ar_cached_greedy_equals_full_forward():
    ar = tiny("meshgpt_ar-tiny", depth=2, max_faces=4)
    cond = torch.tensor([[2, 3]])
    out = MeshAR().sample(ar, cond, exact_faces=True, temperature=0.0)
    seq = out.faces[0].flatten()
    with torch.no_grad():
        logits = ar(torch.cat([seq, torch.tensor([ar.eos])])[None], None, cond)[0, :-1]
    logits[torch.arange(len(seq)), ar.eos] = -float("inf")
    assert torch.equal(logits.argmax(-1), seq)


def real_batch(seed=0, categories=("chair", "lamp")):
    rows = []
    for i, c in enumerate(categories):
        mesh = make_shape(c, np.random.default_rng(seed + i))
        rows.append(to_tokens(*canonical(quantize(mesh.vertices), mesh.faces))[:48])
    n = max(len(r) for r in rows)
    x1 = torch.zeros(len(rows), n, 9, dtype=torch.uint8)
    mask = torch.zeros(len(rows), n, dtype=torch.bool)
    for i, r in enumerate(rows):
        x1[i, :len(r)], mask[i, :len(r)] = torch.from_numpy(r.astype(np.uint8)), True
    return {"x1": x1, "mask": mask, "cond": torch.tensor([[CATEGORIES.index(c), len(r)] for c, r in zip(categories, rows)])}


def fitted_vae(batch: dict, loss: MeshVAELoss, steps: int):
    """A small VAE trained on one batch for ``steps`` Adam steps, in eval mode."""
    torch.manual_seed(0)
    vae = zoo.create_model("meshcraft_vae-tiny", dim=64, num_heads=2, enc_depth=1, dec_depth=1)
    opt = torch.optim.Adam(vae.parameters(), lr=1e-3)
    for step in range(steps):
        out = loss.loss(vae, **batch, generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    return vae.eval()


def test_vae_learns_to_reconstruct_a_batch():
    batch, loss = real_batch(), MeshVAELoss(kl_weight=1e-4)
    metrics = loss.evaluate(fitted_vae(batch, loss, 300), [batch])
    assert metrics["coord_acc"] > 0.9 and metrics["triangle_acc"] > 0.5 and metrics["vertex_l2_steps"] < 5


def test_latent_spread_is_each_dimensions_std_over_real_faces():
    from models.meshcraft.vae import latent_spread

    mean = torch.zeros(2, 3, 2)
    mean[0, :, 0] = torch.tensor([1.0, 3.0, 100.0])  # the third face is padding
    mean[1, :2, 0] = torch.tensor([5.0, 7.0])
    mean[..., 1] = 4.0  # a constant dimension: clamped, never a division by zero downstream
    mask = torch.tensor([[True, True, False], [True, True, False]])
    spread = latent_spread(mean, mask)
    assert torch.allclose(spread[0], torch.tensor([1.0, 3.0, 5.0, 7.0]).std()) and 0 < spread[1] <= 1e-6


def test_frozen_encoder_gets_no_gradient_and_latent_noise_changes_what_the_decoder_sees():
    torch.manual_seed(0)
    vae = zoo.create_model("meshcraft_vae-tiny", dim=32, num_heads=2, enc_depth=1, dec_depth=1)
    batch = real_batch()
    frozen = MeshVAELoss(kl_weight=1e-4, latent_noise=0.5, train_encoder=False)
    frozen.loss(vae, **batch, generator=torch.Generator().manual_seed(0)).loss.backward()
    assert all(p.grad is None for p in vae.encoder.parameters()) and vae.to_posterior.weight.grad is None
    assert vae.latent_in.weight.grad.abs().sum() > 0 and vae.to_logits.gaussian.weight.grad.abs().sum() > 0
    vae.zero_grad(set_to_none=True)
    both = MeshVAELoss(kl_weight=1e-4)
    both.loss(vae, **batch, generator=torch.Generator().manual_seed(0)).loss.backward()
    assert vae.to_posterior.weight.grad.abs().sum() > 0

    def ce(latent_noise, seed):
        out = MeshVAELoss(latent_noise=latent_noise).loss(vae, **batch, generator=torch.Generator().manual_seed(seed))
        return out.metrics["ce"].item()

    assert ce(0.5, 0) == ce(0.5, 0) != ce(0.5, 1) and ce(0.5, 0) != ce(0.0, 0)
    with pytest.raises(ValueError, match="latent_noise"):
        MeshVAELoss(latent_noise=-0.1)


def test_vae_evaluation_under_latent_noise_is_seeded_and_worse_than_without():
    batch, loss = real_batch(), MeshVAELoss(kl_weight=1e-4)
    vae = fitted_vae(batch, loss, 150)

    def l2(noise, seed=0):
        return loss.evaluate(vae, [batch], latent_noise=noise, generator=torch.Generator().manual_seed(seed))["vertex_l2_steps"]

    assert l2(0.0) < l2(1.0) < l2(4.0) and l2(1.0) == l2(1.0, 0) != l2(1.0, 1)


def test_flow_loss_ignores_padding():
    dit = tiny("meshcraft-tiny", depth=1)
    x1 = torch.randn(2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    cond = torch.tensor([[0, 3], [1, 5]])
    a = FaceLatentFlow().loss(dit, x1, mask, cond, generator=torch.Generator().manual_seed(0)).loss
    x1[0, 3:] = 50.0
    b = FaceLatentFlow().loss(dit, x1, mask, cond, generator=torch.Generator().manual_seed(0)).loss
    assert torch.allclose(a, b)


def test_chamfer_and_coverage_metrics():
    torch.manual_seed(0)
    clouds = [torch.rand(256, 3) for _ in range(4)]
    far = [c + 5.0 for c in clouds]
    d = chamfer_matrix(clouds, clouds)
    assert torch.allclose(d.diag(), torch.zeros(4, dtype=d.dtype), atol=1e-6) and (d.fill_diagonal_(1.0) > 0).all()
    same = coverage_metrics(clouds, clouds)
    assert same["cov"] == 100.0 and same["mmd_x1e3"] == pytest.approx(0.0, abs=1e-3) and same["nna_1"] == 0.0
    apart = coverage_metrics(far, clouds)
    assert apart["nna_1"] == 100.0 and apart["mmd_x1e3"] > 1e3
    assert chamfer_matrix([None], clouds).isinf().all()
    # the k-d tree's nearest neighbours against a dense distance matrix, and b=None against itself
    other = [torch.rand(100, 3) for _ in range(3)]
    dense = torch.stack([torch.stack([(torch.cdist(p.double(), q.double()) ** 2).min(1).values.mean()
                                      + (torch.cdist(q.double(), p.double()) ** 2).min(1).values.mean()
                                      for q in other]) for p in clouds])
    assert torch.allclose(chamfer_matrix(clouds, other), dense)
    assert torch.allclose(chamfer_matrix(clouds), chamfer_matrix(clouds, clouds))


def test_validity_and_face_count_accuracy():
    good = np.array([[0, 0, 0, 0, 0, 1, 0, 1, 0]])
    tokens = [np.concatenate([good, good[:, [3, 4, 5, 6, 7, 8, 0, 1, 2]],  # the same face rotated: duplicate
                              [[0, 0, 0, 0, 0, 0, 1, 1, 1]]])]  # two equal corners: degenerate
    mesh = tokens_to_mesh(tokens[0])
    assert len(mesh.faces) == 1
    v = validity(tokens)
    assert v["degenerate_faces_pct"] == pytest.approx(100 / 3) and v["duplicate_faces_pct"] == pytest.approx(100 / 3)
    f = face_count_accuracy([10, 20], [10, 15])
    assert f["face_count_exact_pct"] == 50.0 and f["face_count_rel_err_pct"] == pytest.approx(12.5)


def cube_tokens() -> np.ndarray:
    """A closed box (12 faces, 8 shared corners) in the ordered token form."""
    box = trimesh.creation.box(extents=(1, 1, 1))
    vertices, faces = canonical(quantize(np.asarray(box.vertices)), np.asarray(box.faces))
    return to_tokens(vertices, faces)


def test_connectivity_of_a_closed_cube_and_of_a_soup():
    cube = mesh_connectivity(tokens_to_mesh(cube_tokens()))
    assert cube == {"loose_faces": 0.0, "largest_patch": 100.0, "components": 1, "closed_parts": 100.0,
                    "closed_part_faces": 100.0, "nonmanifold_edges": 0.0, "boundary_edges": 0.0,
                    "corner_coincidence": 100.0, "watertight": 100.0}
    # five triangles, none sharing a corner: every face its own part, every edge a boundary
    soup = np.array([[10 * i, 0, 0, 10 * i, 0, 5, 10 * i, 5, 0] for i in range(5)])
    loose = mesh_connectivity(tokens_to_mesh(soup))
    assert loose == {"loose_faces": 100.0, "largest_patch": 20.0, "components": 5, "closed_parts": 0.0,
                     "closed_part_faces": 0.0, "nonmanifold_edges": 0.0, "boundary_edges": 100.0,
                     "corner_coincidence": 0.0, "watertight": 0.0}
    # two faces sharing one corner (not an edge): the corner coincides, but both faces are loose
    fan = np.array([[0, 0, 0, 0, 0, 5, 0, 5, 0], [0, 0, 0, 0, 0, 9, 9, 0, 0]])
    touching = mesh_connectivity(tokens_to_mesh(fan))
    assert touching["corner_coincidence"] == pytest.approx(100 / 3) and touching["components"] == 2
    # a strip of 4 faces: one part, so no loose faces, though its edges are mostly boundary and it is open
    strip = np.array([[0, 0, 0, 0, 0, 5, 0, 5, 0], [0, 0, 5, 0, 5, 0, 0, 5, 5],
                      [0, 0, 5, 0, 5, 5, 0, 0, 9], [0, 0, 9, 0, 5, 5, 0, 5, 9]])
    m = mesh_connectivity(tokens_to_mesh(strip))
    assert m["loose_faces"] == 0.0 and m["components"] == 1 and m["boundary_edges"] == pytest.approx(100 * 6 / 9)
    assert m["closed_parts"] == 0.0 and m["largest_patch"] == 100.0
    mean = connectivity([tokens_to_mesh(cube_tokens()), tokens_to_mesh(soup)])
    assert mean["loose_faces"] == 50.0 and mean["watertight"] == 50.0 and mean["components"] == 3.0


def test_a_fan_of_three_faces_on_one_edge_is_not_connected():
    # three faces hinged on the edge (0,0,0)-(0,0,9): the edge is non-manifold, so it joins nothing
    fan = np.array([[0, 0, 0, 0, 0, 9, 9, 0, 0], [0, 0, 0, 0, 0, 9, 0, 9, 0], [0, 0, 0, 0, 0, 9, 5, 5, 0]])
    m = mesh_connectivity(tokens_to_mesh(fan))
    assert m["components"] == 3 and m["loose_faces"] == 100.0 and m["largest_patch"] == pytest.approx(100 / 3)
    assert m["nonmanifold_edges"] == pytest.approx(100 / 7)  # 1 of 7 distinct edges
    # a fourth face glued to the cube along an edge: the cube's edge becomes a fan, the cube is no longer closed
    cube = cube_tokens()
    corners = cube.reshape(-1, 3, 3)
    a, b = corners[0, 0], corners[0, 1]  # an edge of the cube
    fin = np.concatenate([a, b, [63, 63, 63]])[None]  # to the cube's centre
    m = mesh_connectivity(tokens_to_mesh(np.concatenate([cube, fin])))
    assert m["closed_parts"] < 100.0 and m["nonmanifold_edges"] > 0.0 and m["watertight"] == 0.0


def test_a_closed_box_is_one_watertight_part_and_two_boxes_are_two():
    box = mesh_connectivity(tokens_to_mesh(cube_tokens()))
    assert box["components"] == 1 and box["closed_parts"] == 100.0 and box["watertight"] == 100.0
    small = trimesh.creation.box(extents=(0.2, 0.2, 0.2))
    two = trimesh.util.concatenate([small, small.copy().apply_translation((0.3, 0, 0))])
    vertices, faces = canonical(quantize(np.asarray(two.vertices)), np.asarray(two.faces))
    m = mesh_connectivity(tokens_to_mesh(to_tokens(vertices, faces)))
    assert m["components"] == 2 and m["closed_parts"] == 100.0 and m["largest_patch"] == 50.0
    # one box with a face removed: still one part, but open (and so is the mesh)
    holed = mesh_connectivity(tokens_to_mesh(cube_tokens()[1:]))
    assert holed["components"] == 1 and holed["closed_parts"] == 0.0 and holed["watertight"] == 0.0


def test_corner_gap_is_zero_for_shared_corners_and_the_distance_otherwise():
    from models.meshcraft.metrics import corner_gap

    assert corner_gap(cube_tokens()) == 0.0
    soup = np.array([[10 * i, 0, 0, 10 * i, 0, 5, 10 * i, 5, 0] for i in range(5)])  # copies 10 levels apart
    assert corner_gap(soup) == 10.0
    assert corner_gap(soup[:1]) is None
    moved = cube_tokens().copy()
    moved[:, 0] += np.arange(len(moved)) % 2  # every other face one level along x
    assert corner_gap(moved) <= 1.0 and connectivity([tokens_to_mesh(moved)], [moved])["corner_gap"] <= 1.0


def test_size_bands_split_the_connectivity_by_requested_faces():
    from models.meshcraft.evaluate import by_band

    cube = tokens_to_mesh(cube_tokens())
    soup = tokens_to_mesh(np.array([[10 * i, 0, 0, 10 * i, 0, 5, 10 * i, 5, 0] for i in range(5)]))
    out = by_band(requested=[100, 12, 700], effective=[100, 12, 350], meshes=[cube, cube, soup])
    assert out["faces_100/meshes"] == 2 and out["faces_100/loose_faces"] == 0.0
    assert out["faces_800/loose_faces"] == 100.0 and out["faces_800/face_count_rel_err_pct"] == 50.0
    assert not any(k.startswith("faces_400/") for k in out)  # no request in that band


def test_welding_joins_near_corners_and_leaves_far_ones():
    cube = cube_tokens()
    rng = np.random.default_rng(0)
    # every corner of every face moved by at most one level on one axis: a soup of near-misses
    jitter = np.zeros_like(cube)
    jitter[np.arange(len(cube))[:, None], rng.integers(0, 9, (len(cube), 1))] = 1
    noisy = np.where(cube + jitter > 127, cube - jitter, cube + jitter)
    assert mesh_connectivity(tokens_to_mesh(noisy))["watertight"] == 0.0
    welded = mesh_connectivity(tokens_to_mesh(noisy, weld=1.0))
    assert welded["watertight"] == 100.0 and welded["corner_coincidence"] == 100.0
    # tolerance 0 is the identity; corners further apart than the tolerance stay apart
    assert (weld(noisy, 0.0) == noisy).all()
    far = np.array([[0, 0, 0, 0, 0, 9, 0, 9, 0], [0, 0, 2, 0, 0, 9, 9, 0, 0]])
    assert (weld(far, 1.5) == far).all() and (weld(far, 2.0)[1, :3] == [0, 0, 0]).all()
    # the corner more faces use wins: two faces at (0, 0, 0), one at (0, 0, 1)
    votes = np.array([[0, 0, 0, 0, 0, 9, 0, 9, 0], [0, 0, 0, 0, 9, 0, 9, 0, 0], [0, 0, 1, 9, 9, 9, 9, 0, 9]])
    assert (weld(votes, 1.0)[2, :3] == [0, 0, 0]).all()
    with pytest.raises(ValueError, match="weld"):
        weld(far, -1.0)


def test_welding_never_collapses_a_face_or_makes_two_faces_one():
    # a sliver: its own corners lie 1 and 2 levels apart; welding within 3 must keep its three corners
    sliver = np.array([[0, 0, 0, 0, 0, 1, 0, 0, 2]])
    assert (weld(sliver, 3.0) == sliver).all()
    # two faces that differ in one corner, a level apart: joining those corners would make them one
    # triangle (a duplicate, dropped), so they stay apart; the shared corners already coincide
    twins = np.array([[0, 0, 0, 0, 0, 9, 0, 9, 0], [0, 0, 0, 0, 0, 9, 0, 9, 1]])
    assert (weld(twins, 1.5) == twins).all()
    # a fan of four faces around a hub whose copies lie within 2 levels: all meet at one hub, and no
    # face is lost, where chaining every pair within the tolerance would also pull in the rims
    hub = [(10, 10, 10), (11, 10, 10), (10, 11, 10), (10, 10, 11)]
    rims = [(10, 10, 30), (10, 30, 10), (30, 10, 10), (30, 30, 30), (10, 30, 30)]
    fan = np.array([[*hub[k], *rims[k], *rims[k + 1]] for k in range(4)])
    welded = weld(fan, 2.0)
    assert len({tuple(f[:3]) for f in welded}) == 1 and (welded[:, 3:] == fan[:, 3:]).all()
    assert len(tokens_to_mesh(welded).faces) == 4 and mesh_connectivity(tokens_to_mesh(welded))["loose_faces"] == 0


def test_pipelines_weld_on_request_and_refuse_bad_tolerances(pipes):
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    raw = pipes[0](num_faces=50, category="chair", batch_size=2, generator=g())
    welded = pipes[0](num_faces=50, category="chair", batch_size=2, weld=2.0, generator=g())
    assert [(a == b).all() for a, b in zip(raw.tokens, welded.tokens)] == [True, True]  # tokens: as generated
    before, after = connectivity(raw.meshes), connectivity(welded.meshes)
    assert after["corner_coincidence"] > before["corner_coincidence"]  # an untrained VAE's corners: near misses
    for pipe in pipes:
        with pytest.raises(ValueError, match="weld"):
            pipe(num_faces=10, weld=-1, generator=g())


def test_bench_reports_speedups_and_count_errors(pipes):
    from models.meshcraft.bench import bench

    result = bench({"meshcraft": pipes[0], "ar": pipes[1]}, quick=True, repeats=1, seed=0, sizes=(10, 40))
    assert set(result) >= {"speedup_10", "speedup_40", "meshcraft_face_count_err_pct", "ar_face_count_err_pct",
                           "meshcraft_loose_faces", "ar_corner_coincidence", "meshcraft_watertight"}
    assert [r["faces"] for r in result["rows"]] == [10, 40] and result["rows"][1]["ar_nfe"] == 9 * 40
    assert result["rows"][0]["ar_count_err_pct"] is not None and result["rows"][1]["ar_count_err_pct"] is None


def test_bench_times_meshcraft_at_the_settings_given(pipes):
    from models.meshcraft.bench import bench

    result = bench({"meshcraft": pipes[0], "ar": pipes[1]}, quick=True, repeats=1, seed=0, sizes=(10,),
                   meshcraft_kwargs={"steps": 2, "guidance_scale": 1.0})
    row = result["rows"][0]
    assert row["meshcraft_nfe"] == 2 and row["meshcraft_decoder_calls"] == 1  # one NFE a step; the decode apart
    assert (result["steps"], result["guidance_scale"]) == (2, 1.0)


def test_a_diffusers_scheduler_samples_meshcraft_and_a_wrong_name_is_named():
    pipe = zoo.load("meshcraft-tiny")
    out = pipe(num_faces=20, category="chair", steps=4, solver="unipc", generator=torch.Generator().manual_seed(0))
    assert out.nfe == 4 and out.decoder_calls == 1 and len(out.meshes) == 1  # 4 guided steps, one pass each
    with pytest.raises(ValueError, match="solver='nope'.*unipc"):
        pipe(num_faces=20, solver="nope")


def test_exact_faces_takes_only_true_or_false():
    pipe = zoo.load("meshgpt_ar-tiny")
    with pytest.raises(ValueError, match="exact_faces"):
        pipe(num_faces=4, exact_faces="no")


def test_reference_meshes_come_from_the_split_asked_for(tmp_path):
    from models.meshcraft.evaluate import reference_meshes

    val = reference_meshes(1, cache_dir=str(tmp_path), max_faces=60, split="val", val_size=1)
    test = reference_meshes(1, test_size=1, cache_dir=str(tmp_path), max_faces=60)
    assert set(val) == set(test) and all(len(v) == 1 for v in val.values())
    assert all(not np.array_equal(val[c][0], test[c][0]) for c in val)  # splits never share a shape
    assert (tmp_path / "v1-f60-q128-s0" / "val_1.safetensors").is_file()
    with pytest.raises(ValueError, match="choose test or val"):
        reference_meshes(1, split="train")
    with pytest.raises(ValueError, match="exceeds the val split's 1"):
        reference_meshes(2, cache_dir=str(tmp_path), max_faces=60, split="val", val_size=1)
