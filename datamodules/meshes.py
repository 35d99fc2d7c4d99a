"""Procedural ShapeNet-like furniture meshes for MeshCraft (issue 4), made offline with trimesh.

First part only: the shape generator and the PolyGen/MeshGPT quantised, ordered face representation
with its exact codec. The datamodule, cache and splits come with the rest of the issue.

A mesh is quantised the PolyGen way: normalised into the unit cube, coordinates to 128 levels,
equal vertices merged, degenerate and duplicate faces dropped; vertices sorted by (z, y, x), each
face rotated to start at its lowest vertex index, faces sorted. As tokens, a mesh is its faces'
quantised coordinates in that order, 9 per face: (F, 9) ints in [0, levels).
"""

from __future__ import annotations

import numpy as np
import trimesh

CATEGORIES = ("chair", "table", "bench", "lamp")
LEVELS = 128


def _box(rng, size, center) -> trimesh.Trimesh:
    mesh = trimesh.creation.box(extents=size)
    mesh.apply_translation(center)
    return mesh


def _legs(rng, width, depth, height, thickness, y0=0.0) -> list[trimesh.Trimesh]:
    dx, dz = width / 2 - thickness / 2, depth / 2 - thickness / 2
    return [_box(rng, (thickness, height, thickness), (sx * dx, y0 + height / 2, sz * dz))
            for sx in (-1, 1) for sz in (-1, 1)]


def make_shape(category: str, rng: np.random.Generator) -> trimesh.Trimesh:
    """One random piece of furniture of ``category``, y up, assembled from boxes, cylinders and cones."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; choose one of {CATEGORIES}")
    u = rng.uniform
    parts: list[trimesh.Trimesh] = []
    if category in ("chair", "table", "bench"):
        width = u(0.8, 1.2) if category != "bench" else u(1.6, 2.4)
        depth = u(0.8, 1.2) if category != "bench" else u(0.5, 0.8)
        height = u(0.8, 1.1) if category == "table" else u(0.4, 0.6)
        leg, top = u(0.06, 0.14), u(0.05, 0.12)
        parts += _legs(rng, width, depth, height, leg)
        parts.append(_box(rng, (width, top, depth), (0, height + top / 2, 0)))
        if category == "chair" or (category == "bench" and rng.random() < 0.5):
            back = u(0.4, 0.8)
            parts.append(_box(rng, (width, back, top), (0, height + top + back / 2, -depth / 2 + top / 2)))
        if category == "table" and rng.random() < 0.5:  # a shelf between the legs
            parts.append(_box(rng, (width - 2 * leg, top / 2, depth - 2 * leg), (0, height * u(0.2, 0.4), 0)))
    else:  # lamp: base, pole, shade
        sections = int(rng.integers(8, 25))
        base_r, pole_h = u(0.2, 0.4), u(0.8, 1.4)
        base = trimesh.creation.cylinder(radius=base_r, height=u(0.04, 0.1), sections=sections)
        pole = trimesh.creation.cylinder(radius=u(0.02, 0.05), height=pole_h, sections=sections)
        pole.apply_translation((0, 0, pole_h / 2))
        shade = (trimesh.creation.cone(radius=u(0.25, 0.5), height=u(0.25, 0.5), sections=sections)
                 if rng.random() < 0.5 else
                 trimesh.creation.cylinder(radius=u(0.2, 0.4), height=u(0.2, 0.4), sections=sections))
        shade.apply_translation((0, 0, pole_h))
        lamp = trimesh.util.concatenate([base, pole, shade])
        lamp.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, (1, 0, 0)))  # z up -> y up
        parts.append(lamp)
    return trimesh.util.concatenate(parts)


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
