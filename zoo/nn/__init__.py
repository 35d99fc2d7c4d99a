"""Shared layers: attention with RoPE and a KV cache, transformer / DiT blocks, time embedding."""

from zoo.nn.attention import Attention, KVCache, apply_rope, rope_tables
from zoo.nn.blocks import (AdaLNZero, TimestepEmbedding, TransformerBlock, attention_mask, bidirectional_blocks,
                            causal_blocks, init_gpt_weights, modulate, run_blocks)

__all__ = ["Attention", "KVCache", "apply_rope", "rope_tables", "AdaLNZero", "TimestepEmbedding",
           "TransformerBlock", "attention_mask", "bidirectional_blocks", "causal_blocks", "init_gpt_weights", "modulate",
           "run_blocks"]
