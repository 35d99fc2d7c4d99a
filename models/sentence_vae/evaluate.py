"""What the sentence models are judged by, computed the same way for the token baseline.

Perplexity (``sentence_lm_nll`` / ``token_lm_nll``), on the test split's document chunks: the NLL of
every id of sentences 2..n of a chunk given the sentences before it, normalised by the number of those
ids (EOS not counted). The sentence LM must also say where each sentence ends: its EOS predictions are
added to its NLL, not to the count, so it pays for the boundaries the token model never predicts. Both
score exactly the same ids (the data's views share them; checked here). The continue/stop decisions are
left out of both.

Reconstruction (``reconstruction``): each test sentence encoded, then greedily decoded; exact match =
every id and the EOS right; token accuracy = ids right at their position over the reference's ids.

KV memory (``kv_bytes``): bytes of the keys and values a model holds per token of context, read from the
caches each model fills with a test chunk's context, summed over every chunk of the test split; per layer
as well, since the two LMs' depths differ. Beside it the decoder's own cache, which the sentence
pipeline holds while it writes: bounded by the pipeline's trimming, whatever the context's length.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from datamodules.stdlib_prose import StdlibProseDataModule, trimmed
from models.sentence_vae.network import SentenceAutoencoder, SentenceLM
from models.sentence_vae.objective import next_sentence_nll
from models.sentence_vae.pipeline import decode_sentences
from zoo.nn import KVCache


def held_out_corpus(pipe, max_sentence_len: int, max_sentences: int) -> StdlibProseDataModule:
    """The prose datamodule at the model's limits, built if needed, whose tokenizer is the checkpoint's."""
    from tokenizers import Tokenizer

    dm = StdlibProseDataModule(max_sentence_len=max_sentence_len, max_sentences=max_sentences)
    dm.prepare_data()
    if Tokenizer.from_file(str(dm.tokenizer_path)).get_vocab() != pipe.tokenizer.get_vocab():
        raise ValueError(f"{dm.tokenizer_path}: not the tokenizer this checkpoint was trained with")
    return dm


def ppl(nll: float, tokens: int) -> float:
    return math.exp(nll / max(tokens, 1))


@torch.no_grad()
def sentence_lm_nll(net: SentenceLM, dm: StdlibProseDataModule, batch_size: int = 8, max_chunks: int | None = None
                    ) -> dict:
    """Module docstring: NLL of sentences 2..n's ids (+ their EOS) given the sentences before them."""
    ds = dm.dataset("test", "documents")
    chunks = range(len(ds) if max_chunks is None else min(max_chunks, len(ds)))
    nll, events, sentences = 0.0, 0, 0
    for batch in DataLoader(torch.utils.data.Subset(ds, chunks), batch_size=batch_size, collate_fn=trimmed):
        terms = next_sentence_nll(net, batch["sentences"], batch["lengths"])
        nll, events, sentences = nll + terms["loss"], events + terms["ids"], sentences + terms["sentences"]
    tokens = events - sentences  # each scored sentence's EOS is paid for but not counted
    return {"nll_nats": nll, "text_tokens": tokens, "eos_scored": sentences, "ppl": ppl(nll, tokens),
            "chunks": len(chunks)}


@torch.no_grad()
def token_lm_nll(net, dm: StdlibProseDataModule, batch_size: int = 8, max_chunks: int | None = None) -> dict:
    """The same ids as ``sentence_lm_nll`` (sentences 2..n of each chunk), scored by a token LM."""
    ds = dm.dataset("test", "tokens", sentence_ids=True)
    chunks = range(len(ds) if max_chunks is None else min(max_chunks, len(ds)))
    nll, tokens = 0.0, 0
    for batch in DataLoader(torch.utils.data.Subset(ds, chunks), batch_size=batch_size, collate_fn=trimmed):
        x1, valid, owner = batch["x1"], batch["valid"], batch["sentence_id"]
        logits = net(x1, None, None, valid=valid).float()[:, :-1]
        keep = valid[:, 1:] & (owner[:, 1:] >= 1)
        ce = F.cross_entropy(logits.transpose(1, 2), x1[:, 1:], reduction="none")
        nll += float((ce * keep).sum())
        tokens += int(keep.sum())
    return {"nll_nats": nll, "text_tokens": tokens, "ppl": ppl(nll, tokens), "chunks": len(chunks)}


