"""Real English prose on every machine: the docstrings and comments of the Python standard library,
cut into sentences for the sentence-level models (models/sentence_vae).

prepare_data() (once, cached under ``cache_dir``):
  1. every stdlib ``*.py`` file (the code corpus's reader: deduplicated, site-packages excluded);
  2. its docstrings (``ast``) and full-line comment blocks (``tokenize``) in source order, each cleaned
     to prose (``clean_prose``: doctests, indented code blocks and symbol-heavy paragraphs dropped,
     wrapped lines joined); one document per file, paragraphs separated by a newline;
  3. split into train / val / test by a hash of the file's path, so a file never straddles splits;
  4. each document cut into sentences (``split_sentences``); a byte-level BPE trained on the train
     sentences; every sentence encoded on its own, so both the sentence models and the token baseline
     score exactly the same token ids;
  5. per split: ``tokens.npy`` (uint16, all sentences end to end), ``sentence_offsets.npy`` (where each
     sentence starts), ``document_offsets.npy`` (where each document's first sentence is).

At load time a sentence longer than ``max_sentence_len - 1`` tokens is cut into pieces of that many
(the last slot is the end-of-sentence token) and a document longer than ``max_sentences`` is served as
consecutive chunks; both are documented limits, not errors. Three views of the same data:
``sentences`` (the autoencoder), ``documents`` (the sentence LM) and ``tokens`` (the token baseline:
the same documents' ids end to end, after one EOS as start token).
"""

from __future__ import annotations

import ast
import io
import json
import re
import sys
import tokenize
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.base import DataCard, PSF, StepBatchSampler, cache_lock
from datamodules.sentences import split_sentences
from datamodules.stdlib_code import EOS_ID, PAD_ID, SPECIAL_TOKENS, corpus_files, train_tokenizer
from zoo.pretrained import atomic_dir

SPLITS = ("train", "val", "test")
VIEWS = ("sentences", "documents", "tokens")
TOKENIZER_FILE = "tokenizer.json"
DEBUG_FILES = 120  # debug=fast: the first files of the stdlib, cached apart
MIN_LETTER_SHARE = 0.8  # a paragraph with fewer letters and spaces than this is code or a table, not prose
FORMAT = 1  # in the cache folder's name: bump it when the cleaning, splitting or arrays change


def clean_prose(block: str) -> str:
    """A docstring or comment block -> its prose paragraphs, one line each, joined by newlines ("" if
    none). Dropped: paragraphs with a doctest line (``>>>``, ``...``), paragraphs with an
    indented line (code examples, literal blocks, tables: docstrings come dedented by
    ``ast.get_docstring``) and paragraphs under MIN_LETTER_SHARE letters."""
    kept = []
    for para in re.split(r"\n\s*\n", block):
        lines = [line for line in para.split("\n") if line.strip()]
        if not lines or any(line.lstrip().startswith((">>>", "...")) for line in lines):
            continue
        if any(line[0].isspace() for line in lines):  # after cleandoc, prose starts at column 0
            continue
        joined = " ".join(" ".join(line.split()) for line in lines)
        letters = sum(c.isalpha() or c == " " for c in joined) / len(joined)
        if letters >= MIN_LETTER_SHARE and len(joined.split()) >= 3:
            kept.append(joined)
    return "\n".join(kept)


def prose_blocks(source: str) -> list[str]:
    """The docstrings and full-line comment blocks of one Python source, in source order, uncleaned."""
    found: list[tuple[int, str]] = []
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc:
                found.append((node.body[0].lineno, doc))
    block, first, last = [], 0, -2
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type != tokenize.COMMENT or not tok.line.lstrip().startswith("#"):
                continue
            if tok.start[0] != last + 1 and block:  # a gap ends the block
                found.append((first, "\n".join(block)))
                block = []
            if not block:
                first = tok.start[0]
            block.append(tok.string.lstrip("#").strip())
            last = tok.start[0]
    except (tokenize.TokenError, SyntaxError):
        pass
    if block:
        found.append((first, "\n".join(block)))
    return [text for _, text in sorted(found, key=lambda x: x[0])]


