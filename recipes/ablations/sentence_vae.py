"""Ablations of SentenceVAE on the stdlib prose: pooling, focal loss against cross-entropy, a KL term,
the maximum sentence length, and the sentence LM's depth.

    python recipes/ablations/sentence_vae.py [--quick] [--stages autoencoder,lm] [--out outputs/ablations/sentence_vae]

- autoencoder (stage ``autoencoder``): one autoencoder per setting, each trained by recipes/train.py
  model=sentence_ae for the same ``--train-steps``: pooling sum (the reference) / mean / learned, focal
  (gamma 2) against cross-entropy, a real VAE (variational, KL weight ``--kl-weight``), the maximum
  sentence length 16 / 32 / 64 ids, and a decoder of 1 layer instead of 2 (the base: 2). Scored by greedy
  reconstruction of test sentences (exact match, token accuracy; a shorter limit cuts more sentences
  into pieces, so its test set has more, shorter ones), and the decoder's speed: milliseconds per
  decoder call, test sentences decoded one at a time (batch 1, greedy).
- LM depth (stage ``lm``): sentence LMs of 1, 4 (the shipped depth) and 6 layers over sentence vectors,
  each started from the shipped autoencoder (``--autoencoder``) and trained by model=sentence_vae for
  ``--train-steps``; scored by test perplexity (models/sentence_vae/evaluate.py), tokens per second at
  batch 1 and KV bytes per context token (against the shipped token LM, ``--token-lm``).
Trainings run one thread each, ``--parallel`` at a time; a finished export is reused. Writes
ablation.csv and ablation.png in --out (rows of stages run in earlier calls are kept in rows.jsonl); the
last stdout line is a JSON summary.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

import zoo
from datamodules.stdlib_prose import trimmed
from models.sentence_vae.bench import generation_speed
from models.sentence_vae.evaluate import kv_bytes, reconstruction, sentence_lm_nll, held_out_corpus, held_out_prompt
from models.sentence_vae.pipeline import decode_sentences

sys.path.insert(0, str(Path(__file__).resolve().parent))  # recipes/ablations, also when imported by path
from common import finish, merged_rows, parse_staged, staged_parser, train  # noqa: E402

STAGES = ("autoencoder", "lm")


def autoencoder_settings(kl_weight: float) -> list[tuple[str, str, list[str]]]:
    """(factor, setting, train.py overrides) of each autoencoder. The base is sum pooling, focal, 32 ids
    and 2 decoder layers (the first shipped autoencoder's; the shipped one now has 1, the row that
    varies it), so every setting but that row pins 2 layers."""
    settings = [("pooling", "sum", []),
                ("pooling", "mean", ["++model.net.pooling=mean"]),
                ("pooling", "learned", ["++model.net.pooling=learned"]),
                ("loss", "cross-entropy", ["model.objective.focal_gamma=0.0"]),
                ("kl", f"VAE, KL {kl_weight:g}", ["++model.net.variational=true",
                                                  f"model.objective.kl_weight={kl_weight}"]),
                ("max_sentence_len", "16", ["data.max_sentence_len=16"]),
                ("max_sentence_len", "64", ["data.max_sentence_len=64"])]
    return ([(factor, setting, ["++model.net.decoder_depth=2", *overrides]) for factor, setting, overrides in settings]
            + [("decoder_depth", "1", ["++model.net.decoder_depth=1"])])


@torch.no_grad()
def decoder_ms_per_step(ae, dm, sentences: int = 64) -> float:
    """Milliseconds per decoder call of greedy decoding, one test sentence at a time (after one warm-up):
    the cost of a generated id, whatever lengths a model writes."""
    ds = dm.dataset("test", "sentences")
    batches = [trimmed([ds[i]]) for i in range(sentences + 1)]
    memory = [ae.encode(b["tokens"], b["length"]) for b in batches]
    decode_sentences(ae, memory[0])
    start, calls = time.perf_counter(), 0
    for z in memory[1:]:
        calls += decode_sentences(ae, z)[2]
    return 1000 * (time.perf_counter() - start) / calls


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    ae = [r for r in rows if r["stage"] == "autoencoder"]
    if ae:
        labels = [f"{r['factor']}: {r['setting']}" for r in ae]
        axes[0].barh(labels, [r["exact_match"] for r in ae], label="exact match")
        axes[0].barh(labels, [r["token_accuracy"] for r in ae], alpha=0.35, label="token accuracy")
        axes[0].set_xlim(0, 1)
        axes[0].set_title("autoencoder: greedy reconstruction (test)")
        axes[0].legend(fontsize=7)
    lm = sorted((r for r in rows if r["stage"] == "lm"), key=lambda r: r["setting"])
    if lm:
        axes[1].plot([r["setting"] for r in lm], [r["ppl"] for r in lm], marker="o")
        axes[1].set_xlabel("sentence LM layers")
        axes[1].set_ylabel("test perplexity (ids of sentences 2..n)")
        axes[1].set_title("sentence LM depth")
    else:
        axes[1].axis("off")
        axes[1].text(0.5, 0.5, "sentence LM depth: stage lm not run", ha="center", va="center")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = staged_parser(__doc__, "sentence_vae", STAGES, "fewer steps and test sentences")
    parser.add_argument("--train-steps", type=int, default=None, help="steps of each training (200 quick, 1000)")
    parser.add_argument("--kl-weight", type=float, default=1e-3)
    parser.add_argument("--autoencoder", default="checkpoints/sentence_ae-prose", help="the LMs' starting point")
    parser.add_argument("--token-lm", default="token_lm-prose", help="the KV-memory and speed reference")
    args, stages, out = parse_staged(parser, STAGES)
    steps = args.train_steps or (200 if args.quick else 1000)
    test_sentences = 300 if args.quick else None
    rows = []
    for stage in stages:
        new = []
        if stage == "autoencoder":
            settings = autoencoder_settings(args.kl_weight)
            jobs = [(["model=sentence_ae", *overrides], out / f"ae_{factor}_{setting.split(',')[0]}_{steps}steps")
                    for factor, setting, overrides in settings]
            for (factor, setting, _), path in zip(settings, train(jobs, steps, args.max_minutes, args.parallel)):
                pipe = zoo.load(path)
                meta = json.loads((path / "meta.json").read_text())
                dm = held_out_corpus(pipe, pipe.net.max_sentence_len, 32)
                new.append({"stage": stage, "factor": factor, "setting": setting, "steps_trained": meta["steps"],
                            "train_seconds": meta.get("train_seconds"),
                            **reconstruction(pipe.net.eval(), dm, max_sentences=test_sentences),
                            "decoder_ms_per_step": decoder_ms_per_step(pipe.net, dm)})
                print(json.dumps(new[-1]), flush=True)
        else:
            token_net = zoo.load(args.token_lm).net.eval()
            depths = (1, 4) if args.quick else (1, 4, 6)
            jobs = [(["model=sentence_vae", f"init_from={args.autoencoder}", f"++model.net.lm_depth={d}"],
                     out / f"lm_depth{d}_{steps}steps") for d in depths]
            for depth, path in zip(depths, train(jobs, steps, args.max_minutes, args.parallel)):
                pipe = zoo.load(path)
                net = pipe.net.eval()
                meta = json.loads((path / "meta.json").read_text())
                dm = held_out_corpus(pipe, net.autoencoder.max_sentence_len, net.max_sentences)
                speed = generation_speed(pipe, token_net, held_out_prompt(pipe, dm), 1, 4, 1, 0)
                new.append({"stage": stage, "factor": "lm_depth", "setting": depth, "steps_trained": meta["steps"],
                            "train_seconds": meta.get("train_seconds"),
                            "ppl": sentence_lm_nll(net, dm, max_chunks=40 if args.quick else None)["ppl"],
                            "tokens_per_second_b1": speed["tokens_per_second"],
                            "kv_bytes_per_token": kv_bytes(net, token_net, dm)["bytes_per_token"],
                            "parameters": sum(p.numel() for p in net.parameters())})
                print(json.dumps(new[-1]), flush=True)
        rows = merged_rows(out / "rows.jsonl", new, [r["factor"] for r in new] or [stage])
    finish(rows, out, plot, args.quick, stages)


if __name__ == "__main__":
    main()
