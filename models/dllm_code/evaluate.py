"""Held-out likelihood of a code model: bits per token on standard-library files it never saw.

The files are the validation split of datamodules/stdlib_code.py (chosen by a hash of the path),
encoded with the checkpoint's own tokenizer, cut into windows of ``seq_len`` tokens.
"""

from __future__ import annotations

import torch

from datamodules.stdlib_code import TokenWindows, encode_stream, read_corpus
from zoo.objectives import MaskedDiffusion
from zoo.objectives.autoregressive import NextTokenPrediction


def val_windows(tokenizer, eos_id: int, seq_len: int, max_windows: int, val_per_mille: int = 20):
    ds = TokenWindows(encode_stream(tokenizer, read_corpus(val_per_mille=val_per_mille)["val"], eos_id), seq_len)
    starts = list(range(0, len(ds), seq_len))[:max_windows]
    return torch.utils.data.Subset(ds, starts)


def bits_per_token(pipe, seq_len: int = 512, max_windows: int = 64, num_samples: int = 8,
                   batch_size: int = 16, generator: torch.Generator | None = None) -> dict:
    """Bits per token on held-out windows: exact for an AR model (every token after the first of a
    window), a Monte-Carlo ELBO upper bound (every token) for a masked-diffusion model."""
    windows = val_windows(pipe.tokenizer, pipe.eos_id, seq_len, max_windows)
    loader = torch.utils.data.DataLoader(windows, batch_size=batch_size)
    if getattr(pipe.net, "causal", False):
        metrics = NextTokenPrediction(eos_id=pipe.eos_id).evaluate(pipe.net, loader)
        return {"bits_per_token": metrics["nll_bits_per_token"], "bound": "exact", "tokens": metrics["eval_tokens"],
                "seq_len": seq_len}
    metrics = MaskedDiffusion(mask_id=pipe.mask_id).evaluate(pipe.net, loader, num_samples=num_samples,
                                                             generator=generator)
    return {"bits_per_token": metrics["elbo_bits_per_token"], "bound": "elbo", "tokens": metrics["eval_tokens"],
            "seq_len": seq_len, "elbo_samples": num_samples}