@torch.no_grad()
def reconstruction(ae: SentenceAutoencoder, dm: StdlibProseDataModule, max_sentences: int | None = None,
                   batch_size: int = 256) -> dict:
    """Module docstring: greedy reconstruction of test sentences."""
    ds = dm.dataset("test", "sentences")
    rows = range(len(ds) if max_sentences is None else min(max_sentences, len(ds)))
    exact, right, total = 0, 0, 0
    for batch in DataLoader(torch.utils.data.Subset(ds, rows), batch_size=batch_size, collate_fn=trimmed):
        tokens, length = batch["tokens"], batch["length"]
        ids, out_len, _ = decode_sentences(ae, ae.encode(tokens, length))
        width = tokens.shape[1]
        real = torch.arange(width)[None] < length[:, None]
        same = (ids[:, :width] == tokens) & real
        exact += int(((same | ~real).all(1) & (out_len == length)).sum())
        right += int(same.sum())
        total += int(real.sum())
    return {"exact_match": exact / len(rows), "token_accuracy": right / max(total, 1), "sentences": len(rows)}


def cache_bytes(cache: KVCache) -> int:
    """Bytes of the keys and values a cache holds (its filled length, not its spare capacity)."""
    total = 0
    for i in range(len(cache.buffers)):
        k, v = cache.layer(i)
        if k is not None:
            total += k.numel() * k.element_size() + v.numel() * v.element_size()
    return total


@torch.no_grad()
def kv_bytes(sentence_net: SentenceLM, token_net, dm: StdlibProseDataModule, max_chunks: int | None = None) -> dict:
    """KV bytes per token of context of both models over the test split's chunks (all, or the first
    ``max_chunks``): each chunk's context fills a fresh cache of each model (the sentence LM one position
    per sentence, the token LM one per id and its start token); bytes read from the caches. Per layer:
    the same divided by each model's depth (the comparison at equal depth). ``decoder_cache_bytes``: the
    sentence decoder's cache at the sentence pipeline's trimming bound (models/sentence_vae/pipeline.py:
    4 x max_sentence_len keys a row), which it holds on top of the LM's while it writes;
    ``kv_memory_reduction_with_decoder`` counts it once a chunk."""
    docs, toks = dm.dataset("test", "documents"), dm.dataset("test", "tokens")
    chunks = len(docs) if max_chunks is None else min(max_chunks, len(docs))
    ours = theirs = tokens = positions = sentences = 0
    for i in range(chunks):
        doc, tok = trimmed([docs[i]]), trimmed([toks[i]])
        sentence_cache, token_cache = KVCache(), KVCache()
        sentence_net.context(sentence_net.encode_sentences(doc["sentences"], doc["lengths"]), sentence_cache, True)
        token_net(tok["x1"], None, None, cache=token_cache, update_cache=True)
        ours, theirs = ours + cache_bytes(sentence_cache), theirs + cache_bytes(token_cache)
        tokens += int(tok["valid"].sum()) - 1  # the chunk's ids, without the start token
        positions += token_cache.length
        sentences += int((doc["lengths"] > 0).sum())
    depth, token_depth = len(sentence_cache.buffers), len(token_cache.buffers)
    ae = sentence_net.autoencoder
    decoder_cache, terms = KVCache(), ae.memory_terms(torch.zeros(1, ae.dim))
    for position in range(4 * ae.max_sentence_len):
        ae.decode_step(torch.tensor([ae.eos_id]), position, torch.ones(1, position + 1, dtype=torch.bool),
                       decoder_cache, terms)
    per_token, token_per_token = ours / tokens, theirs / positions
    return {"chunks": chunks, "context_tokens": tokens, "context_sentences": sentences,
            "bytes_per_token": per_token, "token_lm_bytes_per_token": token_per_token,
            "kv_memory_reduction": 1 - per_token / token_per_token,
            "layers": depth, "token_lm_layers": token_depth,
            "bytes_per_token_per_layer": per_token / depth, "token_lm_bytes_per_token_per_layer": token_per_token / token_depth,
            "kv_memory_reduction_equal_depth": 1 - (per_token / depth) / (token_per_token / token_depth),
            "decoder_cache_bytes": cache_bytes(decoder_cache),
            # what the pipeline holds while it writes, at the test chunks' mean context: the LM's cache and
            # the decoder's at its bound, against the token LM's cache of the same context
            "kv_memory_reduction_with_decoder": 1 - (ours + chunks * cache_bytes(decoder_cache)) / theirs}


def held_out_prompt(pipe, dm: StdlibProseDataModule, sentences: int = 2) -> str:
    """The first ``sentences`` sentences of the first test chunk, as text: the prompt the bench and the
    ablation time generation from."""
    corpus = dm.corpus("test")
    first = corpus.chunks[0][0]
    return "".join(pipe.tokenizer.decode(corpus.sentences[first + j][:-1].tolist()) for j in range(sentences))
