"""Mesh metrics: COV / MMD / 1-NNA on Chamfer distance, face-count accuracy, validity and connectivity.

Chamfer distance here is the mean squared nearest-neighbour distance both ways between point clouds
sampled uniformly on the two surfaces (2,048 points each by default; PointFlow / MeshGPT convention),
for meshes in the [-0.5, 0.5] cube. A mesh with no faces gets no points and an infinite distance.
- COV: share of reference meshes that are the nearest reference of some generated mesh.
- MMD: mean over references of the distance to the closest generated mesh (reported x 1e3).
- 1-NNA: leave-one-out 1-nearest-neighbour accuracy of telling generated from reference (50% is ideal).
"""

from __future__ import annotations

import numpy as np
import torch
import trimesh


def surface_points(mesh: trimesh.Trimesh, num_points: int = 2048, seed: int = 0) -> torch.Tensor | None:
    """(num_points, 3) area-uniform samples on the surface; None for a mesh without area."""
    if len(mesh.faces) == 0 or mesh.area <= 0:
        return None
    points, _ = trimesh.sample.sample_surface(mesh, num_points, seed=seed)
    return torch.as_tensor(points, dtype=torch.float32)


def chamfer_matrix(a: list, b: list | None = None) -> torch.Tensor:
    """(len(a), len(b)) float64 Chamfer distances between point clouds (None = empty: infinite); b None
    is a against itself (each pair computed once, the diagonal 0 but for empty clouds).

    Exact nearest neighbours from a k-d tree per cloud: a pair costs O(P log Q) rather than the
    O(P Q) of a dense distance matrix, which made the metric most of an eval's time (``recipes/eval.py
    model=meshcraft-tiny``: 435 s -> 134 s in all, the metrics the same to 7 digits)."""
    from scipy.spatial import cKDTree  # the mesh extra's; here so recipes/bench.py imports without it

    def trees(clouds: list) -> list:  # one k-d tree per cloud (None stays None); .data holds its points
        return [None if c is None else cKDTree(c.double().numpy()) for c in clouds]

    def one_way(p, q) -> float:  # mean squared distance from p's points to their nearest in q
        return float((q.query(p.data)[0] ** 2).mean())

    same = b is None
    ta = trees(a)
    tb = ta if same else trees(b)
    out = torch.full((len(ta), len(tb)), float("inf"), dtype=torch.float64)
    for i, p in enumerate(ta):
        for j, q in enumerate(tb):
            if p is None or q is None or (same and j < i):
                continue
            out[i, j] = 0.0 if same and i == j else one_way(p, q) + one_way(q, p)
            if same:
                out[j, i] = out[i, j]
    return out


def coverage_metrics(generated: list, reference: list) -> dict:
    """COV (%), MMD (x 1e3) and 1-NNA (%) from point clouds (lists of (P, 3) tensors or None)."""
    gr = chamfer_matrix(generated, reference)
    gg = chamfer_matrix(generated)
    rr = chamfer_matrix(reference)
    cov = len(set(gr.argmin(1).tolist())) / len(reference)
    mmd = gr.min(0).values
    n, m = len(generated), len(reference)
    full = torch.cat([torch.cat([gg, gr], 1), torch.cat([gr.T, rr], 1)], 0)  # (n + m, n + m)
    full.fill_diagonal_(float("inf"))
    label = torch.cat([torch.zeros(n), torch.ones(m)])
    correct = (label[full.argmin(1)] == label).float().mean()
    return {"cov": 100 * cov, "mmd_x1e3": 1e3 * mmd[mmd.isfinite()].mean().item() if mmd.isfinite().any() else None,
            "nna_1": 100 * correct.item()}


def validity(tokens: list, meshes: list) -> dict:
    """From the generated (F, 9) tokens and the cleaned meshes: % degenerate faces (two equal corners),
    % duplicate faces (the same three corners again, any order), % non-manifold edges (shared by more
    than two faces, after cleanup). Watertightness is in ``connectivity``."""
    faces = degenerate = duplicate = 0
    edges = bad_edges = 0
    for t in tokens:
        corners = np.asarray(t).reshape(-1, 3, 3)
        faces += len(corners)
        same = (corners[:, 0] == corners[:, 1]).all(1) | (corners[:, 1] == corners[:, 2]).all(1) | \
            (corners[:, 0] == corners[:, 2]).all(1)
        degenerate += int(same.sum())
        keys = {tuple(sorted(map(tuple, c))) for c in corners[~same]}
        duplicate += int((~same).sum()) - len(keys)
    for mesh in meshes:
        if len(mesh.faces) == 0:
            continue
        e = np.sort(mesh.edges, axis=1)
        _, counts = np.unique(e, axis=0, return_counts=True)
        edges += len(counts)
        bad_edges += int((counts > 2).sum())
    return {"degenerate_faces_pct": 100 * degenerate / max(faces, 1),
            "duplicate_faces_pct": 100 * duplicate / max(faces, 1),
            "nonmanifold_edges_pct": 100 * bad_edges / max(edges, 1),
            "empty_meshes": sum(len(m.faces) == 0 for m in meshes)}


