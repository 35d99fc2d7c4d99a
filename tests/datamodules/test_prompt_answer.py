"""Prompt/answer pairs from JSONL: LLaDA's SFT rows in a public folder's tokens, and every bad line named."""

import json

import pytest
import torch

from datamodules.prompt_answer import PromptAnswerDataModule
from models.dllm_code.tiny_public import write_tiny_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_tiny_folder(tmp_path_factory.mktemp("pa") / "dream", "dream")


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_rows_fix_the_prompt_and_pad_with_eos(folder, tmp_path):
    from zoo.public_text import load_tokenizer

    path = write(tmp_path / "p.jsonl", [json.dumps({"prompt": "def f(x):\n", "answer": f"    return {i}\n"})
                                        for i in range(10)] + [""])
    dm = PromptAnswerDataModule(str(path), str(folder), seq_len=32, batch_size=2, val_fraction=0.2)
    dm.setup()
    tok = load_tokenizer(folder)
    eos = tok.token_to_id("<|endoftext|>")
    train, val = dm.data["train"], dm.data["test"]
    assert train["x1"].shape == (8, 32) and val["x1"].shape == (2, 32)
    prompt = tok.encode("def f(x):\n").ids
    row = train["x1"][0]
    assert row[:len(prompt)].tolist() == prompt and train["fixed"][0].sum() == len(prompt)
    end = int(train["valid"][0].sum())
    assert row[end - 1] == eos and (row[end:] == eos).all()  # the answer's EOS, then EOS padding
    assert tok.decode(row[len(prompt):end - 1].tolist()) == "    return 0\n"
    assert dm.stats()["train"]["rows"] == 8


@pytest.mark.parametrize("line,words", [
    ("{not json", ["p.jsonl:2", "not JSON"]),
    (json.dumps({"prompt": "x"}), ["p.jsonl:2", "answer"]),
    (json.dumps({"prompt": 3, "answer": "y"}), ["p.jsonl:2", "prompt"]),
    (json.dumps(["prompt", "answer"]), ["p.jsonl:2", "object"]),
])
def test_a_bad_line_is_named(folder, tmp_path, line, words):
    path = write(tmp_path / "p.jsonl", [json.dumps({"prompt": "a", "answer": "b"}), line, json.dumps({"prompt": "c", "answer": "d"})])
    with pytest.raises(ValueError) as error:
        PromptAnswerDataModule(str(path), str(folder)).setup()
    for word in words:
        assert word in str(error.value)


def test_a_prompt_longer_than_the_context_is_named(folder, tmp_path):
    long = json.dumps({"prompt": "def f(x):\n" * 40, "answer": "y"})
    path = write(tmp_path / "p.jsonl", [json.dumps({"prompt": "a", "answer": "b"}), long, json.dumps({"prompt": "c", "answer": "d"})])
    with pytest.raises(ValueError, match="pair 2: the prompt is"):
        PromptAnswerDataModule(str(path), str(folder), seq_len=16, val_fraction=0.3).setup()
