"""The code-completion pipeline: from a checkpoint directory to text, deterministically."""

import pytest
import torch

import zoo
from datamodules.stdlib_code import train_tokenizer
from models.text_kit.pipeline import ARCodePipeline, CodeOutput, CodePipeline

CODE = ["def add(a, b):\n    return a + b\n", "class Point:\n    def __init__(self, x):\n        self.x = x\n"]

DEFAULTS = dict(gen_length=64, policy="low_confidence", temperature=0.0, threshold=0.9)  # as the shipped config.json


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    tok = train_tokenizer(CODE * 20, vocab_size=300)
    torch.manual_seed(0)
    net = zoo.create_model("dllm_code-tiny", vocab_size=tok.get_vocab_size(), dim=32, depth=1,
                           num_heads=2, max_seq_len=64)
    path = tmp_path_factory.mktemp("ckpt") / "dllm_code-test"
    CodePipeline(net, tok, **DEFAULTS).save_pretrained(path, meta={"steps": 0})
    return zoo.load(path)


def test_load_returns_the_registered_pipeline_in_fp32_on_cpu(pipe):
    assert isinstance(pipe, CodePipeline)
    assert pipe.dtype == torch.float32 and pipe.device.type == "cpu"


def test_completion_is_deterministic_for_a_generator(pipe):
    kwargs = dict(prompt="def add(a, b):\n", gen_length=16, steps=8, temperature=1.0, policy="random")
    a = pipe(generator=torch.Generator().manual_seed(0), **kwargs)
    b = pipe(generator=torch.Generator().manual_seed(0), **kwargs)
    assert isinstance(a, CodeOutput) and a.texts == b.texts and torch.equal(a.tokens, b.tokens)
    assert a.nfe == 8 and a.tokens.shape == (1, 16) and a.seconds > 0


def test_batch_of_prompts_of_different_lengths(pipe):
    prompts = ["def add(a, b):\n", "class Point:\n    def __init__(self, x):\n"]
    batched = pipe(prompt=prompts, gen_length=8, steps=8)
    alone = [pipe(prompt=p, gen_length=8, steps=8) for p in prompts]
    assert len(batched.texts) == 2
    for i in range(2):  # greedy decoding does not depend on the batch
        assert torch.equal(batched.tokens[i], alone[i].tokens[0])


def test_prompt_longer_than_the_context_is_refused(pipe):
    with pytest.raises(ValueError, match="context"):
        pipe(prompt="x = 1\n" * 40, gen_length=16, steps=16)


def test_shipped_checkpoint_completes_a_prompt_deterministically():
    shipped = zoo.load("dllm_code-tiny")
    prompt = "def fibonacci(n):\n"
    a = shipped(prompt=prompt, gen_length=32, steps=32, generator=torch.Generator().manual_seed(0))
    b = shipped(prompt=prompt, gen_length=32, steps=32, generator=torch.Generator().manual_seed(0))
    assert a.texts == b.texts and a.nfe == 32
    assert shipped.meta["metrics"]["elbo_bits_per_token"] < 9  # well below a uniform guess (12 bits)


def test_an_empty_prompt_is_no_prompt_alone_or_in_a_batch():
    ar = zoo.load("ar_code-tiny")  # greedy: the same start gives the same tokens
    alone, unprompted = ar(prompt="", gen_length=6), ar(batch_size=1, gen_length=6)
    batch = ar(prompt=["", "def f():\n"], gen_length=6)
    assert torch.equal(alone.tokens, unprompted.tokens) and torch.equal(batch.tokens[:1], alone.tokens)
    dllm = zoo.load("dllm_code-tiny")
    assert torch.equal(dllm(prompt="", gen_length=8, steps=8).tokens, dllm(batch_size=1, gen_length=8, steps=8).tokens)


def test_token_healing_moves_the_prompts_last_token_into_the_answer():
    """A prompt ending in "\n": healing drops that token, the first generated token must start with
    "\n" (both samplers), and the completion comes back without the moved text."""
    tok = train_tokenizer(['def f(x):\n    """Doc."""\n    return x\n'] * 20, 300)
    prompt = 'def f(x):\n    """Doc."""\n'
    for name, cls in (("dllm_code-tiny", CodePipeline), ("ar_code-tiny", ARCodePipeline)):
        torch.manual_seed(0)
        net = zoo.create_model(name, vocab_size=tok.get_vocab_size(), dim=32, depth=1, num_heads=2,
                               max_seq_len=64).eval()
        pipe = cls(net, tok, **{k: v for k, v in DEFAULTS.items() if k in cls.settings})
        ids, _, removed = pipe.encode_prompts([prompt], heal=True)
        assert removed[0] and prompt.endswith(removed[0])
        assert tok.decode(ids[0].tolist()) + removed[0] == prompt
        for seed in range(3):
            g = torch.Generator().manual_seed(seed)
            out = pipe(prompt=prompt, gen_length=4, temperature=1.0, heal=True, generator=g)
            first = pipe.token_texts[out.tokens[0, 0]]
            assert first.startswith(removed[0])  # an untrained net obeys only because it must
            assert out.texts[0] == pipe.decode(out.tokens)[0][len(removed[0]):]
        with pytest.raises(ValueError, match="heal"):
            pipe(prompt=prompt, gen_length=2, heal="yes")
