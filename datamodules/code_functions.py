"""Function-level pairs from Python source: prompt = a function up to and including its docstring,
answer = its body. The shape of a HumanEval problem, taken from the standard library.

Every function and method with a docstring and a body beyond it becomes one pair, dedented so its
``def`` sits at column 0 (a method reads like a HumanEval function). The prompt keeps its decorators
and ends with the docstring's newline; the body starts on the next line, indented. Files are split
into train and held-out exactly as the file-level LM data is (``stdlib_code.split_of``), so no
held-out function comes from a file the LM or the SFT trained on.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import torch

from datamodules.base import DataCard, PSF, TensorDataModule, cached_tensors
from datamodules.stdlib_code import DEBUG_FILES, TOKENIZER_FILE, corpus_files, split_of


@dataclass(frozen=True)
class FunctionPair:
    name: str  # qualified by nesting: Class.method, outer.inner
    prompt: str  # decorators, signature and docstring, ending in "\n"
    body: str  # the statements after the docstring, each line indented, ending in "\n"
    path: str = ""  # the file, relative to the corpus root
    line: int = 0  # of the def in that file


def _definitions(tree: ast.AST, prefix: str = ""):
    """(qualified name, node) of every function and method, nested ones included, in source order."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = prefix + node.name
            if not isinstance(node, ast.ClassDef):
                yield name, node
            yield from _definitions(node, name + ".")
        else:
            yield from _definitions(node, prefix)


