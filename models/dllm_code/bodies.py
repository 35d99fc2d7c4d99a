"""``python recipes/eval.py model=<code model> task=bodies``: does the model write a body for a function?

Held-out standard-library functions (``datamodules.code_functions``: files the LM never trained on),
each prompted with its signature and docstring, completed greedily (by default) and cut at the first
line that leaves the function (``humaneval.truncate_completion``). Per function:
- parses: prompt + completion is valid Python and the completion is not blank;
- indented: the completion's first non-blank line is indented (a body, not a new top-level line);
- first_line_exact: that line equals the reference body's first line (both stripped);
- chrF: character n-gram F-score (sacrebleu's sentence chrF, 0-100) of the completion against the
  reference body, a similarity that gives partial credit where exact match gives none;
- lines: its non-blank lines, beside the reference's (a one-line ``return self`` parses as well as
  a real body: the parse rate alone would reward a model that says little).
Reported as rates and means over the functions, with NFE and seconds per function.
"""

from __future__ import annotations

import numpy as np
import torch

from models.dllm_code.humaneval import fit_prompt, parses, truncate_completion
from zoo.checks import check_int
from zoo.pipeline import check_kwargs

MAX_PROMPT_TOKENS = 256  # the SFT rows' length: longer prompts were never fine-tuned on


def first_line(text: str) -> str | None:
    """The first non-blank line, as written (None when every line is blank)."""
    return next((line for line in text.split("\n") if line.strip()), None)


def non_blank_lines(text: str) -> int:
    return sum(1 for line in text.split("\n") if line.strip())


def body_metrics(prompt: str, completion: str, reference: str) -> dict:
    """The measures of one completion (already cut to the function) against the reference body."""
    from sacrebleu import sentence_chrf

    mine, theirs = first_line(completion), first_line(reference)
    return {"parses": parses(prompt, completion),
            "indented": mine is not None and mine[:1] in (" ", "\t"),
            "first_line_exact": mine is not None and theirs is not None and mine.strip() == theirs.strip(),
            "chrf": sentence_chrf(completion, [reference]).score, "lines": non_blank_lines(completion)}


def bodies(pipe, generator: torch.Generator | None = None, num_functions: int = 200, gen_length: int = 128,
           batch_size: int = 8, val_per_mille: int = 20, max_prompt_tokens: int = MAX_PROMPT_TOKENS,
           **sampling) -> dict:
    """The metrics over the first ``num_functions`` held-out functions (all of them when there are
    fewer; ``val_per_mille`` must be the split the model's LM data used) whose prompt fits in
    ``max_prompt_tokens``. ``sampling`` goes to the pipeline (temperature 0 unless given)."""
    from datamodules.code_functions import function_pairs

    num_functions = check_int("num_functions", num_functions, low=1)
    gen_length = check_int("gen_length", gen_length, low=1, high=pipe.net.max_seq_len - 1)
    check_kwargs(pipe.__call__, sampling)
    held_out = function_pairs(val_per_mille=val_per_mille, splits=("val",))["val"]
    fits = [f for f in held_out if len(pipe.tokenizer.encode(f.prompt).ids) <= max_prompt_tokens]
    chosen = fits[:num_functions]
    rows, nfe, seconds = [], 0, 0.0
    for i in range(0, len(chosen), batch_size):
        batch = chosen[i:i + batch_size]
        prompts = [fit_prompt(pipe, f.prompt, gen_length)[0] for f in batch]
        out = pipe(prompt=prompts, gen_length=gen_length, generator=generator, **{"temperature": 0.0, **sampling})
        nfe, seconds = nfe + out.nfe * len(batch), seconds + out.seconds
        rows += [body_metrics(f.prompt, truncate_completion(text), f.body) for f, text in zip(batch, out.texts)]
    mean = {key: float(np.mean([r[key] for r in rows]))
            for key in ("parses", "indented", "first_line_exact", "chrf", "lines")}
    return {"parse_rate": mean["parses"], "indented_rate": mean["indented"],
            "first_line_exact": mean["first_line_exact"], "chrf": mean["chrf"], "mean_lines": mean["lines"],
            "reference_mean_lines": float(np.mean([non_blank_lines(f.body) for f in chosen])),
            "num_functions": len(rows),
            "held_out_functions": len(held_out), "prompt_too_long": len(held_out) - len(fits),
            "nfe_per_function": nfe / max(len(rows), 1), "seconds_per_function": seconds / max(len(rows), 1),
            "gen_length": gen_length, "batch_size": batch_size}
