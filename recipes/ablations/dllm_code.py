"""Factor analysis of masked-diffusion decoding for code, as in "Beyond Autoregression":
gen_length x block_length x steps x unmasking policy (x threshold), quality against NFE.

    python recipes/ablations/dllm_code.py [--quick] [--out outputs/ablations/dllm_code]

Quality of each setting, on the same HumanEval prompts:
- parse_rate: share of completions (cut after their last complete line) that parse with the prompt;
- ar_bits_per_token: bits per completion token under the AR baseline (ar_code-tiny), a generative
  perplexity: lower means text the AR model finds more likely. Left empty without that checkpoint.
Writes ablation.csv and ablation.png in --out; the last stdout line is a JSON summary.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import zoo
from models.dllm_code.bench import complete_lines
from models.dllm_code.humaneval import load_problems, parses


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for policy in sorted({r["policy"] for r in rows}):
        mine = [r for r in rows if r["policy"] == policy]
        axes[0].scatter([r["nfe"] for r in mine], [r["parse_rate"] for r in mine], label=policy, alpha=0.75)
        scored = [r for r in mine if r["ar_bits_per_token"] != ""]  # empty without the AR checkpoint
        axes[1].scatter([r["nfe"] for r in scored], [r["ar_bits_per_token"] for r in scored], label=policy, alpha=0.75)
    axes[0].set(xlabel="NFE per completion", ylabel="parse rate", xscale="log", title="completions that parse")
    axes[1].set(xlabel="NFE per completion", ylabel="bits / token under ar_code-tiny", xscale="log",
                title="generative perplexity (lower is better)")
    axes[0].legend(fontsize=8)
    fig.suptitle("dllm_code-tiny decoding factors (recipes/ablations/dllm_code.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="dllm_code-tiny")
    parser.add_argument("--baseline", default="ar_code-tiny", help="AR checkpoint that scores the samples")
    parser.add_argument("--prompts", type=int, default=8, help="HumanEval prompts, decoded as one batch")
    parser.add_argument("--quick", action="store_true", help="a reduced grid")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="outputs/ablations/dllm_code")
    args = parser.parse_args()

    pipe = zoo.load(args.model)
    try:
        ar_pipe = zoo.load(args.baseline)
    except ValueError:
        ar_pipe = None
        print(f"note: no {args.baseline} checkpoint; ar_bits_per_token is left empty")
    prompts = [p["prompt"] for p in load_problems()[:args.prompts]]
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for setting in grid(args.quick):
        start = time.perf_counter()
        out = pipe(prompt=prompts, generator=torch.Generator().manual_seed(args.seed), **setting)
        seconds = time.perf_counter() - start
        completions = [complete_lines(t) for t in out.texts]
        row = {"policy": setting["policy"], "gen_length": setting["gen_length"],
               "block_length": setting["block_length"], "steps": setting.get("steps", ""),
               "threshold": setting.get("threshold", ""), "nfe": out.nfe,
               "parse_rate": round(sum(parses(p, c) for p, c in zip(prompts, completions)) / len(prompts), 3),
               "ar_bits_per_token": round(ar_bits_per_token(ar_pipe, prompts, out.texts), 3) if ar_pipe else "",
               "seconds": round(seconds, 3)}
        rows.append(row)
        print(" | ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    with open(out_dir / "ablation.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, out_dir / "ablation.png")
    best = max(rows, key=lambda r: (r["parse_rate"], -r["nfe"]))
    print(json.dumps({"rows": len(rows), "csv": str(out_dir / "ablation.csv"), "png": str(out_dir / "ablation.png"),
                      "best_parse_rate": best}))


if __name__ == "__main__":
    main()
