"""Code completion: prompt text in, completion text out, with a masked-diffusion LM (CodePipeline)
or its autoregressive baseline (ARCodePipeline)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch

from zoo.checks import MAX_BATCH, check_bool, check_int
from zoo.objectives.autoregressive import ar_sample
from zoo.objectives.masked_sampling import sample
from zoo.pipeline import Pipeline
from zoo.pretrained import CheckpointError

TOKENIZER_FILE = "tokenizer.json"


@dataclass
class CodeOutput:
    texts: list[str]  # completions, cut at the first EOS
    tokens: torch.Tensor  # (B, G) generated ids
    nfe: int  # network evaluations
    seconds: float  # wall time of the call
    prompts: list[str] = field(default_factory=list)  # the prompt of each row ("" without one)
    suffix: str = ".py"  # the saved samples' file suffix (".txt" for a prose model)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens.numel() / max(self.seconds, 1e-9)

    def rows(self) -> list[tuple[str, str]]:
        """(prompt, completion) of each sample."""
        return list(zip(self.prompts or [""] * len(self.texts), self.texts))

    def describe(self) -> list[str]:
        """What recipes/sample.py prints: each prompt with its completion."""
        lines = []
        for i, (prompt, text) in enumerate(self.rows()):
            lines.append(f"--- sample {i} ---\n{prompt}{text}")
            if not text.strip():  # blank lines are easy to miss in a terminal
                lines.append(f"(the completion is whitespace only: {text!r})")
        return lines

    def save(self, out_dir: Path) -> Path:
        """Each prompt + completion as sample_<i><suffix> (.py for code); returns the folder."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        for i, (prompt, text) in enumerate(self.rows()):
            (out_dir / f"sample_{i:03d}{self.suffix}").write_text(prompt + text)
        return out_dir


def prompt_rows(prompt: str | list[str] | None, rows: int) -> list[str]:
    """The prompt of each of ``rows`` outputs, as the caller gave it."""
    if prompt is None or isinstance(prompt, str):
        return [prompt or ""] * rows
    return list(prompt)


def special_ids(tokenizer) -> tuple[int, int, int]:
    """(mask_id, eos_id, pad_id), read from the tokenizer itself: the one place they are defined."""
    ids = [tokenizer.token_to_id(t) for t in ("<|mask|>", "<|eos|>", "<|pad|>")]
    if None in ids:
        raise ValueError("the tokenizer lacks the special tokens <|mask|>, <|eos|> and <|pad|>")
    return tuple(ids)


