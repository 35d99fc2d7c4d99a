"""Decoding speed and quality of the code models, setting by setting, on the same prompts in one
run: the AR baseline with its KV cache against masked-diffusion decoding settings.

Prompts: HumanEval's (``prompts="humaneval"``), or held-out function prompts, signature and docstring
(``prompts="functions"``, the bodies task's: ``models/dllm_code/bodies.py``), what an SFT'd pair is for.
Batch 1: every prompt decoded alone; seconds = the median over prompts (at least 3 calls).
Batch B: the first B prompts in one left-padded batch; seconds = the median of ``repeats`` calls.
Quality: the share of completions that parse with their prompt, non-blank: a HumanEval completion cut
after its last complete line, a function's cut where the function ends (``truncate_completion``).
tokens_per_nfe: answer tokens per network evaluation (gen_length / NFE), what a decoding policy
commits a step on average (1 for plain one-token-a-step decoding; EOS runs filled at once count).
"""

from __future__ import annotations

import statistics
import time

import torch

import zoo
from models.dllm_code.bodies import held_out, prompts_that_fit
from models.dllm_code.humaneval import fit_prompt, load_problems, parses, truncate_completion
from zoo.checks import check_choice, check_int

# name -> (which model, pipeline arguments); gen_length is set per row. "vanilla" is LLaDA's reference
# decoding: one token a step to the end of the answer, no cache; the early stop of eos_fill (on in every
# other row) is counted as one of the speed-ups, and "vanilla_eos_fill" shows what it alone gives.
SETTINGS = {
    "ar_kv_cache": ("ar", {}),
    "vanilla": ("diffusion", dict(policy="low_confidence", steps="gen_length", block_length=32, eos_fill=False)),
    "vanilla_eos_fill": ("diffusion", dict(policy="low_confidence", steps="gen_length", block_length=32)),
    "threshold": ("diffusion", dict(policy="threshold", threshold=0.9, block_length=32)),
    "threshold_prefix_cache": ("diffusion", dict(policy="threshold", threshold=0.9, block_length=32, cache="prefix")),
    "threshold_dual_cache": ("diffusion", dict(policy="threshold", threshold=0.9, block_length=32, cache="dual")),
}


def complete_lines(completion: str) -> str:
    """The completion cut after its last complete line (generation stops mid-line at gen_length)."""
    return completion[: completion.rfind("\n") + 1] if "\n" in completion else completion


PROMPT_SETS = ("humaneval", "functions")


def load_prompts(which: str, count: int, tokenizer) -> list[str]:
    """The first ``count`` prompts of HumanEval, or of the held-out stdlib functions the bodies task
    scores first (their prompt at most ``bodies.MAX_PROMPT_TOKENS`` tokens)."""
    if which == "humaneval":
        return [p["prompt"] for p in load_problems()[:count]]
    return [f.prompt for f in prompts_that_fit(held_out("stdlib", val_per_mille=20)["stdlib"], tokenizer)][:count]


def run_row(pipe, args: dict, prompts: list[str], gen_length: int, batch_size: int, repeats: int,
            seed: int, heal: bool = False, cut=complete_lines) -> dict:
    args = {k: (gen_length if v == "gen_length" else v) for k, v in args.items()} | {"heal": heal}
    prompts = [fit_prompt(pipe, p, gen_length)[0] for p in prompts]

    def call(batch):
        start = time.perf_counter()
        out = pipe(prompt=batch, gen_length=gen_length, generator=torch.Generator().manual_seed(seed), **args)
        return out, time.perf_counter() - start

    if batch_size == 1:
        runs = [call([p]) for p in prompts]
        times = [s for _, s in runs]
        texts = [out.texts[0] for out, _ in runs]
        nfe = statistics.mean(out.nfe for out, _ in runs)
    else:
        runs = [call(prompts[:batch_size]) for _ in range(repeats)]
        times = [s for _, s in runs]
        texts, nfe = runs[0][0].texts, runs[0][0].nfe
    seconds = statistics.median(times)
    batch = len(prompts[:batch_size])
    parsed = sum(parses(p, cut(t)) for p, t in zip(prompts, texts))
    return {"gen_length": gen_length, "batch_size": batch, "nfe": round(nfe, 1),
            "tokens_per_nfe": round(gen_length / max(nfe, 1), 2), "seconds": round(seconds, 4),
            "tokens_per_second": round(gen_length * batch / seconds, 1), "parse_rate": round(parsed / len(texts), 3)}


