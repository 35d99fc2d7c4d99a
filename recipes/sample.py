"""Sample from a pretrained model with its pipeline, print what it made, and save it with out_dir.

    python recipes/sample.py model=dllm_code-tiny prompt_file=recipes/prompts/fibonacci.py steps=64
    python recipes/sample.py model=distilled_decoding-mnist steps=1 +kwargs.class_labels=[0,1,2,3] out_dir=outputs/samples
    python recipes/sample.py model=meshcraft-tiny batch_size=4 +kwargs.num_faces=200 +kwargs.category=chair out_dir=outputs/meshes

Every pipeline's output record says how it is shown (``describe()``: lines of text) and written
(``save(out_dir)``: code files, a PNG grid, mesh files). With out_dir, ``sample.json`` beside them
records the model, the command, NFE, seconds, the description and the files, which is what
``recipes/gallery.py`` shows. The last line of stdout is one JSON object: the model, NFE and seconds.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

import zoo
from zoo.recipe_help import exit_with_help_if_asked
from zoo.pipeline import check_kwargs, dtype_named
from zoo.pretrained import check_writable
from zoo.provenance import command_line


RECORD = "sample.json"  # what recipes/gallery.py reads


@hydra.main(config_path="configs/run", config_name="sample", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        if cfg.out_dir:
            check_writable(cfg.out_dir, what="out_dir")  # before sampling, not after
        pipe = zoo.load(cfg.model, device=cfg.device, dtype=dtype_named(cfg.dtype))
    except ValueError as e:  # unknown name (the message lists what exists), a bad folder or dtype
        sys.exit(f"error: {e}")
    kwargs = OmegaConf.to_container(cfg.kwargs, resolve=True)
    prompt = Path(cfg.prompt_file).read_text() if cfg.prompt_file else cfg.prompt
    for name, value in (("prompt", prompt), ("batch_size", cfg.batch_size), ("steps", cfg.steps)):
        if value is not None:
            kwargs[name] = value
    generator = torch.Generator(device=cfg.device).manual_seed(cfg.seed)
    start, started = time.perf_counter(), time.time() - 1
    try:
        check_kwargs(pipe.__call__, kwargs, given=("generator",))
        out = pipe(generator=generator, **kwargs)
    except ValueError as e:  # impossible sampling arguments: the message says which
        sys.exit(f"error: {e}")
    seconds = time.perf_counter() - start
    for line in out.describe():
        print(line)
    # a decoder run outside the generating loop is counted apart from the NFE (CONTRIBUTING.md)
    decoders = {"decoder_calls": out.decoder_calls} if getattr(out, "decoder_calls", 0) else {}
    if cfg.out_dir:
        out_dir = Path(cfg.out_dir)
        saved = out.save(out_dir)
        files = sorted(str(f.relative_to(out_dir)) for f in out_dir.rglob("*")  # this run's, not a stale one's
                       if f.is_file() and f.name != RECORD and f.stat().st_mtime >= started)
        record = {"model": cfg.model, "command": command_line(), "nfe": out.nfe, **decoders,
                  "seconds": round(seconds, 3), "description": out.describe(), "files": files}
        (out_dir / RECORD).write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {saved}")
    print(json.dumps({"model": cfg.model, "nfe": out.nfe, **decoders, "seconds": round(seconds, 3)}))


if __name__ == "__main__":
    exit_with_help_if_asked(__doc__, Path(__file__).parent / "configs/run/sample.yaml", ())
    main()
