"""The mesh codec every mesh domain shares, light enough for a pipeline to import (numpy, torch only).

A mesh is quantised the PolyGen way: normalised into the unit cube, coordinates to ``LEVELS`` levels,
equal vertices merged, degenerate and duplicate faces dropped; vertices sorted by (z, y, x), each
face rotated to start at its lowest vertex index, faces sorted. As tokens, a mesh is its faces'
quantised coordinates in that order, 9 per face: (F, 9) ints in [0, levels).
"""

from __future__ import annotations

import numpy as np
import torch

CATEGORIES = ("chair", "table", "bench", "lamp")
LEVELS = 128


def quantize(vertices: np.ndarray, levels: int = LEVELS) -> np.ndarray:
    """Vertices (V, 3) -> ints in [0, levels): centred, scaled so the longest side spans the cube."""
    lo, hi = vertices.min(0), vertices.max(0)
    scale = (hi - lo).max()
    unit = (vertices - (lo + hi) / 2) / scale + 0.5  # in [0, 1]
    return np.clip(np.round(unit * (levels - 1)), 0, levels - 1).astype(np.int64)


def canonical(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quantised vertices (V, 3) and faces (F, 3) -> the ordered form: equal vertices merged and
    sorted by (z, y, x); faces without three distinct vertices or repeated dropped; each face
    rotated to start at its lowest index; faces sorted. Unused vertices are dropped."""
    order = np.lexsort((vertices[:, 0], vertices[:, 1], vertices[:, 2]))  # last key (z) is primary
    uniq, first, inverse = np.unique(vertices[order][:, ::-1], axis=0, return_index=True, return_inverse=True)
    remap = np.empty(len(vertices), dtype=np.int64)
    remap[order] = inverse.reshape(-1)
    faces = remap[faces]
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    start = faces.argmin(1)
    faces = np.stack([np.roll(f, -s) for f, s in zip(faces, start)]) if len(faces) else faces.reshape(0, 3)
    faces = np.unique(faces, axis=0)  # sorts, drops exact duplicates
    used = np.unique(faces)
    keep = np.full(len(uniq), -1)
    keep[used] = np.arange(len(used))
    return uniq[used][:, ::-1].copy(), keep[faces]


def to_tokens(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Canonical mesh -> (F, 9) coordinates, face by face, each vertex as (z, y, x)."""
    return vertices[faces][:, :, ::-1].reshape(len(faces), 9)


def from_tokens(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(F, 9) coordinates -> the canonical mesh they describe (vertices merged by equal coordinates)."""
    corners = tokens.reshape(-1, 3, 3)[:, :, ::-1].reshape(-1, 3)  # back to (x, y, z)
    faces = np.arange(len(corners)).reshape(-1, 3)
    return canonical(corners, faces)


def unpadded(x1: torch.Tensor, mask: torch.Tensor) -> list[np.ndarray]:
    """Padded tokens (N, F, 9) and mask -> one (F_i, 9) int array per mesh."""
    return [x[m].long().numpy() for x, m in zip(x1, mask)]


def weld(tokens: np.ndarray, tolerance: float, levels: int = LEVELS) -> np.ndarray:
    """Snap corners that lie within ``tolerance`` quantisation levels (Euclidean) of each other onto one
    corner: the post-processing MeshGPT-style generators apply before building a mesh, so corners a
    model placed a level or two apart become one shared vertex. (F, 9) -> (F, 9); tolerance 0 changes
    nothing.

    Vertex clustering that keeps faces: the closest pairs of corner positions are joined first, and a
    join is refused when the group would hold two corners of one face (the face would collapse) or when
    it would make two faces the same triangle (one would be dropped as a duplicate). Each group takes
    the position its corners use most (ties: the first in (z, y, x) order), so a well-placed corner
    pulls its stray copies to itself rather than all moving to an average that no face used. Without
    the two refusals, joining every pair within the tolerance chains neighbouring corners into blobs
    that swallow whole faces (models/meshcraft/README.md, "Vertex welding": 128 of 396 faces kept at 3 levels)."""
    tokens = np.asarray(tokens, dtype=np.int64).reshape(-1, 9)
    if tolerance < 0:
        raise ValueError(f"weld tolerance {tolerance} must be >= 0 (quantisation levels)")
    if tolerance == 0 or len(tokens) == 0:
        return tokens.copy()
    corners = tokens.reshape(-1, 3)  # (3F, 3) as (z, y, x)
    keys = (corners[:, 0] * levels + corners[:, 1]) * levels + corners[:, 2]
    uniq, inverse, uses = np.unique(keys, return_inverse=True, return_counts=True)  # a node per position
    points = np.stack([uniq // (levels * levels), uniq // levels % levels, uniq % levels], 1)
    face_nodes = inverse.reshape(-1, 3).tolist()  # (F, 3) the node of each corner
    pairs, dists = candidate_pairs(points, tolerance)
    parent = list(range(len(uniq)))  # plain lists: the loop below is Python, element by element
    faces_of = [set() for _ in uniq]  # node (a group's root) -> the faces with a corner in the group
    for f, nodes in enumerate(face_nodes):
        for n in nodes:
            faces_of[n].add(f)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def others(f: int, group: int) -> frozenset:  # the groups of face f's corners outside ``group``
        return frozenset(r for r in (root(n) for n in face_nodes[f]) if r != group)

    for i, j in pairs[np.lexsort((pairs[:, 1], pairs[:, 0], dists))].tolist():  # closest first
        a, b = root(i), root(j)
        if a == b or faces_of[a] & faces_of[b]:
            continue
        if len(faces_of[a]) < len(faces_of[b]):
            a, b = b, a
        taken = {others(f, a) for f in faces_of[a]}
        if any(others(f, b) in taken for f in faces_of[b]):
            continue
        parent[b] = a
        faces_of[a] |= faces_of[b]
    groups = np.array([root(i) for i in range(len(uniq))])
    # per group, the member used by most corners: sort by (group, -uses, key) and take each group's first
    order = np.lexsort((uniq, -uses, groups))
    first = order[np.r_[True, groups[order][1:] != groups[order][:-1]]]
    representative = np.empty(len(uniq), dtype=np.int64)
    representative[groups[first]] = first
    return points[representative[groups]][inverse].reshape(-1, 9)


def candidate_pairs(points: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Distinct points (N, 3) -> the index pairs (P, 2), i < j, of points within ``tolerance`` of each
    other, and their distances (P,). All pairwise distances at once (at most 3 x 800 positions here: a
    few tens of MB), far faster than a scan per offset at 6 levels and more."""
    p = torch.from_numpy(points).double()
    # integer coordinates: squared distances are exact integers (no matmul shortcut, whose rounding
    # could break ties between equal distances differently from one mesh to the next)
    sq = torch.cdist(p, p, compute_mode="donot_use_mm_for_euclid_dist").square().round()
    i, j = torch.nonzero(torch.triu(sq <= tolerance ** 2, diagonal=1), as_tuple=True)
    return torch.stack([i, j], 1).numpy(), sq[i, j].sqrt().numpy()
