"""HumanEval scoring helpers: the problem file, pass@k and completion post-processing."""

import pytest

from models.dllm_code.humaneval import load_problems, parses, pass_at_k, truncate_completion


def test_all_164_problems_load_from_the_wheel():
    problems = load_problems()
    assert len(problems) == 164 and problems[0]["task_id"] == "HumanEval/0"
    assert {"prompt", "canonical_solution", "test", "entry_point"} <= set(problems[0])


def test_pass_at_k_is_the_unbiased_estimator():
    assert pass_at_k(10, 0, 1) == 0.0 and pass_at_k(10, 10, 5) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(5, 1, 2) == pytest.approx(1 - (4 * 3) / (5 * 4))  # 1 - C(4,2)/C(5,2)


def test_completion_stops_at_the_next_top_level_statement():
    text = "    return a + b\n\n\ndef other():\n    pass\n"
    assert truncate_completion(text) == "    return a + b\n\n"


def test_parses_needs_a_non_blank_valid_completion():
    prompt = 'def f(x):\n    """doc"""\n'
    assert parses(prompt, "    return x\n")
    assert not parses(prompt, "   \n") and not parses(prompt, "    return (x\n")


def test_a_prompt_too_long_for_the_context_keeps_its_end():
    import zoo
    from models.dllm_code.humaneval import fit_prompt

    pipe = zoo.load("dllm_code-tiny")
    prompt = "x = 1\n" * 300 + 'def f():\n    """doc"""\n'
    seen, cut = fit_prompt(pipe, prompt, gen_length=480)
    assert cut and prompt.endswith(seen) and len(pipe.tokenizer.encode(seen).ids) <= 32
    assert fit_prompt(pipe, "def g():\n", gen_length=128) == ("def g():\n", False)
