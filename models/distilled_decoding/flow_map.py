"""Distilled Decoding's deterministic map from Gaussian noise to a token, under a distribution p.

For one position with codebook vectors c_k (K, D) and the teacher's probabilities p (K,), the
linear path x_t = t c + (1 - t) x0 from noise x0 ~ N(0, I) (t = 0) to a codebook vector c ~ p (t = 1)
has the exact velocity

    v(x, t) = (sum_k w_k c_k - x) / (1 - t),   w = softmax_k(log p_k - |x - t c_k|^2 / (2 (1 - t)^2)),

w being the posterior of k given x_t. Integrating it maps each noise to one token, deterministically,
and the tokens reached from x0 ~ N(0, I) follow p. The last Euler step (to t = 1) lands exactly on
the posterior mean; the token is its nearest codebook vector.
"""

from __future__ import annotations

import torch


def posterior_weights(x: torch.Tensor, t: float, codebook: torch.Tensor, log_p: torch.Tensor) -> torch.Tensor:
    """w (N, K) for points x (N, D) at time t < 1, codebook (K, D), log-probabilities log_p (N, K)."""
    dist2 = torch.cdist(x, t * codebook).square()  # (N, K)
    return torch.softmax(log_p - dist2 / (2 * (1 - t) ** 2), dim=-1)


@torch.no_grad()
def flow_map(noise: torch.Tensor, probs: torch.Tensor, codebook: torch.Tensor, steps: int = 64
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Map noise (N, D) to tokens (N,) under per-row distributions probs (N, K) over codebook (K, D).

    Euler on a uniform grid from t = 0 to 1 in float64. Returns (tokens (N,), end points (N, D)).
    """
    if steps < 1:
        raise ValueError(f"steps={steps} must be at least 1")
    if noise.shape[-1] != codebook.shape[-1]:
        raise ValueError(f"noise has dimension {noise.shape[-1]}, the codebook {codebook.shape[-1]}")
    if probs.shape != (noise.shape[0], codebook.shape[0]):
        raise ValueError(f"probs has shape {tuple(probs.shape)}; expected (N, K) = "
                         f"({noise.shape[0]}, {codebook.shape[0]})")
    x = noise.double()
    c = codebook.double()
    log_p = probs.double().clamp_min(1e-300).log()
    for i in range(steps):
        t = i / steps
        w = posterior_weights(x, t, c, log_p)
        x = x + (1.0 / steps) * (w @ c - x) / (1 - t)
    tokens = torch.cdist(x, c).argmin(-1)
    return tokens, x.to(noise.dtype)