def corner_gap(tokens: np.ndarray) -> float | None:
    """The median, over a mesh's face corners (its (F, 9) tokens as generated, before welding), of the
    distance in quantisation levels to the nearest corner of another face: 0 when corners are shared,
    and the weld tolerance that would join half of them otherwise. None for fewer than two faces."""
    from scipy.spatial import cKDTree

    corners = np.asarray(tokens, dtype=np.float64).reshape(-1, 3)  # (3F, 3), face i's at 3i..3i+2
    if len(corners) < 6:
        return None
    owner = np.arange(len(corners)) // 3
    # a corner's 4 nearest corners include at least one of another face (its own face has 3)
    dist, idx = cKDTree(corners).query(corners, k=4)
    other = owner[idx] != owner[:, None]
    return float(np.median(np.where(other, dist, np.inf).min(1)))


def mesh_connectivity(mesh: trimesh.Trimesh) -> dict:
    """One cleaned mesh (equal vertices merged) -> whether its faces form surfaces or a soup:
    - loose_faces: % of faces in an edge-connected component of at most 2 faces;
    - boundary_edges: % of its distinct edges used by one face only;
    - corner_coincidence: % of face corners whose vertex is also a corner of another face;
    - components: the number of edge-connected components of faces;
    - watertight: 100 if every edge is shared by exactly two consistently wound faces, else 0.
    A mesh without faces scores as soup (100% loose, 0 coincidence, 0 components)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    faces = np.asarray(mesh.faces, dtype=np.int64)
    f = len(faces)
    if f == 0:
        return {"loose_faces": 100.0, "boundary_edges": 100.0, "corner_coincidence": 0.0, "components": 0,
                "watertight": 0.0}
    edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)  # (3F, 2), face i's at 3i..3i+2
    _, edge_id, uses = np.unique(edges, axis=0, return_inverse=True, return_counts=True)
    edge_id = edge_id.reshape(-1)
    # faces sharing an edge are joined: link each face to the next face in its edge's group
    order = np.argsort(edge_id, kind="stable")
    same = edge_id[order][1:] == edge_id[order][:-1]
    a, b = order[:-1][same] // 3, order[1:][same] // 3
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(f, f))
    count, label = connected_components(graph, directed=False)
    sizes = np.bincount(label)
    degree = np.bincount(faces.reshape(-1), minlength=int(faces.max()) + 1)  # faces per vertex
    return {"loose_faces": 100 * float((sizes[label] <= 2).mean()),
            "boundary_edges": 100 * float((uses == 1).mean()),
            "corner_coincidence": 100 * float((degree[faces.reshape(-1)] >= 2).mean()),
            "components": int(count),
            "watertight": 100.0 * bool(mesh.is_watertight)}


CONNECTIVITY = ("loose_faces", "boundary_edges", "corner_coincidence", "components", "watertight")


def connectivity(meshes: list, tokens: list | None = None) -> dict:
    """``mesh_connectivity`` averaged over meshes (each mesh weighs the same): the usability columns
    of issue 18's table; ``watertight`` is then the % of watertight meshes. With the meshes' tokens as
    generated, also ``corner_gap`` (the mean over meshes of ``corner_gap``)."""
    rows = [mesh_connectivity(m) for m in meshes]
    out = {key: float(np.mean([r[key] for r in rows])) if rows else None for key in CONNECTIVITY}
    if tokens is not None:
        gaps = [g for g in map(corner_gap, tokens) if g is not None]
        out["corner_gap"] = float(np.mean(gaps)) if gaps else None
    return out


def face_count_accuracy(requested: list[int], effective: list[int]) -> dict:
    """Exact share (%) and mean relative error (%) of effective (after cleanup) vs requested faces."""
    req, eff = np.asarray(requested, float), np.asarray(effective, float)
    return {"face_count_exact_pct": 100 * float((req == eff).mean()),
            "face_count_rel_err_pct": 100 * float((np.abs(eff - req) / req).mean())}
