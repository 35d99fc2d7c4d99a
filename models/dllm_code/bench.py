"""Decoding speed and quality of a code model, setting by setting, on the same prompts in one run."""

from __future__ import annotations

import statistics
import time

import torch

from models.dllm_code.humaneval import parses

PROMPTS = [
    'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n',
    'def is_palindrome(text):\n    """Return True if text reads the same backwards."""\n',
    'def flatten(items):\n    """Flatten a list of lists into one list."""\n',
    'class Stack:\n    """A last-in, first-out stack."""\n\n    def __init__(self):\n',
    'def count_words(path):\n    """Count the words in the file at path."""\n',
    'def merge_dicts(a, b):\n    """Return a new dict with the keys of a and b."""\n',
    'def read_config(filename):\n    """Parse an INI file into a dict of sections."""\n',
    'def gcd(a, b):\n    """Greatest common divisor of a and b."""\n',
]

# name -> pipeline arguments (gen_length is filled in per row)
SETTINGS = {
    "vanilla": dict(policy="low_confidence", steps_per_token=1.0, block_length=32),
    "threshold": dict(policy="threshold", threshold=0.9, block_length=32),
}


def complete_lines(completion: str) -> str:
    """The completion cut after its last complete line (generation stops mid-line at gen_length)."""
    return completion[: completion.rfind("\n") + 1] if "\n" in completion else completion


def pipeline_args(setting: dict, gen_length: int) -> dict:
    args = {k: v for k, v in setting.items() if k != "steps_per_token"}
    if "steps_per_token" in setting:
        args["steps"] = int(gen_length * setting["steps_per_token"])
    args["block_length"] = min(args.get("block_length", gen_length), gen_length)
    return args


def run_setting(pipe, setting: dict, gen_length: int, batch_size: int, repeats: int, seed: int) -> dict:
    """Quality: every prompt decoded once (alone at batch 1, in batches otherwise) -> parse rate, NFE.
    Speed: the median wall time of ``repeats`` calls on the first batch."""
    args = pipeline_args(setting, gen_length)
    batches = [PROMPTS[i:i + batch_size] for i in range(0, len(PROMPTS), batch_size)]

    def call(prompts):
        return pipe(prompt=prompts, gen_length=gen_length, generator=torch.Generator().manual_seed(seed), **args)

    outs = [(prompts, call(prompts)) for prompts in batches]
    parsed = sum(parses(p, complete_lines(text)) for prompts, out in outs for p, text in zip(prompts, out.texts))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call(batches[0])
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return {"gen_length": gen_length, "batch_size": batch_size,
            "nfe": round(statistics.mean(out.nfe for _, out in outs), 1), "seconds": round(seconds, 4),
            "tokens_per_second": round(gen_length * len(batches[0]) / seconds, 1),
            "parse_rate": round(parsed / len(PROMPTS), 3)}
