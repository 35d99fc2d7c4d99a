"""dllm_code: a masked-diffusion language model for code (LLaDA-style), from "Beyond Autoregression".

Registers the builders; ``zoo.load("dllm_code-tiny")`` returns a ``CodePipeline``.
"""

from models.dllm_code.network import TransformerLM
from models.dllm_code.pipeline import CodeOutput, CodePipeline
from zoo.registry import register_model


@register_model("dllm_code-tiny", pipeline=CodePipeline)
def dllm_code_tiny(vocab_size: int = 4096, dim: int = 192, depth: int = 6, num_heads: int = 6,
                   max_seq_len: int = 512, mlp_ratio: float = 4.0) -> TransformerLM:
    """~3.5M parameters (13.8 MB in fp32): trains on two CPU cores in about half an hour."""
    return TransformerLM(vocab_size, dim, depth, num_heads, max_seq_len, causal=False, mlp_ratio=mlp_ratio)


__all__ = ["TransformerLM", "CodePipeline", "CodeOutput", "dllm_code_tiny"]
