"""Decoding speed and quality of the code models, setting by setting, on the same prompts in one
run: the AR baseline with its KV cache against masked-diffusion decoding settings.

Prompts: HumanEval's (``prompts="humaneval"``), or held-out function prompts, signature and docstring
(``prompts="functions"``, the bodies task's: ``models/dllm_code/bodies.py``), what an SFT'd pair is for.
Batch 1: every prompt decoded alone; seconds = the median over prompts (at least 3 calls) with the range.
Batch B: the first B prompts in one left-padded batch; seconds = the median of ``repeats`` calls.
Every row is timed by zoo.timing (a warm-up call first; a GPU synchronised around each call).
The headline setting is chosen on validation prompts (the next ones of the same set), then reported on
the others, against vanilla decoding with the EOS stop (the fairest baseline; LLaDA's plain vanilla,
Fast-dLLM's baseline, is the second column).
Quality: the share of completions that parse with their prompt, non-blank: a HumanEval completion cut
after its last complete line, a function's cut where the function ends (``truncate_completion``).
tokens_per_nfe: answer tokens (up to the first EOS) per network evaluation; tokens_per_second counts
the same tokens, so an EOS run filled at once is no speed.
"""

from __future__ import annotations

import statistics

import torch

import zoo
from models.dllm_code.bodies import held_out, prompts_that_fit
from models.dllm_code.humaneval import fit_prompt, load_problems, parses, truncate_completion
from zoo.checks import check_choice, check_int
from zoo.timing import paired_speedup, speedup, time_calls

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


def answer_lengths(tokens: torch.Tensor, stop_ids) -> list[int]:
    """Tokens of each generated row (B, G) before its first stop id: the answer, without the EOS run
    that EOS fill (or a reference sampler running to the end) writes after it."""
    stops = torch.tensor(sorted(stop_ids), dtype=tokens.dtype)
    ended = torch.isin(tokens, stops)
    first = torch.where(ended.any(1), ended.int().argmax(1), torch.full((tokens.shape[0],), tokens.shape[1]))
    return first.tolist()


def stop_ids(pipe) -> tuple[int, ...]:
    special = getattr(pipe, "special", None)  # a public model's stops (EOS, end of turn)
    return tuple(special.stop_ids) if special is not None else (pipe.eos_id,)


def run_row(pipe, args: dict, prompts: list[str], gen_length: int, batch_size: int, repeats: int,
            seed: int, heal: bool = False, cut=complete_lines) -> dict:
    """One setting: batch 1 decodes each prompt alone once (after one warm-up call), batch B the first B
    prompts together ``repeats`` times; seconds per call, median and range (zoo.timing). Answer tokens
    are counted up to the first EOS (tokens/s, tokens per NFE); NFE per call is the mean."""
    args = {k: (gen_length if v == "gen_length" else v) for k, v in args.items()} | {"heal": heal}
    prompts = [fit_prompt(pipe, p, gen_length)[0] for p in prompts]
    batches = [[p] for p in prompts] if batch_size == 1 else [prompts[:batch_size]] * repeats
    outs = {}

    def call(i):
        outs[i] = pipe(prompt=batches[i], gen_length=gen_length, generator=torch.Generator().manual_seed(seed), **args)

    timing, _ = time_calls(call, repeats=len(batches), warmup=1, device=pipe.device)
    timed = [outs[i] for i in range(len(batches))]
    answer = [sum(answer_lengths(out.tokens, stop_ids(pipe))) for out in timed]  # per call
    rates = sorted(a / s for a, s in zip(answer, timing.runs))
    texts = [t for out in timed for t in out.texts] if batch_size == 1 else timed[0].texts  # a batch: its repeats agree
    parsed = sum(parses(p, cut(t)) for p, t in zip(prompts, texts))
    nfe = statistics.mean(out.nfe for out in timed)
    return {"gen_length": gen_length, "batch_size": len(batches[0]), "nfe": round(nfe, 1),
            "answer_tokens": round(statistics.mean(answer) / len(batches[0]), 1),
            "tokens_per_nfe": round(sum(answer) / max(sum(out.nfe for out in timed), 1) / len(batches[0]), 2),
            **timing.fields("seconds"), "seconds_runs": [round(s, 4) for s in timing.runs],
            "tokens_per_second": round(statistics.median(rates), 1),
            "tokens_per_second_min": round(rates[0], 1), "tokens_per_second_max": round(rates[-1], 1),
            "parse_rate": round(parsed / len(texts), 3)}


