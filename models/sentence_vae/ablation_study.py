"""SentenceVAE's ablation (``python recipes/ablate.py model=sentence_vae``): pooling, focal loss against
cross-entropy, a KL term, the maximum sentence length, the decoder's depth, and the sentence LM's depth.

- autoencoder: one autoencoder per setting, each trained by recipes/train.py model=sentence_ae for the
  same ``train_steps``: pooling sum (the reference) / mean / learned, focal (gamma 2) against
  cross-entropy, a real VAE (variational, KL weight ``kl_weight``), the maximum sentence length 16 / 32 /
  64 ids, and a decoder of 1 layer instead of 2. Scored by greedy reconstruction of test sentences (exact
  match, token accuracy; a shorter limit cuts more sentences into pieces, so its test set has more,
  shorter ones), and the decoder's speed: milliseconds per decoder call, batch 1, greedy.
- lm: sentence LMs of 1, 4 (the shipped depth) and 6 layers over sentence vectors, each started from
  the shipped autoencoder (``autoencoder``) and trained by model=sentence_vae for ``train_steps``;
  scored by test perplexity (models/sentence_vae/evaluate.py), tokens per second at batch 1 and KV
  bytes per context token (against the shipped token LM, ``token_lm``).
"""

from __future__ import annotations

import time

import torch

import zoo
from datamodules.stdlib_prose import trimmed
from models.sentence_vae.bench import generation_speed
from models.sentence_vae.evaluate import held_out_corpus, held_out_prompt, kv_bytes, reconstruction, sentence_lm_nll
from models.sentence_vae.pipeline import decode_sentences
from zoo.ablation import Ablation, AblationRun, Stage, Training


def autoencoder_settings(kl_weight: float) -> list[Training]:
    """Every autoencoder. The base is sum pooling, focal, 32 ids and 2 decoder layers (the first shipped
    autoencoder's; the shipped one now has 1, the row that varies it), so every setting but that row
    pins 2 layers."""
    settings = [("pooling", "sum", []),
                ("pooling", "mean", ["++model.net.pooling=mean"]),
                ("pooling", "learned", ["++model.net.pooling=learned"]),
                ("loss", "cross-entropy", ["model.objective.focal_gamma=0.0"]),
                ("kl", f"VAE, KL {kl_weight:g}", ["++model.net.variational=true",
                                                  f"model.objective.kl_weight={kl_weight}"]),
                ("max_sentence_len", "16", ["data.max_sentence_len=16"]),
                ("max_sentence_len", "64", ["data.max_sentence_len=64"])]
    return ([Training(factor, setting, f"ae_{factor}_{setting.split(',')[0]}",
                      ("model=sentence_ae", "++model.net.decoder_depth=2", *overrides))
             for factor, setting, overrides in settings]
            + [Training("decoder_depth", "1", "ae_decoder_depth_1",
                        ("model=sentence_ae", "++model.net.decoder_depth=1"))])


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


def autoencoder(run: AblationRun) -> list[dict]:
    def score(pipe) -> dict:
        dm = held_out_corpus(pipe, pipe.net.max_sentence_len, 32)
        return {**reconstruction(pipe.net.eval(), dm, max_sentences=300 if run.quick else None),
                "decoder_ms_per_step": decoder_ms_per_step(pipe.net, dm)}

    return run.compare(autoencoder_settings(run.options.kl_weight), run.pick("train_steps", 200, 1000), score)


def lm(run: AblationRun) -> list[dict]:
    token_net = zoo.load(run.options.token_lm).net.eval()

    def score(pipe) -> dict:
        net = pipe.net.eval()
        dm = held_out_corpus(pipe, net.autoencoder.max_sentence_len, net.max_sentences)
        speed = generation_speed(pipe, token_net, held_out_prompt(pipe, dm), 1, 4, 1, 0)
        return {"ppl": sentence_lm_nll(net, dm, max_chunks=40 if run.quick else None)["ppl"],
                "tokens_per_second_b1": speed["tokens_per_second"],
                "kv_bytes_per_token": kv_bytes(net, token_net, dm)["bytes_per_token"],
                "parameters": sum(p.numel() for p in net.parameters())}

    trainings = [Training("lm_depth", d, f"lm_depth{d}", ("model=sentence_vae", f"init_from={run.options.autoencoder}",
                                                            f"++model.net.lm_depth={d}"))
                 for d in ((1, 4) if run.quick else (1, 4, 6))]
    return run.compare(trainings, run.pick("train_steps", 200, 1000), score)


ABLATION = Ablation(
    title="SentenceVAE on the stdlib prose: autoencoder settings and sentence LM depth",
    stages={"autoencoder": Stage(("pooling", "loss", "kl", "max_sentence_len", "decoder_depth"), autoencoder),
            "lm": Stage(("lm_depth",), lm)},
    metrics=("exact_match", "token_accuracy", "ppl"),
    options={"train_steps": None, "kl_weight": 1e-3, "autoencoder": "checkpoints/sentence_ae-prose",
             "token_lm": "token_lm-prose"},
)
