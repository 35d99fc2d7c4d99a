"""SentenceVAE's two training objectives.

- ``SentenceReconstruction``: the autoencoder; focal loss (the reference, gamma 2) or plain CE
  (gamma 0), and a KL term when the autoencoder is variational.
- ``NextSentencePrediction``: the sentence LM; each sentence decoded from the LM's output at the
  sentence before it, plus the continue/stop head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.sentence_vae.network import SentenceAutoencoder, SentenceLM, focal_cross_entropy, shifted_input
from zoo.checks import check_float
from zoo.objectives.base import LossOutput


def real_positions(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """lengths (...) -> bool (..., width): True on each sentence's real ids (EOS included)."""
    return torch.arange(width, device=lengths.device) < lengths[..., None]


class SentenceReconstruction:
    """Args:
        focal_gamma: 2 = the reference's focal loss; 0 = cross-entropy.
        kl_weight: weight of KL(q(z | sentence) || N(0, I)) per sentence (variational autoencoders only).
    """

    def __init__(self, focal_gamma: float = 2.0, kl_weight: float = 0.0):
        self.focal_gamma = check_float("focal_gamma", focal_gamma, low=0.0)
        self.kl_weight = check_float("kl_weight", kl_weight, low=0.0)

    def loss(self, net: SentenceAutoencoder, tokens: torch.Tensor, length: torch.Tensor,
             generator: torch.Generator | None = None) -> LossOutput:
        """tokens (N, T) ids ``[t1 .. tn, EOS]`` + padding, length (N,) -> mean loss per real id."""
        mean, logvar = net.posterior_params(tokens, length)
        z, kl = mean, None
        if logvar is not None:
            eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            z = mean + (0.5 * logvar).exp() * eps
            kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum(-1).mean()
        elif self.kl_weight:
            raise ValueError("kl_weight > 0 needs a variational autoencoder (variational=true)")
        logits = net.decode_logits(z, shifted_input(tokens, net.eos_id))  # (N, T, V)
        real = real_positions(length, tokens.shape[1])
        per_token = focal_cross_entropy(logits, tokens, self.focal_gamma)
        loss = (per_token * real).sum() / real.sum().clamp(min=1)
        right = (logits.argmax(-1) == tokens) | ~real
        metrics = {"token_acc": (right & real).sum() / real.sum().clamp(min=1),
                   "teacher_forced_exact": right.all(1).float().mean()}
        if kl is not None:
            loss = loss + self.kl_weight * kl
            metrics["kl"] = kl.detach()
        return LossOutput(loss, {k: v.detach() for k, v in metrics.items()})


class NextSentencePrediction:
    """Args:
        focal_gamma: as SentenceReconstruction's (0 = cross-entropy, what the perplexity measures).
        stop_weight: weight of the continue/stop cross-entropy beside the token loss.
    """

    def __init__(self, focal_gamma: float = 0.0, stop_weight: float = 0.1):
        self.focal_gamma = check_float("focal_gamma", focal_gamma, low=0.0)
        self.stop_weight = check_float("stop_weight", stop_weight, low=0.0)

    def loss(self, net: SentenceLM, sentences: torch.Tensor, lengths: torch.Tensor, ends: torch.Tensor,
             generator: torch.Generator | None = None) -> LossOutput:
        """sentences (B, S, T), lengths (B, S) (0 = no sentence, at the end), ends (B,) True when the
        chunk ends its document -> token loss of sentences 2..S + stop_weight x the stop loss."""
        logits, stop = net.logits_and_stop(sentences, lengths)  # (B, S-1, T, V), (B, S, 2)
        targets = sentences[:, 1:]
        real = real_positions(lengths[:, 1:], sentences.shape[2])
        per_token = focal_cross_entropy(logits, targets, self.focal_gamma)
        token_loss = (per_token * real).sum() / real.sum().clamp(min=1)
        labels, scored = stop_labels(lengths, ends)
        stop_ce = F.cross_entropy(stop.float().reshape(-1, 2), labels.reshape(-1), reduction="none")
        stop_loss = (stop_ce * scored.reshape(-1)).sum() / scored.sum().clamp(min=1)
        acc = ((logits.argmax(-1) == targets) & real).sum() / real.sum().clamp(min=1)
        return LossOutput(token_loss + self.stop_weight * stop_loss,
                          {"token_loss": token_loss.detach(), "stop_loss": stop_loss.detach(), "token_acc": acc.detach()})


def stop_labels(lengths: torch.Tensor, ends: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels (B, S): 1 after the document's last sentence, else 0; scored (B, S): the decisions that are
    known: after every present sentence but a cut chunk's last, whose successor lies in the next chunk)."""
    present = lengths > 0
    count = present.sum(1)  # (B,)
    last = torch.arange(lengths.shape[1], device=lengths.device)[None] == (count - 1)[:, None]
    labels = (last & ends[:, None]).long()
    return labels, present & ~(last & ~ends[:, None])