def extract_functions(source: str, path: str = "") -> list[FunctionPair]:
    """Every documented function of ``source`` with a body beyond its docstring, as a FunctionPair.
    Skipped: functions without a docstring, whose body is the docstring alone, or whose lines cannot
    be dedented to a module that parses (a string literal reaching left of the ``def``). A file that
    does not parse gives no pairs."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    lines = source.splitlines(keepends=True)
    pairs = []
    for name, node in _definitions(tree):
        if ast.get_docstring(node, clean=False) is None or len(node.body) < 2:
            continue
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        doc_end, last = node.body[0].end_lineno, node.end_lineno
        if node.body[1].lineno <= doc_end:  # `"""doc"""; x = 1` on one line: no clean boundary
            continue
        indent = node.col_offset
        block = lines[first - 1:last]
        if any(line.strip() and line[:indent].strip() for line in block):
            continue
        block = [line[indent:] if line.strip() else line.lstrip(" \t") for line in block]
        if block and not block[-1].endswith("\n"):
            block[-1] += "\n"
        cut = doc_end - first + 1
        prompt, body = "".join(block[:cut]), "".join(block[cut:])
        try:
            ast.parse(prompt + body)
        except SyntaxError:
            continue
        pairs.append(FunctionPair(name, prompt, body, path, node.lineno))
    return pairs


def function_pairs(root: Path | None = None, val_per_mille: int = 20, max_files: int | None = None,
                   splits: tuple[str, ...] = ("train", "val")) -> dict[str, list[FunctionPair]]:
    """{"train": [...], "val": [...]} over the standard library (or ``root``): the files of
    ``stdlib_code.corpus_files``, split by path as the LM data is; only ``splits`` are parsed (the
    held-out set alone takes seconds, not the minutes of the whole library)."""
    out = {split: [] for split in splits}
    for relative, text in corpus_files(root, max_files):
        split = split_of(relative, val_per_mille)
        if split in out:
            out[split] += extract_functions(text, relative)
    return out


def bundled_pip_wheel(stdlib: Path | None = None) -> Path:
    """The pip wheel the interpreter ships for ``ensurepip`` (``<stdlib>/ensurepip/_bundled/pip-*.whl``):
    code that comes with every install of this Python and that no model here trains on (the corpus
    reads ``*.py`` files only)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"]) if stdlib is None else Path(stdlib)
    wheels = sorted((stdlib / "ensurepip" / "_bundled").glob("pip-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"no pip wheel in {stdlib / 'ensurepip' / '_bundled'}: this interpreter was "
                                "built without ensurepip's wheels, so the bodies task has no pip functions "
                                "(source='stdlib' still works)")
    return wheels[-1]


def is_copy(pair: FunctionPair, seen_text: str) -> bool:
    """Whether the function is (near enough) a copy of code in ``seen_text``: its docstring (40 or more
    characters) or its body (3 or more lines) occurs there verbatim. Shorter ones are not tested: a
    one-line ``return self._name`` occurs in any large corpus without being copied from it."""
    doc = ast.get_docstring(ast.parse(pair.prompt + pair.body).body[0], clean=False).strip()
    body = pair.body.strip()
    return (len(doc) >= 40 and doc in seen_text) or (body.count("\n") >= 2 and body in seen_text)


def wheel_functions(wheel: Path, package: str = "pip", skip: tuple[str, ...] = ("_vendor",),
                    seen_text: str = "") -> list[FunctionPair]:
    """The documented functions of ``package``'s own modules in a wheel (read from the zip; nothing is
    imported or installed): modules under a ``skip`` folder (vendored third-party code) are left out,
    and so is every function ``is_copy`` finds in ``seen_text`` (the LM's training text). Ordered by a
    hash of (path, name), so the first n spread over the package's modules, the same on every machine."""
    import zipfile

    pairs = []
    with zipfile.ZipFile(wheel) as archive:
        for name in sorted(archive.namelist()):
            parts = name.split("/")
            if parts[0] != package or not name.endswith(".py") or any(part in skip for part in parts):
                continue
            text = archive.read(name).decode("utf-8", errors="replace")
            pairs += [f for f in extract_functions(text, name) if not is_copy(f, seen_text)]
    return sorted(pairs, key=lambda f: hashlib.sha1(f"{f.path}:{f.name}".encode()).hexdigest())


@functools.lru_cache(maxsize=2)  # the copy check reads the corpus: ~20 s, once per process (an ablation scores 6 models)
def pip_functions(val_per_mille: int = 20) -> tuple[FunctionPair, ...]:
    """``wheel_functions`` of the bundled pip wheel, with the copies of the LM's training split
    (``val_per_mille`` as its data used) dropped."""
    seen = "\n".join(text for path, text in corpus_files() if split_of(path, val_per_mille) == "train")
    return tuple(wheel_functions(bundled_pip_wheel(), seen_text=seen))


class FunctionSFTDataModule(TensorDataModule):
    """Supervised fine-tuning rows from the function pairs: [prompt, body, EOS, padding] left-aligned
    in ``seq_len`` tokens, as {"x1" (N, L), "fixed" (N, L) True on the prompt, "valid" (N, L) False on
    the padding}. The prompt and the body are tokenised apart, as a prompt is at sampling time (so
    the model learns to start a body after a prompt that ends in a bare newline token). A pair that
    does not fit is dropped (counted in ``stats()``). The held-out split is the validation set.

    Args:
        tokenizer: the pretrained model's folder (its tokenizer.json is used, so ids match its weights).
        vocab_size: the network's vocabulary, checked against the tokenizer's.
        seq_len: row length (the model's context at most).
        val_per_mille: the file split (must be the LM data's, so held-out files stay held out).
        cache_dir: the tokenised rows, cached by (tokenizer, seq_len, split, debug).
    """

    card = DataCard("python-stdlib-functions",
                    "function / body pairs cut from the Python standard library installed with the interpreter",
                    PSF)

    def __init__(self, tokenizer: str = "checkpoints/dllm_code-tiny", seq_len: int = 512, batch_size: int = 16,
                 val_per_mille: int = 20, cache_dir: str = ".cache/code_functions", seed: int = 0,
                 vocab_size: int | None = None, debug: bool = False):
        super().__init__(batch_size, seed, debug)
        self.tokenizer, self.seq_len, self.val_per_mille = tokenizer, seq_len, val_per_mille
        self.vocab_size = vocab_size  # when given, checked against the tokenizer (the network's size)
        self.cache_dir = Path(cache_dir)
        self.dropped: dict[str, int] = {}

    def tokenizer_file(self) -> Path:
        from zoo.pretrained import resolve

        return resolve(self.tokenizer) / TOKENIZER_FILE

    def cache_path(self) -> Path:
        digest = hashlib.sha256(self.tokenizer_file().read_bytes()).hexdigest()[:12]
        name = f"{digest}-L{self.seq_len}-val{self.val_per_mille}{'-debug' if self.debug else ''}.safetensors"
        return self.cache_dir / name

    def rows(self, pairs: list[FunctionPair], tok, eos_id: int, pad_id: int) -> tuple[dict, int]:
        """(tensors, pairs dropped for length)."""
        x1 = torch.full((len(pairs), self.seq_len), pad_id, dtype=torch.int32)
        fixed = torch.zeros(len(pairs), self.seq_len, dtype=torch.bool)
        valid = torch.zeros(len(pairs), self.seq_len, dtype=torch.bool)
        n = 0
        for pair in pairs:
            prompt, body = tok.encode(pair.prompt).ids, tok.encode(pair.body).ids
            seq = prompt + body + [eos_id]
            if len(seq) > self.seq_len:
                continue
            x1[n, :len(seq)] = torch.tensor(seq, dtype=torch.int32)
            fixed[n, :len(prompt)] = True
            valid[n, :len(seq)] = True
            n += 1
        return {"x1": x1[:n], "fixed": fixed[:n], "valid": valid[:n]}, len(pairs) - n

    def build(self) -> dict[str, torch.Tensor]:
        """Every split's rows (its cache entry's tensors)."""
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(self.tokenizer_file()))
        if self.vocab_size is not None and tok.get_vocab_size() != self.vocab_size:
            raise ValueError(f"vocab_size={self.vocab_size}, but {self.tokenizer_file()} has "
                             f"{tok.get_vocab_size()} tokens")
        eos_id, pad_id = tok.token_to_id("<|eos|>"), tok.token_to_id("<|pad|>")
        splits = function_pairs(val_per_mille=self.val_per_mille, max_files=DEBUG_FILES if self.debug else None)
        tensors = {}
        for split, pairs in splits.items():
            rows, dropped = self.rows(pairs, tok, eos_id, pad_id)
            tensors.update({f"{split}/{k}": v for k, v in rows.items()})
            tensors[f"{split}/dropped"] = torch.tensor([dropped])
        return tensors

    def prepare_data(self) -> None:
        cached_tensors(self.cache_path(), self.build)

    def setup(self, stage: str | None = None) -> None:
        if self.data:
            return
        tensors = cached_tensors(self.cache_path(), self.build)
        for split, name in (("train", "train"), ("val", "test")):  # the held-out split validates
            self.data[name] = {k: tensors[f"{split}/{k}"] for k in ("x1", "fixed", "valid")}
            self.data[name]["x1"] = self.data[name]["x1"].long()
            self.dropped[split] = int(tensors[f"{split}/dropped"])

    def stats(self) -> dict:
        return {split: {"rows": int(d["x1"].shape[0]), "prompt_tokens": int(d["fixed"].sum()),
                        "answer_tokens": int((d["valid"] & ~d["fixed"]).sum())} for split, d in self.data.items()
                } | {"dropped_too_long": self.dropped, "seq_len": self.seq_len}

    def pretrained_files(self) -> dict[str, Path]:
        return {TOKENIZER_FILE: self.tokenizer_file()}