def prose_document(source: str, seen: set[str]) -> str:
    """One file's prose: its cleaned blocks not seen before in the corpus (licence headers and repeated
    comments appear once), a newline between them."""
    kept = []
    for block in prose_blocks(source):
        text = clean_prose(block)
        if text and text not in seen:
            seen.add(text)
            kept.append(text)
    return "\n".join(kept)


def split_of(relative_path: str, held_out_per_mille: int) -> str:
    """train, or val / test (held_out_per_mille each) by a hash of the path."""
    import hashlib

    bucket = int(hashlib.sha1(relative_path.encode()).hexdigest(), 16) % 1000
    return "val" if bucket < held_out_per_mille else "test" if bucket < 2 * held_out_per_mille else "train"


def read_documents(held_out_per_mille: int, max_files: int | None = None) -> dict[str, list[str]]:
    """{split: [document text]}: one document per stdlib file with any prose."""
    docs, seen = {s: [] for s in SPLITS}, set()
    for relative, source in corpus_files(max_files=max_files):
        text = prose_document(source, seen)
        if text:
            docs[split_of(relative, held_out_per_mille)].append(text)
    return docs


def encode_split(tok, documents: list[list[str]]) -> dict[str, np.ndarray]:
    """Sentences of each document -> the three arrays of one split (module docstring, step 5)."""
    flat = [s for doc in documents for s in doc]
    ids = [enc.ids for enc in tok.encode_batch(flat)]
    lengths = np.array([len(x) for x in ids], dtype=np.int64)
    return {"tokens": np.fromiter((i for x in ids for i in x), dtype=np.uint16, count=int(lengths.sum())),
            "sentence_offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            "document_offsets": np.concatenate([[0], np.cumsum([len(d) for d in documents])]).astype(np.int64)}


class ProseCorpus:
    """One split held in memory: sentences cut to ``max_sentence_len`` (EOS included) and documents
    chunked to ``max_sentences``.

    sentences: each one's ids + [EOS]; chunks: (first sentence, number of sentences, ends its document)."""

    def __init__(self, arrays: dict[str, np.ndarray], max_sentence_len: int, max_sentences: int):
        tokens, offsets = arrays["tokens"], arrays["sentence_offsets"]
        piece = max_sentence_len - 1
        self.sentences: list[np.ndarray] = []
        self.chunks: list[tuple[int, int, bool]] = []
        for d in range(len(arrays["document_offsets"]) - 1):
            first = len(self.sentences)
            for s in range(arrays["document_offsets"][d], arrays["document_offsets"][d + 1]):
                ids = tokens[offsets[s]:offsets[s + 1]]
                for start in range(0, max(len(ids), 1), piece):  # a long sentence is served as pieces
                    self.sentences.append(np.append(ids[start:start + piece], EOS_ID).astype(np.int64))
            for start in range(first, len(self.sentences), max_sentences):
                count = min(max_sentences, len(self.sentences) - start)
                self.chunks.append((start, count, start + count == len(self.sentences)))
        self.max_sentence_len, self.max_sentences = max_sentence_len, max_sentences


class ProseView(Dataset):
    """Items of one view (module docstring). sentences: {"tokens": (T,), "length"}; documents:
    {"sentences": (S, T), "lengths": (S,) (0 = no sentence), "ends": the chunk ends its document};
    tokens: {"x1": (N,), "valid": (N,)}, N = 1 + S * (T - 1), and with ``sentence_ids`` (scoring)
    "sentence_id": (N,), the chunk's sentence each id belongs to (-1 on the start token and padding)."""

    def __init__(self, corpus: ProseCorpus, view: str, sentence_ids: bool = False):
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}; one of {VIEWS}")
        self.corpus, self.view, self.sentence_ids = corpus, view, sentence_ids

    def __len__(self) -> int:
        return len(self.corpus.sentences) if self.view == "sentences" else len(self.corpus.chunks)

    def __getitem__(self, i: int) -> dict:
        c, t = self.corpus, self.corpus.max_sentence_len
        if self.view == "sentences":
            ids = c.sentences[i]
            tokens = torch.full((t,), PAD_ID, dtype=torch.long)
            tokens[:len(ids)] = torch.from_numpy(ids)
            return {"tokens": tokens, "length": torch.tensor(len(ids))}
        first, count, ends = c.chunks[i]
        sents = c.sentences[first:first + count]
        if self.view == "documents":
            out = torch.full((c.max_sentences, t), PAD_ID, dtype=torch.long)
            lengths = torch.zeros(c.max_sentences, dtype=torch.long)
            for j, ids in enumerate(sents):
                out[j, :len(ids)] = torch.from_numpy(ids)
                lengths[j] = len(ids)
            return {"sentences": out, "lengths": lengths, "ends": torch.tensor(ends)}
        n = 1 + c.max_sentences * (t - 1)
        ids = np.concatenate([[EOS_ID]] + [s[:-1] for s in sents])  # the sentences' own ids, no EOS between
        owner = np.concatenate([[-1]] + [np.full(len(s) - 1, j) for j, s in enumerate(sents)])
        x1 = torch.full((n,), PAD_ID, dtype=torch.long)
        x1[:len(ids)] = torch.from_numpy(ids.astype(np.int64))
        item = {"x1": x1, "valid": torch.arange(n) < len(ids)}
        if self.sentence_ids:
            item["sentence_id"] = torch.full((n,), -1, dtype=torch.long)
            item["sentence_id"][:len(owner)] = torch.from_numpy(owner.astype(np.int64))
        return item


