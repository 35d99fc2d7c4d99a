"""The meshcraft benchmark (recipes/bench.py model=meshcraft): MeshCraft against the autoregressive
baseline, one mesh at a time (batch 1) at 100, 400 and 800 faces, in one run on one machine.

Seconds per mesh are end to end (the pipeline call: sampling, decoding, cleanup), the median of
``repeats`` calls after one warm-up. The AR baseline is timed with ``exact_faces=True`` (EOS held
back until the requested count), so both make meshes of the same size. Face-count error is the mean
relative error of the faces left after cleanup vs the count asked for: MeshCraft's from ``count_batch``
meshes per size, the AR baseline's from free runs (the count is only a condition, EOS allowed).
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from models.meshcraft.metrics import face_count_accuracy

SIZES = (100, 400, 800)


def seconds_per_mesh(pipe, num_faces: int, repeats: int, seed: int, **kwargs) -> tuple[float, int]:
    """(median seconds of one batch-1 call, its NFE) for a chair of ``num_faces`` faces."""
    # A short warm-up call (allocations, lazy inits); a full one would double an 800-face AR run.
    pipe(num_faces=min(num_faces, 20), category="chair", generator=torch.Generator().manual_seed(seed), **kwargs)
    times, nfe = [], 0
    for r in range(repeats):
        g = torch.Generator().manual_seed(seed + r)
        start = time.perf_counter()
        out = pipe(num_faces=num_faces, category="chair", generator=g, **kwargs)
        times.append(time.perf_counter() - start)
        nfe = out.nfe
    return statistics.median(times), nfe


def count_error(pipe, num_faces: int, batch: int, seed: int, **kwargs) -> dict:
    out = pipe(num_faces=num_faces, category=None, batch_size=batch, generator=torch.Generator().manual_seed(seed),
               **kwargs)
    return face_count_accuracy(out.requested, out.effective_faces)


def bench(pipes: dict, quick: bool, repeats: int, seed: int, sizes: tuple[int, ...] = SIZES) -> dict:
    """pipes: {"meshcraft": MeshCraftPipeline, "ar": MeshGPTPipeline}."""
    repeats = 1 if quick else repeats
    rows, result = [], {}
    for size in sizes:
        mc_s, mc_nfe = seconds_per_mesh(pipes["meshcraft"], size, repeats, seed)
        ar_s, ar_nfe = seconds_per_mesh(pipes["ar"], size, repeats, seed, exact_faces=True)
        mc_err = count_error(pipes["meshcraft"], size, 4 if quick else 16, seed)
        # Free AR runs cost up to 9 x 800 tokens each; the quick grid measures them at 100 faces only.
        ar_err = count_error(pipes["ar"], size, 2 if quick else 8, seed) if not quick or size == sizes[0] else None
        row = {"faces": size, "meshcraft_s": mc_s, "meshcraft_nfe": mc_nfe, "ar_s": ar_s, "ar_nfe": ar_nfe,
               "speedup": ar_s / mc_s, "meshcraft_count_err_pct": mc_err["face_count_rel_err_pct"],
               "meshcraft_count_exact_pct": mc_err["face_count_exact_pct"],
               "ar_count_err_pct": ar_err["face_count_rel_err_pct"] if ar_err else None,
               "ar_count_exact_pct": ar_err["face_count_exact_pct"] if ar_err else None}
        print(" | ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
        rows.append(row)
        result[f"speedup_{size}"] = round(row["speedup"], 2)
    for model in ("meshcraft", "ar"):
        errs = [r[f"{model}_count_err_pct"] for r in rows if r[f"{model}_count_err_pct"] is not None]
        result[f"{model}_face_count_err_pct"] = round(float(np.mean(errs)), 3)
    result["steps"] = pipes["meshcraft"].pipeline_kwargs.get("steps", 50)
    result["guidance_scale"] = pipes["meshcraft"].pipeline_kwargs.get("guidance_scale", 1.0)
    result["rows"] = rows
    return result
