"""dllm_code: a masked-diffusion language model for code (LLaDA-style), from "Beyond Autoregression",
and ar_code, its autoregressive baseline of the same size, tokenizer and data.

``zoo.load("dllm_code-tiny")`` returns a ``CodePipeline``; ``zoo.load("ar_code-tiny")`` an ``ARCodePipeline``.
"""

from functools import partial

import torch

from models.text_kit.network import TransformerLM
from models.text_kit.pipeline import ARCodePipeline, CodeOutput, CodePipeline
from models.dllm_code.public import PublicARPipeline, PublicDiffusionPipeline
from zoo.objectives.autoregressive import ar_sample
from zoo.nn.decoder import DecoderConfig, DecoderLM
from zoo.objectives.masked_sampling import sample as masked_sample
from zoo.registry import Example, register_ablation, register_benchmark, register_model, register_task

MASK_ID, EOS_ID = 2, 1  # <|mask|>, <|eos|> in datamodules/stdlib_code.py's tokenizer


def example(net: TransformerLM, generator: torch.Generator) -> Example:
    x = torch.randint(3, net.vocab_size, (2, 16), generator=generator)  # (B, L)
    t = torch.rand(2, generator=generator)
    return Example(args=(x, t, None), kwargs={}, out_shape=(2, 16, net.vocab_size),
                   sample=lambda n, g: masked_sample(n, mask_id=MASK_ID, batch_size=2, gen_length=8, steps=2,
                                                     policy="random", temperature=1.0, generator=g).tokens)


@register_model("dllm_code-tiny", pipeline=CodePipeline, example=example)
def dllm_code_tiny(vocab_size: int = 4096, dim: int = 192, depth: int = 6, num_heads: int = 6,
                   max_seq_len: int = 512, mlp_ratio: float = 4.0, shift: bool = False) -> TransformerLM:
    """~3.5M parameters (13.8 MB in fp32): trains on two CPU cores in about 35 minutes. ``shift``: adapted
    from ar_code-tiny's weights (the logit at i predicts token i + 1)."""
    return TransformerLM(vocab_size, dim, depth, num_heads, max_seq_len, causal=False, mlp_ratio=mlp_ratio,
                         shift=shift)


@register_model("dllm_code-small", pipeline=CodePipeline, example=example)
def dllm_code_small(vocab_size: int = 4096, dim: int = 384, depth: int = 6, num_heads: int = 6,
                    max_seq_len: int = 512, mlp_ratio: float = 4.0, shift: bool = False) -> TransformerLM:
    """The GPU size (recipes/gpu_train.sh): 12.2M parameters, 23.3 MiB in bf16, so that it and its AR
    twin come back from the device in one call (at most 64 MiB)."""
    return TransformerLM(vocab_size, dim, depth, num_heads, max_seq_len, causal=False, mlp_ratio=mlp_ratio,
                         shift=shift)


def ar_example(net: TransformerLM, generator: torch.Generator) -> Example:
    x = torch.randint(3, net.vocab_size, (2, 16), generator=generator)  # (B, L)
    return Example(args=(x, None, None), kwargs={}, out_shape=(2, 16, net.vocab_size),
                   sample=lambda n, g: ar_sample(
                       n, eos_id=EOS_ID, prompt=x[:, :4], gen_length=2, temperature=1.0, generator=g).tokens)


@register_model("ar_code-tiny", pipeline=ARCodePipeline, example=ar_example)
def ar_code_tiny(vocab_size: int = 4096, dim: int = 192, depth: int = 6, num_heads: int = 6,
                 max_seq_len: int = 512, mlp_ratio: float = 4.0) -> TransformerLM:
    """The same transformer as dllm_code-tiny with causal attention: the equal-size AR baseline."""
    return TransformerLM(vocab_size, dim, depth, num_heads, max_seq_len, causal=True, mlp_ratio=mlp_ratio)


register_task("bpt", "models.dllm_code.evaluate:bits_per_token")
register_task("humaneval", "models.dllm_code.humaneval:humaneval")
register_task("bodies", "models.dllm_code.bodies:bodies")
register_benchmark("dllm_code", "models.dllm_code.bench:run")
register_ablation("dllm_code", "models.dllm_code.ablation_study:ABLATION")

@register_model("ar_code-small", pipeline=ARCodePipeline, example=ar_example)
def ar_code_small(vocab_size: int = 4096, dim: int = 384, depth: int = 6, num_heads: int = 6,
                  max_seq_len: int = 512, mlp_ratio: float = 4.0) -> TransformerLM:
    """dllm_code-small with causal attention: its equal-size AR twin on the GPU."""
    return TransformerLM(vocab_size, dim, depth, num_heads, max_seq_len, causal=True, mlp_ratio=mlp_ratio)


def public_decoder(vocab_size: int = 256, dim: int = 64, depth: int = 2, num_heads: int = 4, mlp_hidden: int = 96,
                   num_kv_heads: int | None = 2, head_dim: int | None = None, max_seq_len: int = 1024,
                   rope_theta: float = 10000.0, rope_scaling: dict | None = None, norm_eps: float = 1e-5,
                   qkv_bias: bool = False, tie_embeddings: bool = False, causal: bool = False,
                   shift: bool = False) -> DecoderLM:
    """A LLaMA / Qwen2-style decoder (zoo.nn.decoder) as a public checkpoint describes it: ``zoo.load``
    reads a public folder's config.json into these arguments (zoo.public); the defaults are a tiny
    test size."""
    return DecoderLM(DecoderConfig(vocab_size, dim, depth, num_heads, mlp_hidden, num_kv_heads, head_dim, max_seq_len,
                                   rope_theta, rope_scaling, norm_eps, qkv_bias, tie_embeddings, causal, shift))


def public_example(net: DecoderLM, generator: torch.Generator) -> Example:
    x = torch.randint(0, net.vocab_size - 1, (2, 16), generator=generator)  # (B, L); the last id masks
    if net.causal:
        sample = lambda n, g: ar_sample(n, eos_id=0, prompt=x[:, :4], gen_length=2, temperature=1.0,
                                        generator=g).tokens
    else:
        sample = lambda n, g: masked_sample(n, mask_id=n.vocab_size - 1, prompt=x[:, :4], gen_length=8, steps=2,
                                            policy="random", temperature=1.0, generator=g).tokens
    return Example(args=(x, None, None), kwargs={}, out_shape=(2, 16, net.vocab_size), sample=sample)


# The public families (zoo.public.FAMILIES), each the decoder with its attention and shift as defaults
for _name, _pipeline, _fixed in (("llada", PublicDiffusionPipeline, {}), ("dream", PublicDiffusionPipeline, {"shift": True, "qkv_bias": True}),
                                 ("qwen2", PublicARPipeline, {"causal": True, "qkv_bias": True}),
                                 ("llama", PublicARPipeline, {"causal": True})):
    register_model(_name, pipeline=_pipeline, example=public_example)(partial(public_decoder, **_fixed))

__all__ = ["TransformerLM", "CodePipeline", "ARCodePipeline", "CodeOutput", "dllm_code_tiny", "ar_code_tiny",
           "MASK_ID", "EOS_ID"]
