"""The meshcraft benchmark (recipes/bench.py model=meshcraft): MeshCraft against the autoregressive
baseline, one mesh at a time (batch 1) at 100, 400 and 800 faces, in one run on one machine.

Seconds per mesh are end to end (the pipeline call: sampling, decoding, cleanup), the median of
``repeats`` calls after one warm-up, with the range (zoo.timing); a speed-up's range pairs the slowest
call of one with the fastest of the other. The AR baseline is timed with ``exact_faces=True`` (EOS held
back until the requested count), so both make meshes of the same size. Face-count error is the mean
relative error of the faces left after cleanup vs the count asked for: MeshCraft's from 16 meshes per
size (categories drawn at random), the AR baseline's from 8 free runs (the count is only a condition,
EOS allowed). ``quick`` takes MeshCraft's from the timed chairs themselves (one a size) and the AR's from
2 free runs at the smallest size only, at 100 and 400 faces: a quick run is for checking the set-up,
not for the figures.
The connectivity of the same meshes (loose faces, corner coincidence, watertight, components; see
metrics.py) is averaged over the sizes as ``meshcraft_<measure>`` and ``ar_<measure>``.
"""

from __future__ import annotations

import numpy as np
import torch

import zoo
from models.meshcraft.metrics import CONNECTIVITY, connectivity, face_count_accuracy
from zoo.timing import speedup, time_calls

SIZES = (100, 400, 800)
QUICK_SIZES = (100, 400)  # an 800-face AR call alone takes a minute: a quick run stays under three


def seconds_per_mesh(pipe, num_faces: int, repeats: int, seed: int, **kwargs) -> tuple[dict, object]:
    """(seconds of one batch-1 call: median, range, how measured; the last call's output) for a chair of
    ``num_faces`` faces, seeds seed, seed + 1, ..."""
    timing, out = time_calls(
        lambda r: pipe(num_faces=num_faces, category="chair", generator=torch.Generator().manual_seed(seed + r), **kwargs),
        repeats=repeats, device=pipe.device,
        # a short warm-up call (allocations, lazy inits); a full one would double an 800-face AR run
        warmup_fn=lambda r: pipe(num_faces=min(num_faces, 20), category="chair",
                                 generator=torch.Generator().manual_seed(seed), **kwargs))
    return timing.fields("seconds"), out


def count_error(pipe, num_faces: int, batch: int, seed: int, **kwargs) -> dict:
    """Face-count accuracy and connectivity of ``batch`` meshes of random categories."""
    out = pipe(num_faces=num_faces, category=None, batch_size=batch, generator=torch.Generator().manual_seed(seed),
               **kwargs)
    return quality(out)


def quality(out) -> dict:
    return {**face_count_accuracy(out.requested, out.effective_faces), **connectivity(out.meshes)}


def bench(pipes: dict, quick: bool, repeats: int, seed: int, sizes: tuple[int, ...] = SIZES,
          meshcraft_kwargs: dict | None = None, ar_kwargs: dict | None = None) -> dict:
    """pipes: {"meshcraft": MeshCraftPipeline, "ar": MeshGPTPipeline}; meshcraft_kwargs / ar_kwargs: settings
    of every call of each (steps, guidance_scale, weld, ...), the checkpoint's defaults where absent."""
    if repeats < 1:
        raise ValueError(f"repeats={repeats} must be at least 1")
    repeats = 1 if quick else repeats
    mc_kwargs, ar_kwargs = dict(meshcraft_kwargs or {}), dict(ar_kwargs or {})
    rows, result = [], {}
    for size in sizes:
        mc_s, mc_out = seconds_per_mesh(pipes["meshcraft"], size, repeats, seed, **mc_kwargs)
        ar_s, ar_out = seconds_per_mesh(pipes["ar"], size, repeats, seed, exact_faces=True, **ar_kwargs)
        mc_err = quality(mc_out) if quick else count_error(pipes["meshcraft"], size, 16, seed, **mc_kwargs)
        # Free AR runs cost up to 9 x 800 tokens each; the quick grid measures them at 100 faces only.
        ar_err = (count_error(pipes["ar"], size, 2 if quick else 8, seed, **ar_kwargs)
                  if not quick or size == sizes[0] else None)
        gain = speedup("speedup", ar_s, mc_s)
        row = {"faces": size, "meshcraft_s": mc_s["seconds"], "meshcraft_s_min": mc_s["seconds_min"],
               "meshcraft_s_max": mc_s["seconds_max"], "meshcraft_nfe": mc_out.nfe,
               "meshcraft_decoder_calls": mc_out.decoder_calls, "ar_tokens_per_face": 9, "ar_s": ar_s["seconds"],
               "ar_s_min": ar_s["seconds_min"], "ar_s_max": ar_s["seconds_max"], "ar_nfe": ar_out.nfe,
               "repeats": mc_s["repeats"], **gain, "meshcraft_count_err_pct": mc_err["face_count_rel_err_pct"],
               "meshcraft_count_exact_pct": mc_err["face_count_exact_pct"],
               "ar_count_err_pct": ar_err["face_count_rel_err_pct"] if ar_err else None,
               "ar_count_exact_pct": ar_err["face_count_exact_pct"] if ar_err else None,
               **{f"meshcraft_{k}": mc_err[k] for k in CONNECTIVITY},
               **{f"ar_{k}": ar_err[k] if ar_err else None for k in CONNECTIVITY}}
        print(" | ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
        rows.append(row)
        result.update(speedup(f"speedup_{size}", ar_s, mc_s))
    for model in ("meshcraft", "ar"):
        errs = [r[f"{model}_count_err_pct"] for r in rows if r[f"{model}_count_err_pct"] is not None]
        result[f"{model}_face_count_err_pct"] = round(float(np.mean(errs)), 3)
        for k in CONNECTIVITY:
            vals = [r[f"{model}_{k}"] for r in rows if r[f"{model}_{k}"] is not None]
            result[f"{model}_{k}"] = round(float(np.mean(vals)), 3) if vals else None
    defaults = pipes["meshcraft"].pipeline_kwargs
    result["steps"] = mc_kwargs.get("steps") or defaults.get("steps", 50)
    result["guidance_scale"] = mc_kwargs.get("guidance_scale", defaults.get("guidance_scale", 1.0))
    result["rows"] = rows
    return result


def run(pretrained: str | None = None, baseline: str | None = None, quick: bool = False, repeats: int = 3,
        seed: int = 0, device: str = "cpu", steps: int | None = None, guidance_scale: float | None = None,
        solver: str | None = None, weld: float | None = None) -> dict:
    """``recipes/bench.py model=meshcraft [+kwargs.steps=..] [+kwargs.guidance_scale=..] [+kwargs.solver=unipc]
    [+kwargs.weld=1]``: meshcraft-tiny (at those sampling settings, its checkpoint's where absent) against
    meshgpt_ar-tiny (``weld`` applies to both)."""
    pipes = {"meshcraft": zoo.load(pretrained or "meshcraft-tiny"), "ar": zoo.load(baseline or "meshgpt_ar-tiny")}
    for pipe in pipes.values():
        pipe.to(device)
    settings = {k: v for k, v in (("steps", steps), ("guidance_scale", guidance_scale), ("solver", solver),
                                  ("weld", weld)) if v is not None}
    # welding is post-processing both models get alike
    return bench(pipes, quick, repeats, seed, sizes=QUICK_SIZES if quick else SIZES, meshcraft_kwargs=settings,
                 ar_kwargs={"weld": weld} if weld is not None else {})