class CodePipeline(Pipeline):
    """Masked-diffusion completion.
    Args: net, tokenizer (a ``tokenizers.Tokenizer``; the special ids come from it)."""

    default_task = "bpt"
    sample_suffix = ".py"  # what recipes/sample.py names the saved samples: the text is code
    settings = ("gen_length", "policy", "temperature", "threshold")  # config.json's sampling defaults

    def __init__(self, net, tokenizer, meta: dict | None = None, **pipeline_kwargs):
        super().__init__(net, meta=meta, **pipeline_kwargs)
        self.tokenizer = tokenizer
        self.mask_id, self.eos_id, self.pad_id = special_ids(tokenizer)

    @classmethod
    def load_components(cls, directory: Path, net) -> dict:
        from tokenizers import Tokenizer

        path = directory / TOKENIZER_FILE
        if not path.is_file():
            raise CheckpointError(f"{path}: missing; this checkpoint needs its tokenizer")
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as e:  # the tokenizers library raises a bare Exception on a bad file
            raise CheckpointError(f"{path}: cannot be read as a tokenizer ({e})") from None
        if tokenizer.get_vocab_size() != net.vocab_size:
            raise CheckpointError(f"{path}: {tokenizer.get_vocab_size()} tokens, but the network has "
                                  f"{net.vocab_size}: not this model's tokenizer")
        try:
            special_ids(tokenizer)
        except ValueError as e:
            raise CheckpointError(f"{path}: {e}") from None
        return {"tokenizer": tokenizer}

    def save_components(self, directory: Path) -> None:
        self.tokenizer.save(str(directory / TOKENIZER_FILE))

    def encode_prompts(self, prompts: list[str], heal: bool = False) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """Left-padded ids (B, P), validity (B, P), and per row the text token healing took off the
        prompt's end ("" without ``heal``). An empty prompt is ``empty_prompt_ids``.

        Token healing: BPE merges a newline with the next line's indentation, so a prompt ending in
        "\n" ends on a token the model rarely saw last; healing drops the prompt's last token and
        makes the first generated token start with its text (``healing_hook``)."""
        ids = [self.tokenizer.encode(p).ids or self.empty_prompt_ids() for p in prompts]
        removed = [""] * len(ids)
        if heal:
            for row, seq in enumerate(ids):
                if len(seq) > 1:
                    removed[row] = self.tokenizer.decode(seq[-1:])
                    ids[row] = seq[:-1]
        width = max(len(i) for i in ids)
        tokens = torch.full((len(ids), width), self.pad_id, dtype=torch.long)
        valid = torch.zeros(len(ids), width, dtype=torch.bool)
        for row, seq in enumerate(ids):
            if seq:
                tokens[row, width - len(seq):] = torch.tensor(seq)
                valid[row, width - len(seq):] = True
        return tokens, valid, removed

    @cached_property
    def token_texts(self) -> list[str]:
        """Each token id's text (for token healing's prefix test)."""
        return [self.tokenizer.decode([i]) for i in range(self.tokenizer.get_vocab_size())]

    def healing_hook(self, removed: list[str]):
        """logits_hook for the samplers: the first answer token of row b must start with removed[b]."""
        if not any(removed):
            return None
        allowed = torch.ones(len(removed), len(self.token_texts), dtype=torch.bool)
        for row, text in enumerate(removed):
            if text:
                allowed[row] = torch.tensor([t.startswith(text) for t in self.token_texts])

        def hook(offset: int, logits: torch.Tensor) -> torch.Tensor:
            if offset != 0:
                return logits
            first = logits if logits.dim() == 2 else logits[:, 0]  # AR (B, V) / a masked block (B, bl, V)
            first.masked_fill_(~allowed.to(logits.device), -torch.inf)
            return logits

        return hook

    def unheal(self, texts: list[str], removed: list[str]) -> list[str]:
        """Completions without the text healing moved from the prompt into them."""
        if not any(removed):  # no healing (or no prompt: no row lost a token)
            return texts
        return [t[len(r):] if r and t.startswith(r) else t for t, r in zip(texts, removed, strict=True)]

    def empty_prompt_ids(self) -> list[int]:
        """What an empty prompt is: nothing for a plain diffusion model (it then generates
        unconditionally); <|eos|> for a model whose logit at i predicts token i + 1 (an AR model, or a
        diffusion model adapted from one), as its training windows start after an EOS."""
        return [self.eos_id] if getattr(self.net, "predicts_next", False) else []

    def decode(self, ids: torch.Tensor) -> list[str]:
        texts = []
        for row in ids.tolist():
            if self.eos_id in row:
                row = row[:row.index(self.eos_id)]
            texts.append(self.tokenizer.decode([i for i in row if i not in (self.mask_id, self.pad_id)]))
        return texts

    def _prompts(self, prompt, batch_size, heal: bool = False):
        """(ids (B, P) or None, valid (B, P) or None, removed texts) on the pipeline's device."""
        check_bool("heal", heal)
        check_int("batch_size", batch_size, low=1, high=MAX_BATCH, optional=True)
        if prompt is not None and not isinstance(prompt, str) and (
                not isinstance(prompt, (list, tuple)) or not all(isinstance(p, str) for p in prompt)):
            raise ValueError(f"prompt: expected a string or a list of strings, got {type(prompt).__name__}")
        if prompt is None and self.empty_prompt_ids():  # this model always starts from a token
            prompt = ""
        if isinstance(prompt, str):
            prompt = [prompt] * (batch_size or 1)
        elif prompt is not None and batch_size is not None and batch_size != len(prompt):
            raise ValueError(f"batch_size={batch_size} differs from the {len(prompt)} prompts")
        if prompt is None:
            return None, None, []
        if not prompt:
            raise ValueError("prompt is an empty list")
        ids, valid, removed = self.encode_prompts(prompt, heal)
        ids, valid = ids.to(self.device), valid.to(self.device)
        return ids, (None if valid.all() else valid), removed  # no padding: skip the attention mask

    @torch.no_grad()
    def __call__(self, prompt: str | list[str] | None = None, batch_size: int | None = None,
                 steps: int | None = None, gen_length: int | None = None, block_length: int | None = None,
                 policy: str | None = None, temperature: float | None = None, threshold: float | None = None,
                 x_init: torch.Tensor | None = None, eos_fill: bool = True, defer_eos: bool = False,
                 cache: str | None = None, refresh_every: int | None = None, heal: bool = False,
                 generator: torch.Generator | None = None) -> CodeOutput:
        """Complete ``prompt`` (one string or a list) with ``gen_length`` tokens.

        steps defaults to gen_length (one token per step); see zoo.objectives.masked_sampling for
        policy, threshold, block_length, x_init, eos_fill, defer_eos and cache ("prefix" / "dual").
        With a single prompt string, batch_size repeats it (useful with temperature > 0). ``heal``: token
        healing at the prompt's end (``encode_prompts``). gen_length, policy, temperature and threshold
        default to the checkpoint's config.json.
        """
        start = time.perf_counter()
        gen_length, policy = self.setting("gen_length", gen_length), self.setting("policy", policy)
        temperature, threshold = self.setting("temperature", temperature), self.setting("threshold", threshold)
        ids, valid, removed = self._prompts(prompt, batch_size, heal)
        out = sample(self.net, mask_id=self.mask_id, prompt=ids, prompt_valid=valid,
                     batch_size=None if ids is not None else (batch_size or 1),
                     gen_length=gen_length, steps=gen_length if steps is None else steps,
                     block_length=block_length, policy=policy, temperature=temperature,
                     threshold=threshold, x_init=x_init, eos_id=self.eos_id, eos_fill=eos_fill,
                     defer_eos=defer_eos, cache=cache, refresh_every=refresh_every,
                     max_seq_len=self.net.max_seq_len, logits_hook=self.healing_hook(removed),
                     generator=generator, device=self.device)
        gen = out.generated.cpu()
        return CodeOutput(texts=self.unheal(self.decode(gen), removed), tokens=gen, nfe=out.nfe,
                          seconds=time.perf_counter() - start, prompts=prompt_rows(prompt, len(gen)),
                          suffix=self.sample_suffix)


