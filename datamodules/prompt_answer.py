"""Supervised fine-tuning pairs from a JSONL file, tokenised with a public checkpoint folder's tokenizer.

The format, one JSON object a line (blank lines skipped):

    {"prompt": "def add(a, b):\n", "answer": "    return a + b\n"}

Rows are LLaDA's SFT rows: [prompt, answer, EOS, EOS padding] in ``seq_len`` tokens, as {"x1" (N, L),
"fixed" (N, L) True on the prompt, "valid" (N, L) False on the padding}; with the objective's
``pad_mode="eos"`` the padding becomes EOS targets, so the model learns where an answer ends. The prompt
and the answer are tokenised apart (as a prompt is at sampling time). The last ``val_fraction`` of the
lines validate. Every bad line is an error naming the file and the line: not JSON, a missing or
non-string field, a prompt that leaves no room for an answer; an answer cut by ``seq_len`` is dropped
and counted (``stats()``), as the function-body data does.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from datamodules.base import DataCard, TensorDataModule
from zoo.public import detect
from zoo.public_text import load_tokenizer, read_special_tokens


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """(prompt, answer) of every line, in order; a bad line raises a ValueError naming it."""
    if not path.is_file():
        raise ValueError(f"{path}: no such file (expected JSONL lines of {{\"prompt\": ..., \"answer\": ...}})")
    pairs = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{number}: not JSON ({e.msg})") from None
            if not isinstance(item, dict):
                raise ValueError(f"{path}:{number}: expected an object with \"prompt\" and \"answer\"")
            for key in ("prompt", "answer"):
                if not isinstance(item.get(key), str):
                    raise ValueError(f"{path}:{number}: \"{key}\" is missing or not a string")
            pairs.append((item["prompt"], item["answer"]))
    if not pairs:
        raise ValueError(f"{path}: no pairs")
    return pairs


class PromptAnswerDataModule(TensorDataModule):
    """Args:
        path: the JSONL file.
        folder: the public checkpoint folder whose tokenizer and EOS the rows use.
        seq_len: row length (at most the model's context).
        val_fraction: the share of lines (the last ones) that validate; at least one line each way.
    """

    card = DataCard("prompt-answer-jsonl",
                    "a JSONL file of prompt / answer pairs given by the user",
                    "the licence of that file")

    def __init__(self, path: str, folder: str, seq_len: int = 512, batch_size: int = 8, val_fraction: float = 0.1,
                 seed: int = 0, debug: bool = False):
        super().__init__(batch_size, seed, debug)
        self.path, self.folder, self.seq_len, self.val_fraction = Path(path), Path(folder), seq_len, val_fraction
        self.dropped: dict[str, int] = {}

    def rows(self, pairs: list[tuple[str, str]], first_line: int, tok, eos_id: int) -> tuple[dict, int]:
        x1 = torch.full((len(pairs), self.seq_len), eos_id, dtype=torch.long)  # LLaDA pads with EOS
        fixed = torch.zeros(len(pairs), self.seq_len, dtype=torch.bool)
        valid = torch.zeros(len(pairs), self.seq_len, dtype=torch.bool)
        n = 0
        for i, (prompt, answer) in enumerate(pairs):
            p, a = tok.encode(prompt).ids, tok.encode(answer, add_special_tokens=False).ids
            if len(p) >= self.seq_len:
                raise ValueError(f"{self.path}: pair {first_line + i}: the prompt is {len(p)} tokens, no room for an "
                                 f"answer in seq_len={self.seq_len}")
            seq = p + a + [eos_id]
            if len(seq) > self.seq_len:
                continue
            x1[n, :len(seq)] = torch.tensor(seq)
            fixed[n, :len(p)] = True
            valid[n, :len(seq)] = True
            n += 1
        return {"x1": x1[:n], "fixed": fixed[:n], "valid": valid[:n]}, len(pairs) - n

    def setup(self, stage: str | None = None) -> None:
        if self.data:
            return
        pairs = read_pairs(self.path)
        if len(pairs) < 2:
            raise ValueError(f"{self.path}: {len(pairs)} pair; at least 2 are needed (training and validation)")
        n_val = min(max(1, round(len(pairs) * self.val_fraction)), len(pairs) - 1)
        tok = load_tokenizer(self.folder)
        eos_id = read_special_tokens(self.folder, tok, detect(self.folder).mask_id).eos_id
        for split, chunk, first in (("train", pairs[:-n_val], 1), ("test", pairs[-n_val:], len(pairs) - n_val + 1)):
            self.data[split], self.dropped[split] = self.rows(chunk, first, tok, eos_id)
            if not len(self.data[split]["x1"]):
                raise ValueError(f"{self.path}: no {split} pair fits seq_len={self.seq_len}")

    def stats(self) -> dict:
        return {split: {"rows": int(d["x1"].shape[0]), "prompt_tokens": int(d["fixed"].sum()),
                        "answer_tokens": int((d["valid"] & ~d["fixed"]).sum())} for split, d in self.data.items()
                } | {"dropped_too_long": self.dropped, "seq_len": self.seq_len, "source": str(self.path)}

    def pretrained_files(self) -> dict[str, Path]:
        """The folder's tokenizer files, so that the zoo-format export samples as the folder does."""
        names = ("tokenizer.json", "tokenizer_config.json", "generation_config.json", "vocab.json", "merges.txt")
        return {name: self.folder / name for name in names if (self.folder / name).is_file()}
