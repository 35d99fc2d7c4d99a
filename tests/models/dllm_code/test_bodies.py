"""The bodies eval's measures on known completions, and the task end to end on a tiny model."""

import pytest
import torch

import zoo
from datamodules.code_functions import FunctionPair
from datamodules.stdlib_code import train_tokenizer
from models.dllm_code import bodies as bodies_module
from models.dllm_code.bodies import bodies, body_metrics, first_line
from models.text_kit.pipeline import ARCodePipeline

PROMPT = 'def add(a, b):\n    """Return a + b."""\n'
REFERENCE = "    return a + b\n"


def test_an_exact_body_scores_everything():
    m = body_metrics(PROMPT, "    return a + b\n", REFERENCE)
    assert m == {"parses": True, "indented": True, "first_line_exact": True, "chrf": 100.0, "lines": 1}


def test_blank_unindented_and_wrong_bodies():
    blank = body_metrics(PROMPT, "\n\n\n", REFERENCE)
    assert blank == {"parses": False, "indented": False, "first_line_exact": False, "chrf": 0.0, "lines": 0}
    restart = body_metrics(PROMPT, "def other(x):\n    return x\n", REFERENCE)  # column 0: a new function
    assert restart["parses"] and not restart["indented"] and not restart["first_line_exact"]
    close = body_metrics(PROMPT, "    return a - b\n", REFERENCE)  # indented, parses, one character off
    assert close["parses"] and close["indented"] and not close["first_line_exact"] and 40 < close["chrf"] < 100
    assert body_metrics(PROMPT, "    c = a + b\n\n    return c\n", REFERENCE)["lines"] == 2  # blank lines not counted
    broken = body_metrics(PROMPT, "    return a +\n", REFERENCE)
    assert not broken["parses"] and broken["indented"]
    # the first line is compared stripped: other indentation of the same statement still matches
    assert body_metrics(PROMPT, "  return a + b\n", REFERENCE)["first_line_exact"]
    assert first_line("\n\n  x = 1\ny") == "  x = 1" and first_line(" \n") is None


def test_the_task_runs_on_a_tiny_model_and_refuses_bad_arguments():
    tok = train_tokenizer(["def f(x):\n    return x\n"] * 20, 300)
    torch.manual_seed(0)
    net = zoo.create_model("ar_code-tiny", vocab_size=tok.get_vocab_size(), dim=32, depth=1, num_heads=2,
                           max_seq_len=512).eval()
    pipe = ARCodePipeline(net, tok, gen_length=64, temperature=0.0)
    out = bodies(pipe, num_functions=3, gen_length=4, batch_size=3, source="stdlib")
    assert out["num_functions"] == 3 and out["nfe_per_function"] == 4
    assert set(out) >= {"parse_rate", "indented_rate", "first_line_exact", "chrf", "mean_lines", "by_source"}
    assert out["by_source"]["stdlib"]["held_out_functions"] >= 100  # the shipped split's held-out files
    assert out["reference_mean_lines"] >= 1  # every held-out function has a body
    with pytest.raises(ValueError, match="source"):
        bodies(pipe, num_functions=1, source="site-packages")
    with pytest.raises(ValueError, match="gen_length"):
        bodies(pipe, gen_length=0)
    with pytest.raises(ValueError, match="nonsense"):
        bodies(pipe, num_functions=1, nonsense=1)


class Echo:
    """A pipeline stand-in that answers every prompt with a fixed completion."""

    def __init__(self, tok, completion: str):
        self.tokenizer, self.completion = tok, completion
        self.net = type("Net", (), {"max_seq_len": 512})()

    def __call__(self, prompt=(), gen_length=128, generator=None, temperature=0.0):
        return type("Out", (), {"texts": [self.completion] * len(prompt), "nfe": 2, "seconds": 0.0})()


def test_sources_are_scored_apart_and_pooled(monkeypatch):
    tok = train_tokenizer(["def f(x):\n    return x\n"] * 20, 300)
    good = [FunctionPair(f"g{i}", f'def g{i}(x):\n    """Doc."""\n', "    return x\n") for i in range(3)]
    other = [FunctionPair(f"o{i}", f'def o{i}(x):\n    """Doc."""\n', "    y = x\n    return y\n") for i in range(5)]
    monkeypatch.setattr(bodies_module, "held_out", lambda source, val_per_mille: {"stdlib": good, "pip": other})
    out = bodies(Echo(tok, "    return x\n"), num_functions=4)  # at most 4 of each source
    stdlib, pip = out["by_source"]["stdlib"], out["by_source"]["pip"]
    assert (stdlib["num_functions"], pip["num_functions"], out["num_functions"]) == (3, 4, 7)
    assert stdlib["first_line_exact"] == 1.0 and pip["first_line_exact"] == 0.0
    assert out["first_line_exact"] == 3 / 7  # pooled over functions, not averaged over sources
    assert stdlib["reference_mean_lines"] == 1 and pip["reference_mean_lines"] == 2
    assert (stdlib["held_out_functions"], pip["held_out_functions"]) == (3, 5) and out["nfe_per_function"] == 2