def choose_setting(pipes: dict, prompts: list[str], gen_length: int, seed: int, heal: bool, cut, log) -> dict:
    """The fastest diffusion setting whose parse rate stays within 5 points of vanilla decoding with the
    EOS stop, chosen on ``prompts`` (validation prompts, disjoint from the reported ones)."""
    rows = {name: run_row(pipes["diffusion"], args, prompts, gen_length, 1, 1, seed, heal, cut)
            for name, (kind, args) in SETTINGS.items() if kind == "diffusion"}
    for name, row in rows.items():
        log(f"selection | setting={name} | " + " | ".join(f"{k}={v}" for k, v in row.items()))
    floor = rows["vanilla_eos_fill"]["parse_rate"] - 0.05
    keeps = {name: r for name, r in rows.items() if r["parse_rate"] >= floor}
    best = min(keeps or rows, key=lambda name: rows[name]["seconds"])
    return {"setting": best, "keeps_parse_rate": bool(keeps), "prompts": len(prompts),
            "seconds": rows[best]["seconds"], "parse_rate": rows[best]["parse_rate"]}


def bench(pipes: dict, quick: bool, repeats: int, seed: int, log=print, heal: bool = False,
          prompts: str = "humaneval", num_prompts: int = 8) -> dict:
    """pipes: {"diffusion": CodePipeline, "ar": ARCodePipeline or None}. Returns rows and speed-ups.
    ``heal``: token healing at the prompts' end, for both models. ``num_prompts`` (at least 8, the
    batch): the batch-1 rows decode each alone, the batch-8 rows the first 8. The headline setting is
    chosen on as many further prompts (validation: never the reported ones), then reported once."""
    check_choice("prompts", prompts, PROMPT_SETS)
    num_prompts = check_int("num_prompts", num_prompts, low=8)
    n_prompts, grid = (3, [(64, 1)]) if quick else (max(num_prompts, repeats), [(128, 1), (256, 1), (128, 8), (256, 8)])
    cut = truncate_completion if prompts == "functions" else complete_lines
    prompt_set = prompts
    both = load_prompts(prompts, 2 * n_prompts, pipes["diffusion"].tokenizer)
    prompts, validation = both[:n_prompts], both[n_prompts:]
    if len(validation) < n_prompts:
        raise ValueError(f"prompts={prompt_set!r} has {len(both)} prompts; the bench needs {2 * n_prompts} "
                         f"(reported and validation)")
    head_len = max(g for g, _ in grid)
    chosen = choose_setting(pipes, validation, head_len, seed, heal, cut, log)
    rows = []
    for gen_length, batch_size in grid:
        for name, (kind, args) in SETTINGS.items():
            if pipes.get(kind) is None:
                continue
            row = {"setting": name, **run_row(pipes[kind], args, prompts, gen_length, batch_size, repeats, seed, heal,
                                              cut)}
            rows.append(row)
            log(" | ".join(f"{k}={v}" for k, v in row.items()))
    head = {r["setting"]: r for r in rows if r["gen_length"] == head_len and r["batch_size"] == 1}
    best = head[chosen["setting"]]
    result = {"rows": rows, "headline": {"gen_length": head_len, "batch_size": 1, "best_setting": chosen["setting"],
                                          "chosen_on": chosen, "baseline": "vanilla_eos_fill"},
              # the fairest baseline: LLaDA's decoding with the same early stop at EOS as every fast row
              # batch 1: each prompt decoded alone by both, so the ratio is taken prompt by prompt
              **paired_speedup("speedup_vs_vanilla_eos_fill", head["vanilla_eos_fill"]["seconds_runs"], best["seconds_runs"]),
              # Fast-dLLM's baseline: LLaDA's decoding to the end of the answer, no early stop
              **paired_speedup("speedup_vs_vanilla", head["vanilla"]["seconds_runs"], best["seconds_runs"]),
              "tokens_per_nfe": best["tokens_per_nfe"], "parse_rate": best["parse_rate"],
              "vanilla_parse_rate": head["vanilla_eos_fill"]["parse_rate"], "heal": heal, "prompts": prompt_set,
              "num_prompts": len(prompts)}
    if "ar_kv_cache" in head:
        result.update(paired_speedup("speedup_vs_ar", head["ar_kv_cache"]["seconds_runs"], best["seconds_runs"]))
        result["ar_parse_rate"] = head["ar_kv_cache"]["parse_rate"]
    batched = {r["setting"]: r for r in rows if r["gen_length"] == head_len and r["batch_size"] > 1}
    if "ar_kv_cache" in batched and chosen["setting"] in batched:  # the same setting at the batch size
        result.update(speedup("speedup_vs_ar_batched", batched["ar_kv_cache"], batched[chosen["setting"]]))
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
