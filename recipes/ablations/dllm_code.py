"""Ablations of the code models: how masked diffusion decodes (as in "Beyond Autoregression") and how
a diffusion model that writes function bodies is made.

    python recipes/ablations/dllm_code.py [--quick] [--stages decoding,training] [--out outputs/ablations/dllm_code]

- decoding (stage ``decoding``): gen_length x block_length x steps x unmasking policy (x threshold) of
  ``--model`` (the shipped adapted model; the file-level ``dllm_code-tiny`` decodes only blank lines;
  or a public checkpoint folder, LLaDA / Dream / DiffuCoder, with its family's schedule)
  on the same HumanEval prompts (``--prompts``, one batch), quality against NFE:
  parse_rate, the share of completions (cut after their last complete line) that parse with the
  prompt; ar_bits_per_token, bits per completion token under the AR baseline (``--baseline``), a
  generative perplexity (lower: text the AR model finds more likely), empty without that checkpoint.
- training (stage ``training``): function SFT on or off (``--base``, dllm_code-tiny, as it is, and fine-tuned);
  the start of the SFT, from scratch (dllm_code-tiny's weights) or adapted (ar_code-tiny's, shifted);
  the length of the attention annealing of the adapted run (0, a quarter, half of the steps); the AR
  twin's SFT beside them. Every run trains with recipes/train.py for the same ``--sft-steps`` (100
  quick, 400 as shipped; warm-up a tenth), one thread each, ``--parallel`` at a time; each model is
  scored by the bodies task (``models/dllm_code/bodies.py``) on ``--functions`` held-out functions of
  each source (the standard library's held-out files, the bundled pip wheel; pooled, and per source),
  greedy, the diffusion models in blocks of 32. A finished export is reused.
Writes ablation.csv and ablation.png in --out (with the rows of earlier calls' other stages, kept in
rows.jsonl); the last stdout line is a JSON summary.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import zoo
from models.dllm_code.bench import complete_lines
from models.dllm_code.bodies import bodies
from models.dllm_code.humaneval import load_problems, parses

sys.path.insert(0, str(Path(__file__).resolve().parent))  # recipes/ablations, also when imported by path
from common import ROOT, finish, merged_rows, parse_staged, staged_parser, train  # noqa: E402


@torch.no_grad()
def ar_bits_per_token(ar_pipe, prompts: list[str], completions: list[str]) -> float:
    """Mean bits per completion token under the AR model, completions scored after their prompt."""
    total, count = 0.0, 0
    for prompt, completion in zip(prompts, completions):
        p_ids = ar_pipe.tokenizer.encode(prompt).ids
        c_ids = ar_pipe.tokenizer.encode(completion).ids
        if not c_ids:
            continue
        ids = torch.tensor([p_ids + c_ids])[:, -ar_pipe.net.max_seq_len:]
        logits = ar_pipe.net(ids).float()[0, -len(c_ids) - 1:-1]
        total += F.cross_entropy(logits, ids[0, -len(c_ids):], reduction="sum").item()
        count += len(c_ids)
    return total / max(count, 1) / math.log(2) if count else float("nan")


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


def plot(rows: list[dict], path: Path) -> None:
    """Decoding rows: parse rate and AR bits per token against NFE; training rows: parse and indented
    rate of each model, grouped by factor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    decoding = [r for r in rows if r["factor"] == "decoding"]
    training = [r for r in rows if r["factor"] != "decoding"]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
    for policy in sorted({r["policy"] for r in decoding}):
        mine = [r for r in decoding if r["policy"] == policy]
        axes[0].scatter([r["nfe"] for r in mine], [r["parse_rate"] for r in mine], label=policy, alpha=0.75)
        scored = [r for r in mine if r["ar_bits_per_token"] != ""]  # empty without the AR checkpoint
        axes[1].scatter([r["nfe"] for r in scored], [r["ar_bits_per_token"] for r in scored], label=policy, alpha=0.75)
    axes[0].set(xlabel="NFE per completion", ylabel="parse rate", xscale="log", title="decoding: completions that parse")
    axes[1].set(xlabel="NFE per completion", ylabel="bits / token under ar_code-tiny", xscale="log",
                title="decoding: generative perplexity (lower is better)")
    if decoding:
        axes[0].legend(fontsize=8)
    labels = [f"{r['factor']}={r['setting']}" for r in training]
    where = range(len(training))
    axes[2].barh([i + 0.2 for i in where], [r["parse_rate"] for r in training], height=0.4, label="parse rate")
    axes[2].barh([i - 0.2 for i in where], [r["indented_rate"] for r in training], height=0.4, label="indented")
    axes[2].set_yticks(list(where), labels, fontsize=8)
    axes[2].set(xlabel="share of held-out functions", xlim=(0, 1), title="training: function bodies")
    if training:
        axes[2].legend(fontsize=8)
    fig.suptitle("code models: decoding and training factors (recipes/ablations/dllm_code.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


STAGES = ("decoding", "training")


def decoding_rows(args) -> list[dict]:
    pipe = zoo.load(args.model)
    try:
        ar_pipe = zoo.load(args.baseline)
    except ValueError:
        ar_pipe = None
        print(f"note: no {args.baseline} checkpoint; ar_bits_per_token is left empty")
    prompts = [p["prompt"] for p in load_problems()[:args.prompts or (8 if args.quick else 32)]]
    rows = []
    for setting in grid(args.quick):
        start = time.perf_counter()
        out = pipe(prompt=prompts, generator=torch.Generator().manual_seed(args.seed), **setting)
        seconds = time.perf_counter() - start
        completions = [complete_lines(t) for t in out.texts]
        row = {"factor": "decoding", "setting": setting["policy"], "model": args.model, "policy": setting["policy"],
               "gen_length": setting["gen_length"], "block_length": setting["block_length"],
               "steps": setting.get("steps", ""), "threshold": setting.get("threshold", ""), "nfe": out.nfe,
               "parse_rate": round(sum(parses(p, c) for p, c in zip(prompts, completions)) / len(prompts), 3),
               "ar_bits_per_token": round(ar_bits_per_token(ar_pipe, prompts, out.texts), 3) if ar_pipe else "",
               "seconds": round(seconds, 3)}
        rows.append(row)
        print(" | ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    return rows


def training_runs(steps: int) -> dict[str, list[str]]:
    """name -> recipes/train.py arguments: every model the training stage compares."""
    return {"scratch": ["model=dllm_code_sft"],
            "adapted_anneal0": ["model=dllm_code_adapted_sft", "anneal_attention_steps=0"],
            f"adapted_anneal{steps // 4}": ["model=dllm_code_adapted_sft", f"anneal_attention_steps={steps // 4}"],
            f"adapted_anneal{steps // 2}": ["model=dllm_code_adapted_sft", f"anneal_attention_steps={steps // 2}"],
            "ar_sft": ["model=ar_code_sft"]}


def training_rows(args, out: Path) -> list[dict]:
    steps = args.sft_steps or (100 if args.quick else 400)
    functions = args.functions or (16 if args.quick else 100)
    runs = training_runs(steps)
    paths = dict(zip(runs, train([(a, out / f"{name}_{steps}steps") for name, a in runs.items()],
                                 steps, args.max_minutes, args.parallel)))
    paths["base"] = args.base  # SFT off: the file-level LM as it is
    scores = {}

    def score(name: str) -> dict:
        if name not in scores:
            pipe = zoo.load(paths[name])
            decoding = {} if name == "ar_sft" else {"block_length": 32}
            scores[name] = bodies(pipe, generator=torch.Generator().manual_seed(args.seed),
                                  num_functions=functions, **decoding)
            print(name, json.dumps(scores[name]), flush=True)
        return scores[name]

    quarter, half = f"adapted_anneal{steps // 4}", f"adapted_anneal{steps // 2}"
    settings = [("sft", "off", "base"), ("sft", "on", "scratch"), ("init", "scratch", "scratch"),
                ("init", "adapted", quarter), ("anneal_steps", 0, "adapted_anneal0"),
                ("anneal_steps", steps // 4, quarter), ("anneal_steps", steps // 2, half),
                ("reference", "ar_sft", "ar_sft")]
    keep = ("parse_rate", "indented_rate", "first_line_exact", "chrf", "mean_lines", "reference_mean_lines",
            "num_functions", "nfe_per_function", "seconds_per_function")

    def shown(model) -> str:  # an export under the repo (ROOT / --out) by relative path: the CSV reads the same anywhere
        return str(model.relative_to(ROOT)) if isinstance(model, Path) and model.is_relative_to(ROOT) else str(model)

    return [{"factor": factor, "setting": setting, "model": shown(paths[name]), "sft_steps": 0 if name == "base" else steps,
             **{k: score(name)[k] for k in keep},
             **{f"parse_rate_{source}": by["parse_rate"] for source, by in score(name)["by_source"].items()}}
            for factor, setting, name in settings]  # parse_rate_stdlib, parse_rate_pip


def main() -> None:
    parser = staged_parser(__doc__, "dllm_code", STAGES,
                           "a reduced decoding grid on 8 prompts; 100 SFT steps, 16 functions a source")
    parser.add_argument("--model", default="dllm_code_adapted-tiny",
                        help="the diffusion model the decoding stage decodes: a name or a checkpoint folder "
                             "(a public LLaDA / Dream / DiffuCoder folder too)")
    parser.add_argument("--base", default="dllm_code-tiny", help="the file-level diffusion LM: the SFT-off row")
    parser.add_argument("--baseline", default="ar_code-tiny", help="AR checkpoint that scores the samples (a name or a folder, e.g. Qwen2.5-Coder)")
    parser.add_argument("--prompts", type=int, default=None,
                        help="HumanEval prompts, decoded as one batch (8 quick, 32)")
    parser.add_argument("--sft-steps", type=int, default=None, help="steps of each SFT run (100 quick, 400)")
    parser.add_argument("--functions", type=int, default=None,
                        help="held-out functions scored per source (16 quick, 100)")
    parser.add_argument("--seed", type=int, default=0)
    args, stages, out = parse_staged(parser, STAGES)
    rows = []
    for stage in stages:  # each stage's rows are saved when it ends, so a later crash loses none of them
        new = decoding_rows(args) if stage == "decoding" else training_rows(args, out)
        factors = ["decoding"] if stage == "decoding" else ["sft", "init", "anneal_steps", "reference"]
        rows = merged_rows(out / "rows.jsonl", new, factors)
    finish(rows, out, plot, args.quick, stages)


if __name__ == "__main__":
    main()
