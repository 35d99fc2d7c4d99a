"""The text kit: what the text domains share, registering nothing of its own.

- ``network.TransformerLM``: the small bidirectional / causal transformer LM of the code models
  (dllm_code, ar_code) and of SentenceVAE's token-level baseline;
- ``pipeline``: the completion pipelines over the stdlib BPE tokenizer (``CodePipeline`` for masked
  diffusion, ``ARCodePipeline`` for AR decoding), the tokenizer's loading and special ids.

Domains import from here, never from each other (tests/models/test_kits.py states the allowed edges).
"""
