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
from dataclasses import dataclass
from pathlib import Path

from datamodules.stdlib_code import corpus_files, split_of


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
