"""Training and sampling of the distilled student, and of the naive parallel baseline.

Loss choice (``loss_type``):
- "ce": cross-entropy of the student's token logits against the pair's tokens. The pair's token is a
  deterministic function of the noise, so this is a classification problem with one right answer;
  it is also what the teacher's head was trained for, so initialisation from the teacher helps most.
- "l2": regression onto the pair's codebook vector: the squared distance between the expected code
  sum_k p_k c_k under the student's logits and the pair's code; tokens by the code nearest that
  expectation. A distance loss: a near miss (a similar code) costs less than a far one.
- "ce+l2": both terms; the arg-max token samples. The paper (inferred) mixes a classification
  loss for early positions with a distance for later ones; ``recipes/ablate.py model=distilled_decoding``
  compares the three.

One student serves one and two steps: a share ``two_step_fraction`` of rows keeps a random prefix
of the pair's own tokens (k in 1..L-1) and is trained on the rest, as its second step will be run.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F

from models.distilled_decoding.network import DistilledStudent, MarginalTable
from zoo.checks import check_choice, check_float, check_int
from zoo.objectives.base import LossOutput, Sample
from zoo.objectives.masked_sampling import propose

LOSS_TYPES = ("ce", "l2", "ce+l2")


class DistillationLoss:
    """Args:
        loss_type: "ce", "l2" or "ce+l2" (see the module docstring).
        two_step_fraction: share of rows trained with a kept prefix, for two-step sampling.
        l2_weight: weight of the regression term in "ce+l2".
    """

    def __init__(self, loss_type: str = "ce", two_step_fraction: float = 0.5, l2_weight: float = 1.0):
        if loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type={loss_type!r}; choose one of {LOSS_TYPES}")
        if not 0 <= two_step_fraction <= 1:
            raise ValueError(f"two_step_fraction={two_step_fraction} must lie in [0, 1]")
        self.loss_type, self.two_step_fraction, self.l2_weight = loss_type, two_step_fraction, l2_weight

    def loss(self, net: DistilledStudent, noise: torch.Tensor, x1: torch.Tensor, cond: torch.Tensor,
             generator: torch.Generator | None = None) -> LossOutput:
        b, l = x1.shape
        two_step = torch.rand(b, generator=generator, device=x1.device) < self.two_step_fraction
        k = torch.randint(1, l, (b,), generator=generator, device=x1.device)
        num_known = torch.where(two_step, k, torch.zeros_like(k))
        hidden = net.hidden(noise, cond, x1, num_known)
        trained = torch.arange(l, device=x1.device)[None] >= num_known[:, None]  # (B, L)
        n = trained.sum().clamp(min=1)
        logits = net.head(hidden).float()
        metrics, loss = {}, 0.0
        tokens = logits.argmax(-1)
        if "ce" in self.loss_type:
            ce = F.cross_entropy(logits.transpose(1, 2), x1, reduction="none")
            loss = loss + (ce * trained).sum() / n
            metrics["ce"] = ((ce * trained).sum() / n).detach()
        if "l2" in self.loss_type:
            expected = net.expected_code(logits)  # (B, L, D)
            sq = (expected - net.codebook[x1]).square().sum(-1)
            weight = self.l2_weight if self.loss_type == "ce+l2" else 1.0
            loss = loss + weight * (sq * trained).sum() / n
            metrics["l2"] = ((sq * trained).sum() / n).detach()
            if self.loss_type == "l2":
                tokens = net.nearest_code(expected.detach())
        metrics["token_acc"] = (((tokens == x1) & trained).sum() / n).detach()
        return LossOutput(loss, metrics)

    def sample(self, *args, **kwargs) -> Sample:
        """``student_sample`` with this loss's token rule (the sampler lives apart from the loss)."""
        return student_sample(*args, loss_type=self.loss_type, **kwargs)

    @torch.no_grad()
    def evaluate(self, net: DistilledStudent, dataloader, **unused) -> dict:
        """Token agreement with the teacher's pairs (held-out noise), after one and two steps."""
        agree1 = agree2 = count = 0
        for batch in dataloader:
            x1 = batch["x1"]
            agree1 += (self.sample(net, batch["noise"], batch["cond"], 1).tokens == x1).sum().item()
            agree2 += (self.sample(net, batch["noise"], batch["cond"], 2).tokens == x1).sum().item()
            count += x1.numel()
        return {"token_agreement_1step": agree1 / count, "token_agreement_2step": agree2 / count,
                "eval_pairs": count // net.seq_len}


class MarginalFit:
    """Maximum likelihood of the per-class, per-position marginals of the teacher's tokens."""

    def loss(self, net: MarginalTable, x1: torch.Tensor, cond: torch.Tensor, noise=None,
             generator=None) -> LossOutput:
        nll = F.cross_entropy(net(x1, None, cond).transpose(1, 2), x1)
        return LossOutput(nll, {"nll_nats": nll.detach()})

    @torch.no_grad()
    def evaluate(self, net: MarginalTable, dataloader, **unused) -> dict:
        total = count = 0
        for batch in dataloader:
            total += F.cross_entropy(net(batch["x1"], None, batch["cond"]).transpose(1, 2), batch["x1"],
                                     reduction="sum").item()
            count += batch["x1"].numel()
        return {"nll_nats_per_token": total / count}

    def sample(self, *args, **kwargs):
        """``marginal_sample`` (the sampler lives apart from the loss; this keeps the objective contract)."""
        return marginal_sample(*args, **kwargs)


def student_tokens(net: DistilledStudent, hidden: torch.Tensor, loss_type: str = "ce") -> torch.Tensor:
    """Tokens (B, L) from hidden states: the arg-max token, or under the "l2" loss the code nearest the
    expected code vector (what that loss trains)."""
    logits = net.head(hidden).float()
    return net.nearest_code(net.expected_code(logits)) if loss_type == "l2" else logits.argmax(-1)


@torch.no_grad()
def student_sample(net: DistilledStudent, noise: torch.Tensor, labels: torch.Tensor, steps: int = 1,
                   keep: int | None = None, loss_type: str = "ce") -> Sample:
    """Tokens from noise (B, L, D) in ``steps`` (1 or 2) network passes. The second pass keeps the
    first ``keep`` tokens of the first (default half) and re-reads the same noise for the rest;
    ``loss_type``: the loss the student was trained with, which decides how hidden states become tokens."""
    steps = check_int("steps", steps, low=1, high=2)  # the student samples in 1 or 2 steps
    keep = check_int("keep", keep, low=1, high=net.seq_len - 1, optional=True)
    check_choice("loss_type", loss_type, LOSS_TYPES)
    tokens = student_tokens(net, net.hidden(noise, labels), loss_type)
    if steps == 2:
        keep = net.seq_len // 2 if keep is None else keep
        second = student_tokens(net, net.hidden(noise, labels, tokens, keep), loss_type)
        tokens = torch.cat([tokens[:, :keep], second[:, keep:]], 1)
    return Sample(tokens, nfe=steps)


@torch.no_grad()
def marginal_sample(net: MarginalTable, labels: torch.Tensor, temperature: float = 1.0,
                    generator: torch.Generator | None = None) -> Sample:
    """Every token drawn independently from its marginal: one table look-up (NFE 1)."""
    check_float("temperature", temperature, low=0.0)
    logits = net(labels, None, labels)  # (B, L, K)
    return Sample(propose(logits, temperature, generator), nfe=1)