class ARCodePipeline(CodePipeline):
    """Autoregressive completion with a KV cache: one token per network evaluation."""

    settings = ("gen_length", "temperature")

    @torch.no_grad()
    def __call__(self, prompt: str | list[str] | None = None, batch_size: int | None = None,
                 steps: int | None = None, gen_length: int | None = None, temperature: float | None = None,
                 x_init: torch.Tensor | None = None, heal: bool = False,
                 generator: torch.Generator | None = None) -> CodeOutput:
        """Complete ``prompt`` with up to ``gen_length`` tokens, stopping once every row has ended;
        ``heal``: token healing at the prompt's end (``encode_prompts``). gen_length and temperature
        default to the checkpoint's config.json."""
        gen_length, temperature = self.setting("gen_length", gen_length), self.setting("temperature", temperature)
        if x_init is not None:
            raise ValueError("an autoregressive model cannot infill: x_init is not supported")
        if steps is not None and steps != gen_length:
            raise ValueError(f"steps={steps}: an autoregressive model decodes one token per step "
                             f"(steps = gen_length = {gen_length})")
        start = time.perf_counter()
        ids, valid, removed = self._prompts(prompt, batch_size, heal)
        out = ar_sample(
            self.net, eos_id=self.eos_id, prompt=ids, prompt_valid=valid, batch_size=batch_size or 1,
            bos_id=self.eos_id, gen_length=gen_length, temperature=temperature, max_seq_len=self.net.max_seq_len,
            logits_hook=self.healing_hook(removed), generator=generator, device=self.device)
        gen = out.generated.cpu()
        return CodeOutput(texts=self.unheal(self.decode(gen), removed), tokens=gen, nfe=out.nfe,
                          seconds=time.perf_counter() - start, prompts=prompt_rows(prompt, len(gen)),
                          suffix=self.sample_suffix)
