"""SentenceVAE's benchmark: the sentence LM against the token LM of about its size, in one run.

    python recipes/bench.py model=sentence_vae [quick=true]

Perplexity on the test chunks (evaluate.py says exactly what is scored), reconstruction of test
sentences by the autoencoder checkpoint, generation speed (tokens per second at batch 1 and 16, the
token LM writing as many tokens per row as the sentence LM did, both sampling at temperature 1 from
the same prompt), and KV bytes per token of context.
"""

from __future__ import annotations

import statistics

import torch

import zoo
from models.sentence_vae.evaluate import (kv_bytes, reconstruction, sentence_lm_nll, held_out_corpus, held_out_prompt,
                                          token_lm_nll)
from models.sentence_vae.network import EOS_ID
from zoo.objectives.autoregressive import ar_sample
from zoo.timing import time_calls


def generation_speed(pipe, token_net, prompt: str, batch: int, sentences: int, repeats: int, seed: int) -> dict:
    """Tokens per second of both models over ``repeats`` calls after one warm-up each (zoo.timing): the
    sentence pipeline's call r, then the token LM asked for as many tokens a row as that call wrote;
    medians with their ranges."""
    ids = [EOS_ID] + [i for s in pipe.sentence_ids(prompt) for i in s[:-1]]
    prompt_ids = torch.tensor([ids] * batch)
    outs = {}

    def ours(r):
        outs[r] = pipe(prompt, batch_size=batch, max_sentences=sentences, temperature=1.0, stop=False,
                       generator=torch.Generator().manual_seed(seed + r))

    def per_row(r):
        return max(round(outs[r].num_tokens / batch), 1)

    def theirs(r):
        ar_sample(token_net, eos_id=EOS_ID, prompt=prompt_ids, gen_length=per_row(r), temperature=1.0, stop_at_eos=False,
                  max_seq_len=token_net.max_seq_len, generator=torch.Generator().manual_seed(seed + r))

    our_time, _ = time_calls(ours, repeats=repeats, device=next(token_net.parameters()).device)
    their_time, _ = time_calls(theirs, repeats=repeats, device=next(token_net.parameters()).device)
    our_rates = sorted(outs[r].num_tokens / s for r, s in enumerate(our_time.runs))
    their_rates = sorted(batch * per_row(r) / s for r, s in enumerate(their_time.runs))
    mid = statistics.median
    return {"batch": batch, "sentences": sentences, "repeats": repeats,
            "tokens_per_second": round(mid(our_rates), 1), "tokens_per_second_range": [round(our_rates[0], 1), round(our_rates[-1], 1)],
            "token_lm_tokens_per_second": round(mid(their_rates), 1),
            "token_lm_tokens_per_second_range": [round(their_rates[0], 1), round(their_rates[-1], 1)],
            "speedup_vs_token_lm": round(mid(our_rates) / mid(their_rates), 2),
            "speedup_vs_token_lm_range": [round(our_rates[0] / their_rates[-1], 2), round(our_rates[-1] / their_rates[0], 2)],
            "nfe": outs[repeats - 1].calls}


def run(pretrained: str | None = None, baseline: str | None = None, quick: bool = False, repeats: int = 3,
        seed: int = 0, device: str = "cpu", autoencoder: str | None = None) -> dict:
    """pretrained: the sentence LM (sentence_vae-prose); baseline: the token LM (token_lm-prose);
    autoencoder: the autoencoder whose reconstruction is reported (sentence_ae-prose)."""
    pipe = zoo.load(pretrained or "sentence_vae-prose").to(device)
    token_net = zoo.load(baseline or "token_lm-prose").to(device).net.eval()
    ae = zoo.load(autoencoder or "sentence_ae-prose").to(device).net.eval()
    net = pipe.net.eval()
    dm = held_out_corpus(pipe, net.autoencoder.max_sentence_len, net.max_sentences)
    max_chunks = 40 if quick else None
    ours = sentence_lm_nll(net, dm, max_chunks=max_chunks)
    theirs = token_lm_nll(token_net, dm, max_chunks=max_chunks)
    if ours["text_tokens"] != theirs["text_tokens"]:
        raise RuntimeError(f"the two models scored different ids: {ours['text_tokens']} vs {theirs['text_tokens']}")
    recon = reconstruction(ae, dm, max_sentences=300 if quick else None)
    recon_lm = reconstruction(net.autoencoder, dm, max_sentences=300 if quick else None)
    memory = kv_bytes(net, token_net, dm, max_chunks=max_chunks)
    prompt = held_out_prompt(pipe, dm)
    speed = [generation_speed(pipe, token_net, prompt, b, 4 if quick else 8, 1 if quick else repeats, seed)
             for b in (1, 16)]
    sample = pipe(prompt, max_sentences=4, generator=torch.Generator().manual_seed(seed))
    for row in speed:
        print(f"batch {row['batch']:>2}: {row['tokens_per_second']:8.1f} tokens/s vs the token LM's "
              f"{row['token_lm_tokens_per_second']:8.1f} ({row['speedup_vs_token_lm']:.2f}x)", flush=True)
    print(f"ppl {ours['ppl']:.2f} vs the token LM's {theirs['ppl']:.2f}; reconstruction exact "
          f"{recon['exact_match']:.3f}; KV bytes per token {memory['bytes_per_token']:.0f} vs "
          f"{memory['token_lm_bytes_per_token']:.0f}\nprompt: {prompt!r}\ncontinuation: {sample.texts[0]!r}", flush=True)
    return {"speedup_vs_token_lm": speed[0]["speedup_vs_token_lm"],
            "speedup_vs_token_lm_b16": speed[1]["speedup_vs_token_lm"],
            "kv_memory_reduction": memory["kv_memory_reduction"],
            "kv_memory_reduction_equal_depth": memory["kv_memory_reduction_equal_depth"],
            "kv_memory_reduction_with_decoder": memory["kv_memory_reduction_with_decoder"],
            "ppl": ours["ppl"], "token_lm_ppl": theirs["ppl"],
            "ppl_ratio": ours["ppl"] / theirs["ppl"], "recon_exact_match": recon["exact_match"],
            "recon_token_accuracy": recon["token_accuracy"], "recon_exact_match_lm_autoencoder": recon_lm["exact_match"],
            "scored": {"sentence_lm": ours, "token_lm": theirs}, "reconstruction": recon, "kv": memory, "speed": speed,
            "parameters": {"sentence_lm": sum(p.numel() for p in net.parameters()),
                           "token_lm": sum(p.numel() for p in token_net.parameters())},
            "prompt": prompt, "continuation": sample.texts[0]}
