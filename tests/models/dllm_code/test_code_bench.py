"""The code bench on tiny untrained models: every row, the headline keys, tokens per NFE."""

import pytest
import torch

import zoo
from datamodules.stdlib_code import train_tokenizer
from models.dllm_code.bench import bench
from models.text_kit.pipeline import ARCodePipeline, CodePipeline

DIFFUSION = dict(gen_length=64, policy="low_confidence", temperature=0.0, threshold=0.9)  # the shipped config.json's
AR = dict(gen_length=64, temperature=0.0)


def test_quick_bench_rows_and_headline():
    tok = train_tokenizer(["def f(x):\n    return x\n"] * 20, 300)
    torch.manual_seed(0)
    size = dict(vocab_size=tok.get_vocab_size(), dim=32, depth=1, num_heads=2, max_seq_len=512)
    pipes = {"diffusion": CodePipeline(zoo.create_model("dllm_code-tiny", **size).eval(), tok, **DIFFUSION),
             "ar": ARCodePipeline(zoo.create_model("ar_code-tiny", **size).eval(), tok, **AR)}
    logged = []
    out = bench(pipes, quick=True, repeats=1, seed=0, log=logged.append, heal=True)
    rows = {r["setting"]: r for r in out["rows"]}
    assert set(rows) == {"ar_kv_cache", "vanilla", "vanilla_eos_fill", "threshold", "threshold_prefix_cache",
                         "threshold_dual_cache"}
    assert rows["vanilla"]["nfe"] == rows["vanilla"]["gen_length"]  # LLaDA's reference: no early stop
    for r in rows.values():
        assert r["seconds_min"] <= r["seconds"] <= r["seconds_max"] and r["repeats"] == 3 and r["warmup"] == 1
        assert r["tokens_per_second_min"] <= r["tokens_per_second"] <= r["tokens_per_second_max"]
        assert r["answer_tokens"] <= r["gen_length"]
    assert rows["threshold"]["nfe"] <= rows["vanilla"]["nfe"]  # the threshold rule commits at least as much a step
    assert {"speedup_vs_vanilla", "speedup_vs_vanilla_eos_fill", "speedup_vs_ar", "tokens_per_nfe", "parse_rate",
            "ar_parse_rate"} <= set(out)
    for name in ("speedup_vs_vanilla", "speedup_vs_vanilla_eos_fill", "speedup_vs_ar"):
        low, high = out[f"{name}_range"]
        assert low <= out[name] <= high
    head = out["headline"]
    assert head["baseline"] == "vanilla_eos_fill" and head["chosen_on"]["prompts"] == 3
    assert sum(line.startswith("selection") for line in logged) == 5  # every diffusion setting, on other prompts
    assert out["heal"] is True and out["tokens_per_nfe"] == rows[head["best_setting"]]["tokens_per_nfe"]


def test_answer_tokens_stop_at_the_first_eos():
    from models.dllm_code.bench import answer_lengths

    tokens = torch.tensor([[5, 6, 1, 1, 1], [5, 6, 7, 8, 9], [1, 5, 1, 5, 5]])
    assert answer_lengths(tokens, (1,)) == [2, 5, 0]
    assert answer_lengths(tokens, (1, 7)) == [2, 2, 0]


def test_function_prompts_are_the_bodies_tasks_and_bad_choices_name_the_argument():
    from datamodules.code_functions import function_pairs
    from models.dllm_code.bench import load_prompts

    tok = train_tokenizer(["def f(x):\n    return x\n"] * 20, 300)
    held_out = [f.prompt for f in function_pairs(splits=("val",))["val"]]
    prompts = load_prompts("functions", 5, tok)
    assert len(prompts) == 5 and set(prompts) <= set(held_out)
    assert prompts == [p for p in held_out if len(tok.encode(p).ids) <= 256][:5]  # in order, long ones skipped
    assert load_prompts("humaneval", 2, tok)[0].startswith("from typing import List")
    pipes = {"diffusion": CodePipeline(zoo.create_model("dllm_code-tiny", vocab_size=tok.get_vocab_size(), dim=32,
                                                        depth=1, num_heads=2).eval(), tok, **DIFFUSION)}
    for bad, match in ((dict(prompts="mbpp"), "prompts"), (dict(num_prompts=4), "num_prompts")):
        with pytest.raises(ValueError, match=match):
            bench(pipes, quick=True, repeats=1, seed=0, log=lambda *_: None, **bad)


def test_the_ablations_generative_perplexity_scores_only_the_completion_tokens():
    import math

    import torch.nn.functional as F

    from models.dllm_code.ablation_study import ar_bits_per_token

    ar = zoo.load("ar_code-tiny")
    prompts, completions = ["def add(a, b):\n", "x = 1\n"], ["    return a + b\n", ""]  # an empty one counts nothing
    ids = [ar.tokenizer.encode(t).ids for t in (prompts[0], completions[0])]
    full = torch.tensor([ids[0] + ids[1]])
    with torch.no_grad():
        logits = ar.net(full)[0, len(ids[0]) - 1:-1]
    expected = F.cross_entropy(logits.float(), full[0, len(ids[0]):]).item() / math.log(2)
    assert ar_bits_per_token(ar, prompts, completions) == pytest.approx(expected, rel=1e-5)
    assert math.isnan(ar_bits_per_token(ar, prompts[1:], completions[1:]))
