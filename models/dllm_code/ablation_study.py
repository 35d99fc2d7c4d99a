"""The code models' ablation (``python recipes/ablate.py model=dllm_code``): how masked diffusion decodes
(as in "Beyond Autoregression") and how a diffusion model that writes function bodies is made.

- decoding: gen_length x block_length x steps x unmasking policy (x threshold) of option ``model`` (the
  shipped adapted model; the file-level ``dllm_code-tiny`` decodes only blank lines; or a public
  checkpoint folder, LLaDA / Dream / DiffuCoder, with its family's schedule) on the same HumanEval
  prompts (``prompts``, one batch), quality against NFE: parse_rate, the share of completions (cut
  after their last complete line) that parse with the prompt; ar_bits_per_token, bits per completion
  token under the AR model ``baseline``, a generative perplexity (empty without that checkpoint).
- training: function SFT on or off (``base``, dllm_code-tiny, as it is, and fine-tuned); the start of
  the SFT, from scratch (dllm_code-tiny's weights) or adapted (ar_code-tiny's, shifted); the length of
  the attention annealing of the adapted run (0, a quarter, half of the steps); the AR twin's SFT beside
  them. Every run trains with recipes/train.py for the same ``sft_steps`` (100 quick, 400 as shipped);
  each model is scored by the bodies task (models/dllm_code/bodies.py) on ``functions`` held-out
  functions of each source (the standard library's held-out files, the bundled pip wheel; pooled, and
  per source), greedy, the diffusion models in blocks of 32.
"""

from __future__ import annotations

import itertools
import time

import torch

import zoo
from models.dllm_code.bench import complete_lines
from models.dllm_code.bodies import bodies
from models.dllm_code.humaneval import load_problems, parses
from zoo.ablation import Ablation, AblationRun, Stage, Training
from zoo.objectives.autoregressive import bits_per_token


@torch.no_grad()
def ar_bits_per_token(ar_pipe, prompts: list[str], completions: list[str]) -> float:
    """Bits per completion token under the AR model, each completion scored after its prompt (the zoo's
    one likelihood loop); NaN where no completion has a token."""
    def scored():
        for prompt, completion in zip(prompts, completions):
            p_ids, c_ids = ar_pipe.tokenizer.encode(prompt).ids, ar_pipe.tokenizer.encode(completion).ids
            if c_ids:
                ids = torch.tensor([p_ids + c_ids])[:, -ar_pipe.net.max_seq_len:]
                yield ar_pipe.net(ids)[:, -len(c_ids) - 1:-1], ids[:, -len(c_ids):], None

    result = bits_per_token(scored())
    return result["nll_bits_per_token"] if result["eval_tokens"] else float("nan")


def grid(quick: bool):
    gen_lengths = [64] if quick else [64, 128]
    for gen_length in gen_lengths:
        blocks = sorted({8, 32, gen_length})
        for block_length, policy in itertools.product(blocks, ["random", "low_confidence", "margin", "entropy"]):
            for frac in ([0.5, 1.0] if quick else [0.25, 0.5, 1.0]):
                steps = int(gen_length * frac)
                if steps >= gen_length // block_length:
                    yield dict(gen_length=gen_length, block_length=block_length, policy=policy, steps=steps)
        for block_length, tau in itertools.product(blocks, [0.7, 0.9]):
            yield dict(gen_length=gen_length, block_length=block_length, policy="threshold", threshold=tau)


def decoding(run: AblationRun) -> list[dict]:
    model, baseline = run.options.model, run.options.baseline
    pipe = zoo.load(model)
    try:
        ar_pipe = zoo.load(baseline)
    except ValueError:
        ar_pipe = None
        print(f"note: no {baseline} checkpoint; ar_bits_per_token is left empty")
    prompts = [p["prompt"] for p in load_problems()[:run.pick("prompts", 8, 32)]]
    rows = []
    for setting in grid(run.quick):
        start = time.perf_counter()
        out = pipe(prompt=prompts, generator=torch.Generator().manual_seed(run.options.seed), **setting)
        seconds = time.perf_counter() - start
        completions = [complete_lines(t) for t in out.texts]
        rows.append(run.log({
            "factor": "decoding", "setting": setting["policy"], "model": model, "policy": setting["policy"],
            "gen_length": setting["gen_length"], "block_length": setting["block_length"],
            "steps": setting.get("steps", ""), "threshold": setting.get("threshold", ""), "nfe": out.nfe,
            "parse_rate": round(sum(parses(p, c) for p, c in zip(prompts, completions)) / len(prompts), 3),
            "ar_bits_per_token": round(ar_bits_per_token(ar_pipe, prompts, out.texts), 3) if ar_pipe else "",
            "seconds": round(seconds, 3)}))
    return rows


def trainings(steps: int, base: str) -> list[Training]:
    """Every row of the training stage; one model may stand under several factors (trained once)."""
    scratch = ("model=dllm_code_sft",)
    adapted = {n: ("model=dllm_code_adapted_sft", f"anneal_attention_steps={n}") for n in (0, steps // 4, steps // 2)}
    rows = [("sft", "off", base, None), ("sft", "on", "scratch", scratch), ("init", "scratch", "scratch", scratch),
            ("init", "adapted", f"adapted_anneal{steps // 4}", adapted[steps // 4]),
            *[("anneal_steps", n, f"adapted_anneal{n}", overrides) for n, overrides in adapted.items()],
            ("reference", "ar_sft", "ar_sft", ("model=ar_code_sft",))]
    return [Training(factor, setting, name, overrides, {} if name == "ar_sft" else {"block_length": 32})
            for factor, setting, name, overrides in rows]


def training(run: AblationRun) -> list[dict]:
    steps, functions = run.pick("sft_steps", 100, 400), run.pick("functions", 16, 100)
    keep = ("parse_rate", "indented_rate", "first_line_exact", "chrf", "mean_lines", "reference_mean_lines",
            "num_functions", "nfe_per_function", "seconds_per_function")

    def score(pipe, **decoding) -> dict:
        scores = bodies(pipe, generator=torch.Generator().manual_seed(run.options.seed),
                        num_functions=functions, **decoding)
        return {**{k: scores[k] for k in keep},  # then parse_rate_stdlib, parse_rate_pip
                **{f"parse_rate_{source}": by["parse_rate"] for source, by in scores["by_source"].items()}}

    return run.compare(trainings(steps, run.options.base), steps, score)


ABLATION = Ablation(
    title="code models: decoding and training factors",
    stages={"decoding": Stage(("decoding",), decoding),
            "training": Stage(("sft", "init", "anneal_steps", "reference"), training)},
    metrics=("parse_rate", "indented_rate", "ar_bits_per_token"),
    options={"model": "dllm_code_adapted-tiny", "base": "dllm_code-tiny", "baseline": "ar_code-tiny",
             "prompts": None, "sft_steps": None, "functions": None, "seed": 0},
)
