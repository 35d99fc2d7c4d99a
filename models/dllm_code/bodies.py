"""``python recipes/eval.py model=<code model> task=bodies``: does the model write a body for a function?

Held-out functions from two sources no model here trained on (``source``): the standard library's
held-out files (``datamodules.code_functions``; 110 functions at the shipped split, too few alone for
a rate to within a few points) and the pip wheel the interpreter bundles for ensurepip (pip's own
modules, copies of training code dropped; 546 functions). Each is prompted with its signature and
docstring, completed greedily (by default) and cut at the first line that leaves the function
(``humaneval.truncate_completion``). Per function:
- parses: prompt + completion is valid Python and the completion is not blank;
- indented: the completion's first non-blank line is indented (a body, not a new top-level line);
- first_line_exact: that line equals the reference body's first line (both stripped);
- chrF: character n-gram F-score (sacrebleu's sentence chrF, 0-100) of the completion against the
  reference body, a similarity that gives partial credit where exact match gives none;
- lines: its non-blank lines, beside the reference's (a one-line ``return self`` parses as well as
  a real body: the parse rate alone would reward a model that says little).
Reported as rates and means over the functions, pooled and per source, with NFE and seconds per function.
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


SOURCES = ("stdlib", "pip", "both")


def held_out(source: str, val_per_mille: int) -> dict[str, list]:
    """{source name: FunctionPairs} of the held-out functions ``source`` names: ``stdlib``, those of the
    standard library's held-out files; ``pip``, those of the pip wheel the interpreter bundles (never
    trained on; its copies of training code dropped: ``code_functions.pip_functions``); ``both``."""
    from datamodules.code_functions import function_pairs, pip_functions

    if source not in SOURCES:
        raise ValueError(f"source={source!r}: choose one of {SOURCES}")
    out = {}
    if source in ("stdlib", "both"):
        out["stdlib"] = function_pairs(val_per_mille=val_per_mille, splits=("val",))["val"]
    if source in ("pip", "both"):
        out["pip"] = list(pip_functions(val_per_mille))
    return out


def prompts_that_fit(functions: list, tokenizer, max_prompt_tokens: int = MAX_PROMPT_TOKENS) -> list:
    """The FunctionPairs whose prompt is at most ``max_prompt_tokens`` tokens (also the bench's prompts)."""
    return [f for f in functions if len(tokenizer.encode(f.prompt).ids) <= max_prompt_tokens]


def summary(rows: list[dict], references: list[str]) -> dict:
    """Rates and means of per-function ``body_metrics`` rows (references: the reference bodies)."""
    mean = {key: float(np.mean([r[key] for r in rows]))
            for key in ("parses", "indented", "first_line_exact", "chrf", "lines")}
    return {"parse_rate": mean["parses"], "indented_rate": mean["indented"],
            "first_line_exact": mean["first_line_exact"], "chrf": mean["chrf"], "mean_lines": mean["lines"],
            "reference_mean_lines": float(np.mean([non_blank_lines(b) for b in references])),
            "num_functions": len(rows)}


def bodies(pipe, generator: torch.Generator | None = None, num_functions: int = 200, gen_length: int = 128,
           batch_size: int = 8, val_per_mille: int = 20, max_prompt_tokens: int = MAX_PROMPT_TOKENS,
           source: str = "both", **sampling) -> dict:
    """The metrics over the first ``num_functions`` held-out functions of each source (all of them when
    there are fewer; ``val_per_mille`` must be the split the model's LM data used) whose prompt fits in
    ``max_prompt_tokens``: pooled over the sources, and per source under ``by_source``. ``sampling``
    goes to the pipeline (temperature 0 unless given)."""
    num_functions = check_int("num_functions", num_functions, low=1)
    gen_length = check_int("gen_length", gen_length, low=1, high=pipe.net.max_seq_len - 1)
    check_kwargs(pipe.__call__, sampling)
    sources = held_out(source, val_per_mille)
    chosen, counts = [], {}
    for name, functions in sources.items():
        fits = prompts_that_fit(functions, pipe.tokenizer, max_prompt_tokens)
        chosen += [(name, f) for f in fits[:num_functions]]
        counts[name] = {"held_out_functions": len(functions), "prompt_too_long": len(functions) - len(fits)}
    rows, nfe, seconds = [], 0, 0.0
    for i in range(0, len(chosen), batch_size):
        batch = [f for _, f in chosen[i:i + batch_size]]
        prompts = [fit_prompt(pipe, f.prompt, gen_length)[0] for f in batch]
        out = pipe(prompt=prompts, gen_length=gen_length, generator=generator, **{"temperature": 0.0, **sampling})
        nfe, seconds = nfe + out.nfe * len(batch), seconds + out.seconds
        rows += [body_metrics(f.prompt, truncate_completion(text), f.body) for f, text in zip(batch, out.texts)]
    by_source = {name: summary([r for r, (n, _) in zip(rows, chosen) if n == name],
                               [f.body for n, f in chosen if n == name]) | counts[name] for name in sources}
    return summary(rows, [f.body for _, f in chosen]) | {
        "source": source, "by_source": by_source,
        "nfe_per_function": nfe / len(rows), "seconds_per_function": seconds / len(rows),
        "gen_length": gen_length, "batch_size": batch_size}
