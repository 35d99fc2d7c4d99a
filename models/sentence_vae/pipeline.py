"""Text in, text out: the sentence autoencoder's encode / decode, and sentence-by-sentence continuation
with the sentence LM.

Limits, by design: a text given to ``SentenceAutoencoderPipeline.encode`` is one sentence and must fit
the model (``max_sentence_len - 1`` tokens and EOS), else ValueError; a prompt given to
``SentenceLMPipeline`` is cut into sentences (datamodules.stdlib_prose.split_sentences) and a sentence
longer than the limit is cut into pieces of that many tokens, as the training data was.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from datamodules.sentences import split_sentences
from models.text_kit.pipeline import CodePipeline, special_ids
from models.sentence_vae.network import PAD_ID, SentenceAutoencoder, SentenceLM
from zoo import generators
from zoo.checks import MAX_BATCH, check_float, check_int, check_tensor
from zoo.nn import KVCache
from zoo.objectives.autoregressive import decode
from zoo.objectives.masked_sampling import propose
from zoo.pipeline import Pipeline


@dataclass
class SentenceOutput:
    texts: list[str]  # per row: the generated sentences joined (a continuation, or a reconstruction)
    sentences: list[list[str]]  # per row: each generated sentence's text
    ids: list[list[int]]  # per row: the generated ids, each sentence's ending in EOS
    calls: dict  # network calls by kind: sentence_steps (LM), decoder_steps, encoder_calls
    seconds: float
    prompts: list[str] = field(default_factory=list)

    @property
    def nfe(self) -> int:
        """Network calls of every kind together (``calls`` has them apart)."""
        return sum(self.calls.values())

    @property
    def tokens(self) -> torch.Tensor:
        """(B, L) the rows' ``ids``, right-padded with PAD."""
        out = torch.full((len(self.ids), max(1, max(len(r) for r in self.ids))), PAD_ID, dtype=torch.long)
        for i, row in enumerate(self.ids):
            out[i, :len(row)] = torch.tensor(row, dtype=torch.long)
        return out

    @property
    def num_tokens(self) -> int:
        """Generated ids over all rows, EOS excluded (one EOS ends each sentence)."""
        return sum(len(r) for r in self.ids) - sum(len(s) for s in self.sentences)

    @property
    def tokens_per_second(self) -> float:
        return self.num_tokens / max(self.seconds, 1e-9)

    def describe(self) -> list[str]:
        return [f"--- sample {i} ---\n{p}[{t}]" for i, (p, t) in
                enumerate(zip(self.prompts or [""] * len(self.texts), self.texts))]

    def save(self, out_dir: Path) -> Path:
        """Each row as sample_<i>.txt: the prompt, then the generated text in [brackets]; returns the folder."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        for i, (prompt, text) in enumerate(zip(self.prompts or [""] * len(self.texts), self.texts)):
            (out_dir / f"sample_{i:03d}.txt").write_text(f"{prompt}[{text}]\n")
        return out_dir


@torch.no_grad()
def decode_sentences(ae: SentenceAutoencoder, memory: torch.Tensor, temperature: float = 0.0,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """One sentence per memory vector (N, dim) through the KV-cached decoder (the core's decode loop).
    -> ids (N, T) ``[t1 .. tn, EOS]`` + padding, lengths (N,) (EOS included), decoder calls. A row
    that reaches the limit without EOS gets EOS in its last slot.

    Rows that have ended leave the batch (their cache rows too), so a step costs what the rows still
    writing cost; the loop fills ended rows with EOS whatever logits they get (zeros here)."""
    n, t = memory.shape[0], ae.max_sentence_len
    live = {"rows": torch.arange(n, device=memory.device), "cache": KVCache(), "terms": ae.memory_terms(memory)}

    def step(token):
        if token is None:
            token = torch.full((n,), ae.eos_id, device=memory.device)
        else:
            writing = token[live["rows"]] != ae.eos_id
            if not writing.all():
                keep = writing.nonzero().squeeze(1)
                live.update(rows=live["rows"][keep], cache=live["cache"].select_rows(keep),
                            terms=[term[keep] for term in live["terms"]])
        rows = live["rows"]
        compact = len(rows) < n  # every row still writing: no gather or scatter
        logits = ae.decode_logits(memory[rows] if compact else memory, (token[rows] if compact else token)[:, None],
                                  live["cache"], update_cache=True, memory_terms=live["terms"])[:, -1]
        return logits.new_zeros(n, logits.shape[-1]).index_copy_(0, rows, logits) if compact else logits

    out = decode(step, t - 1, temperature=temperature, generator=generator, eos_id=ae.eos_id)
    ids = torch.full((n, t), ae.eos_id, dtype=torch.long, device=memory.device)
    ids[:, :out.tokens.shape[1]] = out.tokens
    lengths = (ids == ae.eos_id).int().argmax(1) + 1  # up to and with the first EOS (slot t - 1 at the latest)
    ids[torch.arange(t, device=ids.device)[None] >= lengths[:, None]] = PAD_ID
    ids[torch.arange(n), lengths - 1] = ae.eos_id
    return ids, lengths, out.nfe


# The LM steps once 1 / WAIT_SHARE of the live rows wait for it (continue_sentences). Chosen by a
# one-off sweep at batch 16 (not a repo command): 1 (all wait, as lockstep) and an LM call for every
# row that ends (no waiting) were both slower than 1.5-4, which were alike within the noise.
WAIT_SHARE = 2


def padded(sentences: list[list[int]], device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Id lists -> (N, T) ids right-padded with PAD, and lengths (N,)."""
    ids = torch.full((len(sentences), max(len(s) for s in sentences)), PAD_ID, dtype=torch.long)
    for i, s in enumerate(sentences):
        ids[i, :len(s)] = torch.tensor(s)
    return ids.to(device), torch.tensor([len(s) for s in sentences], device=device)


@torch.no_grad()
def continue_sentences(net: SentenceLM, vectors: torch.Tensor, counts: torch.Tensor, max_sentences: int,
                       temperature: float, stop: bool, generator: torch.Generator | None = None
                       ) -> tuple[list[list[list[int]]], dict]:
    """New sentences after each row's prompt: vectors (B, S, dim) of the prompts' sentences, row r's
    first counts[r] real -> per row the new sentences' ids (each ending in EOS), and the network calls.
    A row ends after ``max_sentences``, when the LM's context is full, or (with ``stop``) when the stop
    head says so.

    Continuous batching: every row writes its own sentence; rows that have ended one wait until a
    share of the batch (``WAIT_SHARE``) waits, then those are encoded, the LM reads their sentences in
    one call, and they begin their next sentences at the next decoder step while the others write on.
    No row waits for the longest sentence of the batch, as rows decoded in lockstep would (at batch
    16 that took 215 decoder steps for 8 sentences where the rows average 12 ids a sentence). The LM
    runs without a cache (rows hold different numbers of sentences; causal, so padding after a row's
    last sentence changes nothing). The decoder's rows share one cache and its positions, each row
    masked to its own sentence's keys (``SentenceAutoencoder.decode_step``)."""
    ae, (b, _, dim), device = net.autoencoder, vectors.shape, vectors.device
    calls = {"sentence_steps": 0, "decoder_steps": 0, "encoder_calls": 0}
    context = vectors.new_zeros(b, net.max_sentences, dim)
    context[:, :vectors.shape[1]] = vectors
    counts = counts.clone()
    done_sentences: list[list[list[int]]] = [[] for _ in range(b)]

    def next_memory(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The LM's decoder memory (n, dim) for each row's next sentence, and whether it stops (n,)."""
        calls["sentence_steps"] += 1
        memory, stop_logits = net.context(context[rows, :int(counts[rows].max())])
        last = (torch.arange(len(rows), device=device), counts[rows] - 1)
        return memory[last], (stop_logits[last].argmax(-1) == 1) & stop

    memory, stops = next_memory(torch.arange(b, device=device))
    live = (~stops).nonzero().squeeze(1)  # original row of each row still going
    terms = [term[live] for term in ae.memory_terms(memory)]
    start = torch.zeros(len(live), dtype=torch.long, device=device)  # each live row's sentence start
    waiting = torch.zeros(len(live), dtype=torch.bool, device=device)  # ended a sentence, awaits the LM
    writing = [[] for _ in range(len(live))]  # the ids of each live row's current sentence
    token = torch.full((len(live),), ae.eos_id, device=device)  # EOS starts a sentence
    cache, position, offset = KVCache(), 0, 0  # offset: the position of the cache's first key
    while len(live):
        keys = offset + torch.arange(cache.length + 1, device=device)
        logits = ae.decode_step(token, position, keys[None] >= start[:, None], cache, terms)
        calls["decoder_steps"] += 1
        position += 1
        token = propose(logits.float(), temperature, generators.select(generator, live)).masked_fill(waiting, ae.eos_id)
        ended = (~waiting & ((token == ae.eos_id) | (position - start >= ae.max_sentence_len - 1))).tolist()
        keep = torch.ones(len(live), dtype=torch.bool, device=device)
        for i, (t, end, wait) in enumerate(zip(token.tolist(), ended, waiting.tolist())):
            if wait:
                continue
            writing[i].append(t)
            if end:  # EOS, or the limit (then EOS is added)
                row = int(live[i])
                done_sentences[row].append(writing[i] if t == ae.eos_id else writing[i] + [ae.eos_id])
                writing[i] = []
                more = len(done_sentences[row]) < max_sentences and counts[row] < net.max_sentences
                keep[i], waiting[i] = more, more
        # The LM steps for rows that wait once a share of the batch waits (all of it, when none is
        # writing): one LM call then serves many rows, at the cost of a few idle steps for the first.
        if waiting.any() and waiting[keep].sum() * WAIT_SHARE >= keep.sum():
            now = (waiting & keep).nonzero().squeeze(1)
            rows = live[now]
            context[rows, counts[rows]] = ae.encode(*padded([done_sentences[int(r)][-1] for r in rows], device))
            calls["encoder_calls"] += 1
            counts[rows] += 1
            memory, stops = next_memory(rows)
            for k, term in enumerate(ae.memory_terms(memory)):
                terms[k][now] = term
            start[now], token[now], waiting[now] = position, ae.eos_id, False
            keep[now[stops]] = False
        if not keep.all():
            kept = keep.nonzero().squeeze(1)
            live, start, token, waiting = live[kept], start[kept], token[kept], waiting[kept]
            terms = [term[kept] for term in terms]
            writing = [writing[i] for i in kept.tolist()]
            cache = cache.select_rows(kept)
        if len(live) and cache.length >= 4 * ae.max_sentence_len:  # drop keys no live sentence reads
            first = int(start.min()) - offset
            cache, offset = cache.select(torch.arange(first, cache.length, device=device)), offset + first
    return done_sentences, calls


class SentencePipelineBase(Pipeline):
    """The tokenizer (carried by the checkpoint, as the code models') and text <-> sentence ids."""

    def __init__(self, net, tokenizer, meta: dict | None = None, **pipeline_kwargs):
        super().__init__(net, meta=meta, **pipeline_kwargs)
        self.tokenizer = tokenizer
        _, self.eos_id, self.pad_id = special_ids(tokenizer)

    @classmethod
    def load_components(cls, directory: Path, net) -> dict:
        return CodePipeline.load_components(directory, net)

    def save_components(self, directory: Path) -> None:
        self.tokenizer.save(str(directory / "tokenizer.json"))

    @property
    def autoencoder(self) -> SentenceAutoencoder:
        raise NotImplementedError

    def sentence_ids(self, text: str) -> list[list[int]]:
        """A text's sentences as id lists, EOS appended; one longer than the limit is cut into pieces."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"expected a non-empty text, got {text!r}")
        piece = self.autoencoder.max_sentence_len - 1
        out = []
        for sentence in split_sentences(text):
            ids = self.tokenizer.encode(sentence).ids
            out.extend(ids[i:i + piece] + [self.eos_id] for i in range(0, len(ids), piece))
        return out

    def whole_ids(self, text: str) -> list[int]:
        """One text as one sentence's ids, EOS appended; ValueError if it is empty or too long."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"expected a non-empty text, got {text!r}")
        ids = self.tokenizer.encode(text).ids
        if len(ids) > self.autoencoder.max_sentence_len - 1:
            raise ValueError(f"{text!r} is {len(ids)} tokens; a sentence holds at most "
                             f"{self.autoencoder.max_sentence_len - 1} (max_sentence_len with EOS)")
        return ids + [self.eos_id]

    def padded(self, sentences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        return padded(sentences, self.device)

    def texts(self, ids: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        return [self.tokenizer.decode(row[:n - 1]) for row, n in zip(ids.tolist(), lengths.tolist())]


class SentenceAutoencoderPipeline(SentencePipelineBase):
    """``encode(texts) -> (N, dim)``, ``decode(vectors) -> texts``; calling it reconstructs texts."""

    @property
    def autoencoder(self) -> SentenceAutoencoder:
        return self.net

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        """Each text -> one vector (N, dim). A text is encoded whole (not cut into sentences), so it
        must fit one sentence's ids (``max_sentence_len - 1``)."""
        if not isinstance(texts, (list, tuple)) or not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError(f"texts must be a non-empty list of strings; got {texts!r:.80}")
        return self.net.encode(*self.padded([self.whole_ids(text) for text in texts]))

    @torch.no_grad()
    def decode(self, vectors: torch.Tensor, temperature: float = 0.0,
               generator: torch.Generator | None = None) -> tuple[list[str], int]:
        """Vectors (N, dim) -> (texts, decoder calls)."""
        check_tensor("vectors", vectors, (None, self.net.dim), integer=False)  # finite: NaN decodes to nothing
        ids, lengths, nfe = decode_sentences(self.net, vectors.to(self.device, self.dtype),
                                             check_float("temperature", temperature, low=0.0), generator)
        return self.texts(ids, lengths), nfe

    @torch.no_grad()
    def __call__(self, texts: list[str], temperature: float = 0.0,
                 generator: torch.Generator | None = None) -> SentenceOutput:
        """Reconstruct each text: encode, then decode (greedy at temperature 0)."""
        start = time.perf_counter()
        temperature = check_float("temperature", temperature, low=0.0)
        ids, lengths, calls = decode_sentences(self.net, self.encode(texts), temperature, generator)
        out, lengths = self.texts(ids, lengths), lengths.tolist()
        return SentenceOutput(out, [[t] for t in out], [row[:n] for row, n in zip(ids.tolist(), lengths)],
                              {"encoder_calls": 1, "decoder_steps": calls}, time.perf_counter() - start, list(texts))


class SentenceLMPipeline(SentencePipelineBase):
    """Continue a text sentence by sentence (module docstring). Settings: temperature, max_sentences."""

    settings = ("temperature", "max_sentences")

    @property
    def autoencoder(self) -> SentenceAutoencoder:
        return self.net.autoencoder

    @torch.no_grad()
    def __call__(self, prompt: str | list[str], max_sentences: int | None = None, temperature: float | None = None,
                 batch_size: int | None = None, stop: bool = True,
                 generator: torch.Generator | None = None) -> SentenceOutput:
        """Up to ``max_sentences`` new sentences after each prompt (a string, repeated ``batch_size``
        times, or a list of strings). With ``stop``, a row ends when the stop head says so; rows end
        anyway when the LM's context (``net.max_sentences``) is full."""
        start = time.perf_counter()
        max_sentences = check_int("max_sentences", self.setting("max_sentences", max_sentences), low=1)
        temperature = check_float("temperature", self.setting("temperature", temperature), low=0.0)
        check_int("batch_size", batch_size, low=1, high=MAX_BATCH, optional=True)
        if not isinstance(prompt, (str, list, tuple)):
            raise ValueError(f"prompt must be a string or a list of strings; got {type(prompt).__name__}")
        prompts = [prompt] * (batch_size or 1) if isinstance(prompt, str) else list(prompt)
        if not prompts:
            raise ValueError("prompt is an empty list")
        if batch_size is not None and not isinstance(prompt, str) and batch_size != len(prompts):
            raise ValueError(f"batch_size={batch_size} differs from the {len(prompts)} prompts")
        context = [self.sentence_ids(p) for p in prompts]
        for c in context:
            if len(c) >= self.net.max_sentences:
                raise ValueError(f"a prompt has {len(c)} sentences; the model's context holds "
                                 f"{self.net.max_sentences}, so it has no room to continue")
        counts = torch.tensor([len(c) for c in context], device=self.device)
        width = int(counts.max())  # shorter prompts get empty sentences (length 0, zero vectors) after theirs
        ids, lengths = self.padded([s for c in context for s in c + [[]] * (width - len(c))])
        vectors = self.net.encode_sentences(ids.reshape(len(prompts), width, -1), lengths.reshape(len(prompts), width))
        generated, calls = continue_sentences(self.net, vectors, counts, max_sentences, temperature, stop, generator)
        calls["encoder_calls"] += 1  # the prompts'
        sentences = [[self.tokenizer.decode(s[:-1]) for s in row] for row in generated]
        return SentenceOutput(["".join(row) for row in sentences], sentences, [[i for s in row for i in s]
                                                                               for row in generated],
                              calls, time.perf_counter() - start, prompts)