def trimmed(batch: list[dict]) -> dict:
    """Collate, then cut the padding every row shares (a batch costs its longest item, not the limit)."""
    out = torch.utils.data.default_collate(batch)
    if "length" in out:
        out["tokens"] = out["tokens"][:, :int(out["length"].max())]
    elif "lengths" in out:
        out["sentences"] = out["sentences"][:, :int((out["lengths"] > 0).sum(1).max()), :int(out["lengths"].max())]
        out["lengths"] = out["lengths"][:, :out["sentences"].shape[1]]
    else:
        n = int(out["valid"].sum(1).max())
        out = {k: v[:, :n] for k, v in out.items()}
    return out


class StdlibProseDataModule(L.LightningDataModule):
    """Args:
        view: sentences (autoencoder) | documents (sentence LM) | tokens (token baseline).
        cache_dir: where the tokenizer and arrays are cached.
        vocab_size: BPE vocabulary, special tokens (<|pad|>, <|eos|>, <|mask|>, the code corpus's) first.
        max_sentence_len: tokens a sentence holds, its EOS included; longer ones are cut into pieces.
        max_sentences: sentences a document chunk holds; longer documents are served as chunks.
        held_out_per_mille: files held out for val and for test, each, per 1000.
        batch_size: items per step; val_items: val items scored at each validation.
    """

    card = DataCard("python-stdlib-prose",
                    "docstrings and comments of the Python standard library installed with the interpreter",
                    PSF)

    def __init__(self, view: str = "sentences", cache_dir: str = ".cache/stdlib_prose", vocab_size: int = 4096,
                 max_sentence_len: int = 32, max_sentences: int = 32, held_out_per_mille: int = 50,
                 batch_size: int = 64, val_items: int = 256, seed: int = 0, debug: bool = False):
        super().__init__()
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}; one of {VIEWS}")
        if max_sentence_len < 2 or max_sentences < 1:
            raise ValueError("max_sentence_len must be >= 2 (a token and EOS) and max_sentences >= 1")
        self.view, self.cache_dir, self.vocab_size = view, Path(cache_dir), vocab_size
        self.max_sentence_len, self.max_sentences = max_sentence_len, max_sentences
        self.held_out_per_mille, self.batch_size, self.val_items = held_out_per_mille, batch_size, val_items
        self.seed, self.debug = seed, debug
        self.corpora: dict[str, ProseCorpus] = {}

    @property
    def data_dir(self) -> Path:
        py = f"py{sys.version_info.major}{sys.version_info.minor}"
        name = f"{py}-f{FORMAT}-v{self.vocab_size}-held{self.held_out_per_mille}"
        return self.cache_dir / (name + "-debug" if self.debug else name)

    @property
    def tokenizer_path(self) -> Path:
        return self.data_dir / TOKENIZER_FILE

    def prepare_data(self) -> None:
        done = self.data_dir / "stats.json"
        if done.is_file():
            return
        with cache_lock(self.data_dir):
            if done.is_file():
                return
            with atomic_dir(self.data_dir) as tmp:
                docs = read_documents(self.held_out_per_mille, DEBUG_FILES if self.debug else None)
                cut = {split: [split_sentences(d) for d in texts] for split, texts in docs.items()}
                tok = train_tokenizer([s for doc in cut["train"] for s in doc], self.vocab_size)
                stats = {"python": sys.version.split()[0], "vocab_size": self.vocab_size,
                         "special_tokens": SPECIAL_TOKENS}
                for split in SPLITS:
                    arrays = encode_split(tok, cut[split])
                    for name, array in arrays.items():
                        np.save(tmp / f"{split}_{name}.npy", array)
                    lengths = np.diff(arrays["sentence_offsets"])
                    stats[split] = {"documents": len(cut[split]), "sentences": len(lengths),
                                    "tokens": int(lengths.sum()),
                                    "chars": sum(len(s) for doc in cut[split] for s in doc),
                                    "tokens_per_sentence": {q: float(np.percentile(lengths, p)) if len(lengths) else 0.0
                                                            for q, p in (("p10", 10), ("p50", 50), ("p90", 90),
                                                                         ("p99", 99), ("max", 100))},
                                    "mean_tokens_per_sentence": float(lengths.mean()) if len(lengths) else 0.0}
                tok.save(str(tmp / TOKENIZER_FILE))
                (tmp / "stats.json").write_text(json.dumps(stats, indent=2))

    def stats(self) -> dict:
        return json.loads((self.data_dir / "stats.json").read_text())

    def corpus(self, split: str) -> ProseCorpus:
        if split not in self.corpora:
            arrays = {name: np.load(self.data_dir / f"{split}_{name}.npy", allow_pickle=False)
                      for name in ("tokens", "sentence_offsets", "document_offsets")}
            self.corpora[split] = ProseCorpus(arrays, self.max_sentence_len, self.max_sentences)
        return self.corpora[split]

    def dataset(self, split: str, view: str | None = None, sentence_ids: bool = False) -> ProseView:
        return ProseView(self.corpus(split), view or self.view, sentence_ids)

    def setup(self, stage: str | None = None) -> None:
        for split in ("train", "val"):
            self.corpus(split)

    def train_dataloader(self) -> DataLoader:
        ds = self.dataset("train")
        trainer = self.trainer
        sampler = StepBatchSampler(len(ds), self.batch_size, self.seed,
                                   start_step=trainer.global_step if trainer else 0,
                                   rank=trainer.global_rank if trainer else 0,
                                   world_size=trainer.world_size if trainer else 1)
        return DataLoader(ds, batch_sampler=sampler, collate_fn=trimmed)

    def val_dataloader(self) -> DataLoader:
        ds = self.dataset("val")
        subset = torch.utils.data.Subset(ds, range(min(self.val_items, len(ds))))
        return DataLoader(subset, batch_size=self.batch_size, collate_fn=trimmed)

    def pretrained_files(self) -> dict[str, Path]:
        """Files an export copies next to the weights: the tokenizer (the pipeline encodes prompts)."""
        return {TOKENIZER_FILE: self.tokenizer_path}

