"""Function-level pairs: prompt = a function up to and including its docstring, answer = its body."""

import textwrap
import zipfile

import pytest

from datamodules.code_functions import bundled_pip_wheel, extract_functions, function_pairs, wheel_functions
from datamodules.stdlib_code import split_of

SOURCE = textwrap.dedent('''\
    import os


    def add(a, b):
        """Return a + b."""
        return a + b


    def undocumented(x):
        return x


    def only_doc():
        """Nothing after me."""


    class Box:
        """A box."""

        @property
        def size(self):
            """The size.

            In units.
            """
            if self._size is None:
                return 0
            return self._size

        async def fetch(self):
            """Fetch it."""
            def inner(y):
                """Inner helper."""
                return y * 2
            return inner(3)


    def message():
        """Text that reaches column 0."""
        return """
    left"""
    ''')


def test_each_documented_function_becomes_one_pair_dedented_to_column_0():
    pairs = {p.name: p for p in extract_functions(SOURCE, "pkg/mod.py")}
    # undocumented and docstring-only functions are skipped; methods and nested functions count; a
    # top-level def's string at column 0 reaches no further left than the def itself
    assert sorted(pairs) == ["Box.fetch", "Box.fetch.inner", "Box.size", "add", "message"]
    assert pairs["message"].body == '    return """\nleft"""\n'
    add = pairs["add"]
    assert add.prompt == 'def add(a, b):\n    """Return a + b."""\n' and add.body == "    return a + b\n"
    assert add.path == "pkg/mod.py" and add.line == 4
    size = pairs["Box.size"]  # a method: its decorator kept, everything moved 4 columns left
    assert size.prompt.startswith("@property\ndef size(self):\n") and size.prompt.endswith('    """\n')
    assert size.body == "    if self._size is None:\n        return 0\n    return self._size\n"
    inner = pairs["Box.fetch.inner"]
    assert inner.prompt == 'def inner(y):\n    """Inner helper."""\n' and inner.body == "    return y * 2\n"
    assert pairs["Box.fetch"].prompt.startswith("async def fetch(self):")
    for p in pairs.values():  # prompt + body is a module that parses, the body indented under the def
        compile(p.prompt + p.body, p.name, "exec")
        assert p.body.startswith("    ") and p.prompt.endswith("\n")


def test_a_string_left_of_the_def_and_broken_files_give_no_pair():
    assert extract_functions("def broken(:\n") == []
    nested_text = 'class A:\n    def f(self):\n        """Doc."""\n        return """\nleft"""\n'
    assert extract_functions(nested_text) == []  # its string reaches left of the method's def


def test_files_are_split_as_the_lm_data_is(tmp_path):
    for name in ("a.py", "b.py", "c.py", "d.py", "e.py", "f.py"):
        (tmp_path / name).write_text(f'def {name[0]}():\n    """Doc."""\n    return 1\n')
    (tmp_path / "g.py").write_text('def a():\n    """Doc."""\n    return 1\n')  # a duplicate file: once
    splits = function_pairs(tmp_path, val_per_mille=500)
    for split, pairs in splits.items():
        assert all(split_of(p.path, 500) == split for p in pairs)
    assert sum(len(v) for v in splits.values()) == 6


def test_sft_rows_fix_the_prompt_and_end_the_answer_with_eos():
    import torch

    from datamodules.code_functions import FunctionPair, FunctionSFTDataModule
    from datamodules.stdlib_code import train_tokenizer
    from zoo.objectives import MaskedDiffusion

    tok = train_tokenizer([SOURCE] * 5, 300)
    pairs = [FunctionPair("add", 'def add(a, b):\n    """Return a + b."""\n', "    return a + b\n"),
             FunctionPair("long", "def long():\n", "    x = 1\n" * 40)]
    dm = FunctionSFTDataModule(seq_len=32)
    rows, dropped = dm.rows(pairs, tok, eos_id=1, pad_id=0)
    assert dropped == 1 and rows["x1"].shape == (1, 32)  # the long body does not fit: dropped
    prompt, body = tok.encode(pairs[0].prompt).ids, tok.encode(pairs[0].body).ids
    n_p, n = len(prompt), len(prompt) + len(body) + 1
    assert rows["x1"][0, :n].tolist() == prompt + body + [1]
    assert rows["fixed"][0].tolist() == [True] * n_p + [False] * (32 - n_p)
    assert rows["valid"][0].tolist() == [True] * n + [False] * (32 - n)
    # LLaDA's SFT corruption never masks the prompt, at any time
    md = MaskedDiffusion(mask_id=2, pad_mode="eos", eos_id=1)
    x1 = rows["x1"].long().repeat(64, 1)
    fixed, valid = rows["fixed"].repeat(64, 1), rows["valid"].repeat(64, 1)
    x1_, free, _ = md._prepare(x1, fixed, valid)
    xt, masked = md.corrupt(x1_, torch.linspace(0.01, 0.999, 64), free, torch.Generator().manual_seed(0))
    assert not (masked & fixed).any() and masked[:, n_p:].any()
    assert (x1_[:, n:] == 1).all()  # the padding after the answer is EOS to predict


def _documented(name: str, doc: str, body: str) -> str:
    return f'def {name}(x):\n    """{doc}"""\n{body}'


def test_wheel_functions_skip_vendored_code_other_packages_and_copies(tmp_path):
    long_doc = "Resolve the requirement against every index the finder was given."
    copied_body = "    y = x + 1\n    y = y * 2\n    return y - 3\n"
    wheel = tmp_path / "pip-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("pip/own.py", "\n".join([
            _documented("kept", "Return x.", "    return x\n"),
            _documented("short_body_seen", "Short.", "    return x\n"),  # one line: not tested, kept
            _documented("doc_copied", long_doc, "    return x + 1\n"),
            _documented("body_copied", "Another docstring.", copied_body)]))
        z.writestr("pip/_vendor/lib.py", _documented("vendored", "Vendored.", "    return x\n"))
        z.writestr("other/mod.py", _documented("other", "Other package.", "    return x\n"))
        z.writestr("pip/data.txt", _documented("not_python", "Text.", "    return x\n"))
    seen = f"def a():\n    '''{long_doc}'''\n    return x\n\ndef b():\n{copied_body}"
    assert sorted(f.name for f in wheel_functions(wheel, seen_text=seen)) == ["kept", "short_body_seen"]
    everything = wheel_functions(wheel)
    assert sorted(f.name for f in everything) == ["body_copied", "doc_copied", "kept", "short_body_seen"]
    assert all(f.path == "pip/own.py" for f in everything)
    assert [f.name for f in wheel_functions(wheel)] == [f.name for f in everything]  # a fixed order


def test_the_bundled_pip_wheel_is_found_or_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="ensurepip"):
        bundled_pip_wheel(tmp_path)
    (tmp_path / "ensurepip" / "_bundled").mkdir(parents=True)
    wheel = tmp_path / "ensurepip" / "_bundled" / "pip-23.2.1-py3-none-any.whl"
    wheel.write_bytes(b"")
    assert bundled_pip_wheel(tmp_path) == wheel


@pytest.mark.slow  # reads the whole corpus for the copy check (~20 s)
def test_the_pip_source_holds_enough_functions_and_no_vendored_code():
    from datamodules.code_functions import pip_functions

    pairs = pip_functions()
    assert len(pairs) >= 400  # 546 from pip 23.2.1 (Python 3.11.7)
    assert all(p.path.startswith("pip/") and "/_vendor/" not in p.path for p in pairs)
    assert len({(p.path, p.name, p.line) for p in pairs}) == len(pairs)
