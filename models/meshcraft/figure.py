"""The README's figure: generated meshes next to reference meshes, per category, at 100 / 400 / 800 faces.

    python -m models.meshcraft.figure [--model meshcraft-tiny] [--seed 0] [--out models/meshcraft/figures/grid.png]

Rows are the four categories; for each size, the test mesh of that category whose face count is
nearest the size (left) and the model's mesh asked for that category and that face count (right),
each shaded from one fixed camera. The panel titles give the face count (f) and the share of faces in
the mesh's largest manifold patch (metrics.py), so a soup is named as one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import zoo
from datamodules.mesh_codec import CATEGORIES
from models.meshcraft.evaluate import reference_meshes
from models.meshcraft.metrics import mesh_connectivity
from models.meshcraft.pipeline import render_grid, tokens_to_mesh

SIZES = (100, 400, 800)


def title(kind: str, mesh) -> str:
    return f"{kind}: {len(mesh.faces)} f, patch {mesh_connectivity(mesh)['largest_patch']:.0f}%"


def figure(model: str, out: Path, seed: int = 0, test_size: int = 100) -> Path:
    pipe = zoo.load(model)
    refs = reference_meshes(test_size, test_size, max_faces=pipe.net.max_faces)
    meshes, titles = [], []
    for c, category in enumerate(CATEGORIES):
        for size in SIZES:
            ref = tokens_to_mesh(min(refs[category], key=lambda t: abs(len(t) - size)))
            gen = pipe(num_faces=len(ref.faces), category=category,
                       generator=torch.Generator().manual_seed(seed + 100 * c + size)).meshes[0]
            meshes += [ref, gen]
            titles += [title(f"{category} ref", ref), title("generated", gen)]
    out.parent.mkdir(parents=True, exist_ok=True)
    return render_grid(meshes, out, titles, ncol=2 * len(SIZES), azimuths=(-60,))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="meshcraft-tiny")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("models/meshcraft/figures/grid.png"))
    args = parser.parse_args(argv)
    print(figure(args.model, args.out, args.seed))


if __name__ == "__main__":
    main()
