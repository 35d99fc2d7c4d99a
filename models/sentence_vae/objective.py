"""SentenceVAE's two training objectives.

- ``SentenceReconstruction``: the autoencoder; focal loss (the reference, gamma 2) or plain CE
  (gamma 0), and a KL term when the autoencoder is variational.
- ``NextSentencePrediction``: the sentence LM; each sentence decoded from the LM's output at the
  sentence before it, plus the continue/stop head.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from models.sentence_vae.network import (SentenceAutoencoder, SentenceLM, focal_cross_entropy, length_groups,
                                         shifted_input)
from zoo.checks import check_float
from zoo.objectives.base import LossOutput


def real_positions(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """lengths (...) -> bool (..., width): True on each sentence's real ids (EOS included)."""
    return torch.arange(width, device=lengths.device) < lengths[..., None]


def sentence_token_terms(ae: SentenceAutoencoder, memory: torch.Tensor, tokens: torch.Tensor, length: torch.Tensor,
                         focal_gamma: float = 0.0, groups: int = 4) -> dict:
    """Teacher-forced decoding of sentences ``tokens`` (N, T) (``length`` real ids each, EOS included)
    from their memory vectors (N, dim), in length groups -> sums over the real ids: "loss" (focal, or
    NLL in nats at gamma 0), "ids", "right" (argmax right), and "exact" (sentences with every id right)."""
    loss, right, exact = memory.new_zeros(()), 0, 0
    for idx, width in length_groups(length, groups):
        target = tokens[idx, :width]
        logits = ae.decode_logits(memory[idx], shifted_input(target, ae.eos_id))  # (n, width, V)
        real = real_positions(length[idx], width)
        loss = loss + (focal_cross_entropy(logits, target, focal_gamma) * real).sum()
        hit = (logits.argmax(-1) == target) | ~real
        right += int((hit & real).sum())
        exact += int(hit.all(1).sum())
    return {"loss": loss, "ids": int(length.sum()), "right": right, "exact": exact}


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
        mean, logvar = net.posterior_params(tokens, length, groups=4)
        z, kl = mean, None
        if logvar is not None:
            eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            z = mean + (0.5 * logvar).exp() * eps
            kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum(-1).mean()
        elif self.kl_weight:
            raise ValueError("kl_weight > 0 needs a variational autoencoder (variational=true)")
        terms = sentence_token_terms(net, z, tokens, length, self.focal_gamma)
        loss = terms["loss"] / max(terms["ids"], 1)
        metrics = {"token_acc": torch.tensor(terms["right"] / max(terms["ids"], 1)),
                   "teacher_forced_exact": torch.tensor(terms["exact"] / tokens.shape[0])}
        if kl is not None:
            loss = loss + self.kl_weight * kl
            metrics["kl"] = kl.detach()
        return LossOutput(loss, {k: v.detach() for k, v in metrics.items()})


    @torch.no_grad()
    def evaluate(self, net: SentenceAutoencoder, dataloader, generator: torch.Generator | None = None) -> dict:
        """Over {"tokens", "length"} batches: teacher-forced token accuracy and exact match, and greedy
        reconstruction's exact match (the decoder feeding itself), through the posterior mean."""
        from models.sentence_vae.pipeline import decode_sentences

        ids = right = exact = greedy = rows = 0
        for batch in dataloader:
            tokens, length = batch["tokens"], batch["length"]
            memory = net.encode(tokens, length, groups=4)  # one encoding serves both measures
            terms = sentence_token_terms(net, memory, tokens, length)
            ids, right, exact, rows = ids + terms["ids"], right + terms["right"], exact + terms["exact"], rows + len(length)
            out, out_length, _ = decode_sentences(net, memory)
            same = (out[:, :tokens.shape[1]] == tokens) | ~real_positions(length, tokens.shape[1])
            greedy += int((same.all(1) & (out_length == length)).sum())
        return {"token_acc": right / max(ids, 1), "teacher_forced_exact": exact / max(rows, 1),
                "greedy_exact": greedy / max(rows, 1), "sentences": rows}


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
        memory, stop = net.context(net.encode_sentences(sentences, lengths))  # (B, S, dim), (B, S, 2)
        following = lengths[:, 1:] > 0  # sentence i + 1 exists: decode it from the LM's output at i
        terms = sentence_token_terms(net.autoencoder, memory[:, :-1][following], sentences[:, 1:][following],
                                     lengths[:, 1:][following], self.focal_gamma)
        token_loss = terms["loss"] / max(terms["ids"], 1)
        labels, scored = stop_labels(lengths, ends)
        stop_ce = F.cross_entropy(stop.float().reshape(-1, 2), labels.reshape(-1), reduction="none")
        stop_loss = (stop_ce * scored.reshape(-1)).sum() / scored.sum().clamp(min=1)
        return LossOutput(token_loss + self.stop_weight * stop_loss,
                          {"token_loss": token_loss.detach(), "stop_loss": stop_loss.detach(),
                           "token_acc": torch.tensor(terms["right"] / max(terms["ids"], 1))})

    @torch.no_grad()
    def evaluate(self, net: SentenceLM, dataloader, generator: torch.Generator | None = None) -> dict:
        """Perplexity per text id of sentences 2..n (EOS paid, not counted; models/sentence_vae/evaluate.py)."""
        nll = ids = sentences = 0
        for batch in dataloader:
            terms = next_sentence_nll(net, batch["sentences"], batch["lengths"])
            nll, ids, sentences = nll + terms["loss"], ids + terms["ids"], sentences + terms["sentences"]
        return {"ppl": math.exp(nll / max(ids - sentences, 1)), "text_tokens": ids - sentences}


def stop_labels(lengths: torch.Tensor, ends: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels (B, S): 1 after the document's last sentence, else 0; scored (B, S): the decisions that are
    known: after every present sentence but a cut chunk's last, whose successor lies in the next chunk)."""
    present = lengths > 0
    count = present.sum(1)  # (B,)
    last = torch.arange(lengths.shape[1], device=lengths.device)[None] == (count - 1)[:, None]
    labels = (last & ends[:, None]).long()
    return labels, present & ~(last & ~ends[:, None])


@torch.no_grad()
def next_sentence_nll(net: SentenceLM, sentences: torch.Tensor, lengths: torch.Tensor) -> dict:
    """Sums over sentences 2..S of (B, S, T) chunks: NLL in nats of their ids and EOS given the sentences
    before ("loss"), the ids scored with EOS ("ids"), and how many sentences ("sentences")."""
    memory, _ = net.context(net.encode_sentences(sentences, lengths))
    following = lengths[:, 1:] > 0
    terms = sentence_token_terms(net.autoencoder, memory[:, :-1][following], sentences[:, 1:][following],
                                 lengths[:, 1:][following])
    return {"loss": float(terms["loss"]), "ids": terms["ids"], "sentences": int(following.sum())}