def bench(pipes: dict, quick: bool, repeats: int, seed: int, log=print, heal: bool = False,
          prompts: str = "humaneval", num_prompts: int = 8) -> dict:
    """pipes: {"diffusion": CodePipeline, "ar": ARCodePipeline or None}. Returns rows and speedups.
    ``heal``: token healing at the prompts' end, for both models. ``num_prompts`` (at least 8, the
    batch): the batch-1 rows decode each alone, the batch-8 rows the first 8."""
    check_choice("prompts", prompts, PROMPT_SETS)
    num_prompts = check_int("num_prompts", num_prompts, low=8)
    n_prompts, grid = (3, [(64, 1)]) if quick else (max(num_prompts, repeats), [(128, 1), (256, 1), (128, 8), (256, 8)])
    cut = truncate_completion if prompts == "functions" else complete_lines
    prompt_set, prompts = prompts, load_prompts(prompts, n_prompts, pipes["diffusion"].tokenizer)
    rows = []
    for gen_length, batch_size in grid:
        for name, (kind, args) in SETTINGS.items():
            if pipes.get(kind) is None:
                continue
            row = {"setting": name, **run_row(pipes[kind], args, prompts, gen_length, batch_size, repeats, seed, heal,
                                              cut)}
            rows.append(row)
            log(" | ".join(f"{k}={v}" for k, v in row.items()))
    head_len = max(g for g, _ in grid)
    head = {r["setting"]: r for r in rows if r["gen_length"] == head_len and r["batch_size"] == 1}
    vanilla = head["vanilla"]
    diffusion = [r for name, r in head.items() if SETTINGS[name][0] == "diffusion"]
    # The best setting: the fastest whose parse rate stays within 5 points of vanilla decoding.
    keeps_quality = [r for r in diffusion if r["parse_rate"] >= vanilla["parse_rate"] - 0.05]
    best = min(keeps_quality or diffusion, key=lambda r: r["seconds"])
    result = {"rows": rows, "headline": {"gen_length": head_len, "batch_size": 1, "best_setting": best["setting"],
                                          "best_keeps_parse_rate": bool(keeps_quality)},
              "speedup_vs_vanilla": round(vanilla["seconds"] / best["seconds"], 2),
              "speedup_vs_vanilla_eos_fill": round(head["vanilla_eos_fill"]["seconds"] / best["seconds"], 2),
              "tokens_per_nfe": best["tokens_per_nfe"], "parse_rate": best["parse_rate"],
              "vanilla_parse_rate": vanilla["parse_rate"], "heal": heal, "prompts": prompt_set,
              "num_prompts": len(prompts)}
    if "ar_kv_cache" in head:
        result["speedup_vs_ar"] = round(head["ar_kv_cache"]["seconds"] / best["seconds"], 2)
        result["ar_parse_rate"] = head["ar_kv_cache"]["parse_rate"]
    batched = {r["setting"]: r for r in rows if r["gen_length"] == head_len and r["batch_size"] > 1}
    if "ar_kv_cache" in batched and best["setting"] in batched:  # the same setting at the batch size
        result["speedup_vs_ar_batched"] = round(batched["ar_kv_cache"]["seconds"] / batched[best["setting"]]["seconds"], 2)
    return result


def run(pretrained: str | None = None, baseline: str | None = None, quick: bool = False, repeats: int = 3,
        seed: int = 0, device: str = "cpu", heal: bool = False, prompts: str = "humaneval",
        num_prompts: int = 8) -> dict:
    """``recipes/bench.py model=dllm_code [+kwargs.heal=true]``: dllm_code-tiny against ar_code-tiny (rows
    left out if absent); ``pretrained=`` / ``baseline=`` time other checkpoints (the SFT'd pair), on
    ``prompts="functions"`` for what they were tuned for."""
    pipes = {"diffusion": zoo.load(pretrained or "dllm_code-tiny").to(device)}
    if baseline is None and "ar_code-tiny" not in zoo.list_pretrained():
        print("note: no ar_code-tiny checkpoint; the AR rows are left out")
        pipes["ar"] = None
    else:  # a baseline named on the command line (a name or a checkpoint folder) must load
        pipes["ar"] = zoo.load(baseline or "ar_code-tiny").to(device)
    return bench(pipes, quick, repeats, seed, heal=heal, prompts=prompts, num_prompts=num_prompts)
