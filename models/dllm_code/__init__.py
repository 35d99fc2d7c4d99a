"""dllm_code: a masked-diffusion language model for code (LLaDA-style), from "Beyond Autoregression".

Registers the builders; ``zoo.load("dllm_code-tiny")`` returns a ``CodePipeline``.
"""

import torch

from models.dllm_code.network import TransformerLM
from models.dllm_code.pipeline import CodeOutput, CodePipeline
from zoo.objectives.masked_sampling import sample as masked_sample
from zoo.registry import Example, register_model

MASK_ID = 2  # <|mask|> in datamodules/stdlib_code.py's tokenizer


def example(net: TransformerLM, generator: torch.Generator) -> Example:
    x = torch.randint(3, net.vocab_size, (2, 16), generator=generator)  # (B, L)
    t = torch.rand(2, generator=generator)
    return Example(args=(x, t, None), kwargs={}, out_shape=(2, 16, net.vocab_size),
                   sample=lambda n, g: masked_sample(n, mask_id=MASK_ID, batch_size=2, gen_length=8,
                                                     steps=2, generator=g).tokens)


@register_model("dllm_code-tiny", pipeline=CodePipeline, example=example)
def dllm_code_tiny(vocab_size: int = 4096, dim: int = 192, depth: int = 6, num_heads: int = 6,
                   max_seq_len: int = 512, mlp_ratio: float = 4.0) -> TransformerLM:
    """~3.5M parameters (13.8 MB in fp32): trains on two CPU cores in about 35 minutes."""
    return TransformerLM(vocab_size, dim, depth, num_heads, max_seq_len, causal=False, mlp_ratio=mlp_ratio)


__all__ = ["TransformerLM", "CodePipeline", "CodeOutput", "dllm_code_tiny", "MASK_ID"]
