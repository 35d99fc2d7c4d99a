"""Masked-diffusion sampling: a short loop over semi-autoregressive blocks, with the unmasking
policy and the KV cache as objects passed in (``Policy`` / ``NoCache``, ``PrefixCache``, ``DualCache``).

One step predicts every masked position, then commits some of them (the rest stay masked):

- ``random``: commit a random subset (MDLM / "origin" order);
- ``low_confidence``: commit the highest probability of the proposed token (LLaDA);
- ``margin``: highest top-1 minus top-2 probability;
- ``entropy``: lowest predictive entropy (Dream, DiffuCoder);
- ``threshold``: commit every masked token of the block whose top-1 probability reaches ``threshold``,
  and at least the most confident one (Fast-dLLM); the number of steps is then adaptive;
- ``origin``: each masked token is committed independently with the step's share of the remaining
  masks as probability (Dream's ``origin``).

How many a step commits is the schedule's (``zoo.objectives.transfer_schedules``): ``linear`` (LLaDA)
or ``time_grid`` (Dream). ``position_temperature`` > 0 draws which positions to commit from
softmax(score / position_temperature) instead of taking the best (Dream's ``alg_temp``).

A policy may also be a callable ``score(logits, x0, generator) -> (B, L)`` (higher = commit first) or
a ``Policy`` subclass (its own ``commit``).
The answer is cut into blocks of ``block_length`` decoded left to right, ``steps`` shared between them.
Returns the tokens with the number of network evaluations (NFE) spent.

A shifted network (``net.shift``, adapted from an AR model: its logit at i predicts token i + 1) is
read one position to the left: a block [lo, hi) takes its logits from queries [lo - 1, hi - 1), and
the caches recompute from lo - 1 so that query is never a stale cached key.
"""

from __future__ import annotations

from typing import Callable

import torch

from zoo import generators
from zoo.checks import MAX_BATCH, MAX_STEPS, check_bool, check_float, check_int, check_tensor
from zoo.nn.attention import KVCache
from zoo.objectives.base import Sample
from zoo.objectives.transfer_schedules import Schedule, make_schedule


class Policy:
    """Which masked positions of a block a step commits. ``score`` ranks them (higher first); the
    base ``commit`` takes the top ``k`` of the block's step budget (LLaDA's schedule). An ``adaptive``
    policy decides the count itself, so the number of steps is not fixed in advance."""

    adaptive = False

    def count(self, k: torch.Tensor, remaining: torch.Tensor, fraction: torch.Tensor, generator) -> torch.Tensor:
        """The number to commit (B,): the schedule's ``k`` unless the policy draws its own."""
        return k

    def score(self, logits: torch.Tensor, x0: torch.Tensor, generator) -> torch.Tensor:  # (B, L)
        raise NotImplementedError

    def commit(self, score: torch.Tensor, candidates: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """score, candidates (B, L) over the whole sequence (-inf / False outside the block); k (B,)
        tokens to commit -> (B, L) bool. Equal scores are common (the first step over an all-mask
        answer gives many positions the same confidence), so ties are broken as LLaDA's and Dream's
        reference code breaks them: ``torch.topk`` over the whole sequence, rows with the same k together."""
        chosen = torch.zeros_like(candidates)
        for count in k.unique().tolist():
            if count > 0:
                rows = (k == count).nonzero()[:, 0]
                chosen[rows[:, None], torch.topk(score[rows], count, dim=1).indices] = True
        return candidates & chosen


class ScorePolicy(Policy):
    """A score function ``(logits, x0, generator) -> (B, L)`` as a policy."""

    def __init__(self, score_fn: Callable):
        self.score_fn = score_fn

    def score(self, logits, x0, generator):
        return self.score_fn(logits, x0, generator)


def top1_prob(logits, x0, generator):
    return logits.softmax(-1).gather(-1, x0[..., None])[..., 0]


def random_score(logits, x0, generator):
    return generators.rand(x0.shape, generator, device=x0.device)


def margin(logits, x0, generator):
    top2 = logits.softmax(-1).topk(2, dim=-1).values
    return top2[..., 0] - top2[..., 1]


def neg_entropy(logits, x0, generator):
    """sum p log(p + 1e-10), Dream's own formula: entropies of near-flat distributions differ in the
    last bits, so the ranking is Dream's only when the arithmetic is."""
    probs = logits.softmax(-1)
    return (probs * torch.log(probs + 1e-10)).sum(-1)


class ThresholdPolicy(ScorePolicy):
    """Fast-dLLM: every masked token whose top-1 probability reaches ``threshold``, and at least the
    most confident one per row."""

    adaptive = True

    def __init__(self, threshold: float = 0.9):
        super().__init__(top1_prob)
        self.threshold = check_float("threshold", threshold, low=0.0, high=1.0, low_open=True)

    def commit(self, score, candidates, k):
        commit = candidates & (score >= self.threshold)
        best = score.argmax(1)
        has = candidates.any(1)
        commit[has, best[has]] = True
        return commit


class OriginPolicy(ScorePolicy):
    """Dream's ``origin``: every masked token moves with probability ``fraction`` (the schedule's share
    of the remaining masks), i.e. a Binomial(remaining, fraction) count of uniformly random positions."""

    def __init__(self):
        super().__init__(random_score)

    def count(self, k, remaining, fraction, generator):
        drawn = generators.binomial(remaining.double(), fraction.double().expand(remaining.shape), generator)
        return drawn.long()


class SampledPositions(Policy):
    """Positions drawn without replacement from softmax(score / temperature) (Dream's ``alg_temp``),
    by the Gumbel-top-k trick: the top k of score / temperature + Gumbel noise."""

    def __init__(self, base: Policy, temperature: float):
        self.base, self.adaptive = base, base.adaptive
        self.temperature = check_float("position_temperature", temperature, low=0.0, low_open=True)

    def count(self, k, remaining, fraction, generator):
        return self.base.count(k, remaining, fraction, generator)

    def score(self, logits, x0, generator):
        score = self.base.score(logits, x0, generator).double() / self.temperature
        u = generators.rand(score.shape, generator, device=score.device, dtype=torch.float64)
        return score - torch.log(-torch.log(u.clamp_min(1e-20)))

    def commit(self, score, candidates, k):
        return self.base.commit(score, candidates, k)


SCORES: dict[str, Callable] = {"random": random_score, "low_confidence": top1_prob, "margin": margin,
                               "entropy": neg_entropy}
POLICIES = (*SCORES, "threshold", "origin")


def make_policy(policy: "str | Callable | Policy", threshold: float, position_temperature: float = 0.0) -> Policy:
    if isinstance(policy, Policy):
        chosen = policy
    elif callable(policy):
        chosen = ScorePolicy(policy)
    elif policy == "threshold":
        chosen = ThresholdPolicy(threshold)
    elif policy == "origin":
        chosen = OriginPolicy()
    elif policy in SCORES:
        chosen = ScorePolicy(SCORES[policy])
    else:
        raise ValueError(f"policy={policy!r} is unknown; choose one of {sorted(POLICIES)}, a Policy or a callable")
    if check_float("position_temperature", position_temperature, low=0.0) > 0:
        return SampledPositions(chosen, position_temperature)
    return chosen


def network_shift(net) -> int:
    """1 when the network's logit at i predicts token i + 1 (``net.shift``), else 0."""
    return int(bool(getattr(net, "shift", False)))


class NoCache:
    """Every step runs the network over the whole sequence.

    A block [lo, hi) of length bl reads its logits from queries lo - shift .. lo - shift + bl - 1; the
    caches recompute the window [self.lo, hi) = [lo - shift, hi) and keep every key outside it."""

    def start_block(self, lo: int, hi: int, seq_len: int, valid, abs_pos, n_steps: int, shift: int = 0) -> None:
        self.lo, self.hi, self.bl = lo - shift, hi, hi - lo

    def block_logits(self, net, x, t, cond, valid, step: int) -> torch.Tensor:  # (B, bl, V)
        return net(x, t, cond, valid=valid)[:, self.lo:self.lo + self.bl]


class PrefixCache(NoCache):
    """Fast-dLLM's approximate KV cache: each block starts with a full pass whose keys and values are
    kept for the prefix; later steps recompute the block and the suffix. ``refresh_every`` redoes the
    full pass every that many steps of a block (1 = every step, which is exact; None = once a block)."""

    def __init__(self, refresh_every: int | None = None):
        self.refresh_every = check_int("refresh_every", refresh_every, low=1, optional=True)

    def keys_kept(self, seq_len: int, device) -> torch.Tensor:
        return torch.arange(self.lo, device=device)

    def start_block(self, lo, hi, seq_len, valid, abs_pos, n_steps, shift=0):
        super().start_block(lo, hi, seq_len, valid, abs_pos, n_steps, shift)
        self.period = self.refresh_every or n_steps + (hi - lo)  # past the block's last step: once
        self.kept = self.keys_kept(seq_len, abs_pos.device)
        self.cached = None

    def block_logits(self, net, x, t, cond, valid, step):
        if step % self.period == 0:  # a full pass, keeping its keys
            full = KVCache()
            logits = net(x, t, cond, valid=valid, cache=full, update_cache=True)[:, self.lo:self.lo + self.bl]
            self.cached = full.select(self.kept)
            return logits
        return self.partial(net, x, t, cond, valid)

    def partial(self, net, x, t, cond, valid):
        return net(x[:, self.lo:], t, cond, valid=valid, cache=self.cached)[:, :self.bl]


class DualCache(PrefixCache):
    """Keys kept for prefix and suffix; later steps recompute the block alone (a bidirectional net)."""

    def keys_kept(self, seq_len, device):
        return torch.cat([torch.arange(self.lo, device=device), torch.arange(self.hi, seq_len, device=device)])

    def start_block(self, lo, hi, seq_len, valid, abs_pos, n_steps, shift=0):
        super().start_block(lo, hi, seq_len, valid, abs_pos, n_steps, shift)
        lo = self.lo  # cached keys are [prefix, suffix], then the window's own
        self.key_valid = None if valid is None else torch.cat([valid[:, :lo], valid[:, hi:], valid[:, lo:hi]], 1)
        self.positions = abs_pos[:, lo:hi]

    def partial(self, net, x, t, cond, valid):
        return net(x[:, self.lo:self.hi], t, cond, valid=self.key_valid, cache=self.cached,
                   positions=self.positions)[:, :self.bl]


CACHES = {None: NoCache, "prefix": PrefixCache, "dual": DualCache}


def make_cache(cache, refresh_every: int | None, net) -> NoCache:
    if not isinstance(cache, NoCache):
        if cache not in CACHES:
            raise ValueError(f"cache={cache!r} must be None, 'prefix', 'dual' or a cache object")
        cache = NoCache() if cache is None else CACHES[cache](refresh_every)
    if isinstance(cache, DualCache) and getattr(net, "causal", False):  # named or passed as an object
        raise ValueError("cache='dual' needs a bidirectional network; use 'prefix' for a causal one")
    return cache


def propose(logits: torch.Tensor, temperature: float, generator=None) -> torch.Tensor:
    """Token proposals from logits (B, L, V): argmax at temperature 0, else Gumbel-max sampling."""
    if temperature == 0:
        return logits.argmax(-1)
    u = generators.rand(logits.shape, generator, device=logits.device, dtype=torch.float64)
    gumbel = -torch.log(-torch.log(u.clamp_min(1e-20)))
    return (logits.double() / temperature + gumbel).argmax(-1)


def steps_per_block(steps: int, num_blocks: int) -> list[int]:
    """Spread ``steps`` over blocks as evenly as possible, earlier blocks first."""
    return [steps // num_blocks + (b < steps % num_blocks) for b in range(num_blocks)]


def _check_args(prompt, gen_length, block_length, steps, policy: Policy, temperature, x_init, max_seq_len, mask_id,
                vocab_size: int | None = None):
    gen_length = check_int("gen_length", gen_length, low=1, high=max_seq_len)
    if check_int("block_length", block_length, low=1) and gen_length % block_length:
        raise ValueError(f"gen_length={gen_length} must be a positive multiple of "
                         f"block_length={block_length}")
    num_blocks = gen_length // block_length
    if not policy.adaptive:
        steps = check_int("steps", steps, low=1, high=MAX_STEPS)
        if steps < num_blocks:
            raise ValueError(f"steps={steps} is fewer than the {num_blocks} blocks "
                             f"(gen_length / block_length); every block needs a step")
        if steps > gen_length:
            raise ValueError(f"steps={steps} exceeds gen_length={gen_length}; a step commits at "
                             f"least one token")
    check_float("temperature", temperature, low=0.0)
    if max_seq_len is not None and prompt.shape[1] + gen_length > max_seq_len:
        raise ValueError(f"prompt length {prompt.shape[1]} + gen_length {gen_length} exceeds the "
                         f"model's context of {max_seq_len} tokens")
    if (prompt == mask_id).any():
        raise ValueError("the prompt contains the mask token")
    if x_init is not None and (not isinstance(x_init, torch.Tensor) or tuple(x_init.shape) != (prompt.shape[0], gen_length)):
        raise ValueError(f"x_init has shape {tuple(getattr(x_init, 'shape', ()))}; expected a tensor of "
                         f"(batch, gen_length) = ({prompt.shape[0]}, {gen_length})")
    if x_init is not None:  # token ids: integers of the vocabulary (a float or negative id decoded to nothing)
        check_tensor("x_init", x_init, (None, None), integer=True, low=0,
                     high=None if vocab_size is None else vocab_size - 1)


@torch.no_grad()
def sample(net, *, mask_id: int, gen_length: int, steps: int | None = None,
           prompt: torch.Tensor | None = None, prompt_valid: torch.Tensor | None = None,
           batch_size: int | None = None, block_length: int | None = None,
           policy: str | Callable | Policy = "low_confidence", temperature: float = 0.0,
           threshold: float = 0.9, x_init: torch.Tensor | None = None, cond=None,
           eos_id: int | None = None, eos_fill: bool = False, defer_eos: bool = False,
           schedule: str | Schedule = "linear", position_temperature: float = 0.0, propose_mask: bool = False,
           max_seq_len: int | None = None, cache: str | NoCache | None = None,
           refresh_every: int | None = None,
           logits_hook: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
           generator: torch.Generator | None = None, device: torch.device | str | None = None
           ) -> Sample:
    """Decode ``gen_length`` tokens after ``prompt``.

    Args:
        prompt: (B, P) token ids, left-padded; ``prompt_valid`` (B, P) is False on the padding.
            Without a prompt, ``batch_size`` unconditional sequences are drawn.
        steps: total denoising steps over all blocks (ignored by an adaptive policy: threshold).
        block_length: semi-autoregressive block size; defaults to one block of gen_length.
        policy: a name in POLICIES (``threshold`` uses ``threshold``), a score callable or a Policy.
        x_init: (B, G) infilling: tokens other than ``mask_id`` are kept and never change.
        eos_id / eos_fill: once an EOS is committed, fill every masked position after it with EOS
            (the trailing EOS run is one unit), which ends decoding early.
        defer_eos: an EOS proposal ranks below every other candidate of its row, except at the row's
            first masked position of the block: the answer ends where the text before it is decided.
            A model trained on EOS-padded answers is most confident of EOS far from the prompt, and
            low-confidence decoding otherwise commits those first and ends answers early.
        schedule: how many tokens a step commits, "linear" (LLaDA), "time_grid" (Dream) or a Schedule.
        position_temperature: > 0 draws the positions to commit (Dream's alg_temp); 0 takes the best.
        propose_mask: leave the mask token among the proposals, as LLaDA's and Dream's reference code
            do (a committed mask stays masked); False (default) never proposes it.
        max_seq_len: the network's context, checked against P + G.
        cache: None, "prefix" or "dual" (PrefixCache, DualCache: Fast-dLLM's approximate KV caching;
            the network must accept ``cache``, ``positions`` and ``valid`` over all keys, as zoo.nn
            attention does), or a cache object; ``refresh_every`` goes to the named caches.
        logits_hook(offset, logits (B, bl, V)) -> logits: constrains a block's logits before any choice;
            ``offset`` is the block's first answer position (token healing masks answer position 0).
    """
    if prompt is None:
        if batch_size is None and x_init is not None:
            batch_size = x_init.shape[0]
        if batch_size is None:
            raise ValueError("give a prompt, a batch_size or x_init")
        batch_size = check_int("batch_size", batch_size, low=1, high=MAX_BATCH)
        prompt = torch.zeros(batch_size, 0, dtype=torch.long, device=device)
    elif check_int("batch_size", batch_size, low=1, high=MAX_BATCH, optional=True) is not None \
            and batch_size != prompt.shape[0]:
        raise ValueError(f"batch_size={batch_size} differs from the {prompt.shape[0]} prompts")
    block_length = gen_length if block_length is None else block_length
    check_float("threshold", threshold, low=0.0, high=1.0, low_open=True)
    check_int("refresh_every", refresh_every, low=1, optional=True)
    policy = make_policy(policy, threshold, position_temperature)
    schedule = make_schedule(schedule)
    _check_args(prompt, gen_length, block_length, steps, policy, temperature, x_init, max_seq_len, mask_id,
                getattr(net, "vocab_size", None))
    check_bool("propose_mask", propose_mask)
    for name, on in (("eos_fill", eos_fill), ("defer_eos", defer_eos)):
        if check_bool(name, on) and eos_id is None:
            raise ValueError(f"{name}=True needs eos_id")
    cache = make_cache(cache, refresh_every, net)
    shift = network_shift(net)
    if shift and (prompt.shape[1] == 0 or (prompt_valid is not None and not prompt_valid[:, -1].all())):
        raise ValueError("prompt: a shifted network predicts each token from the one before it; every row "
                         "needs a prompt of at least one token, left-padded")

    b, p = prompt.shape
    dev = prompt.device
    gen = torch.full((b, gen_length), mask_id, dtype=torch.long, device=dev)
    if x_init is not None:
        gen = x_init.to(dev).long().clone()
    x = torch.cat([prompt.long(), gen], 1)  # (B, L)
    seq_len = x.shape[1]
    valid = None
    if prompt_valid is not None:
        valid = torch.cat([prompt_valid.bool(), torch.ones_like(gen, dtype=torch.bool)], 1)
    # Absolute positions, counted from each row's first valid token. (B|1, L)
    abs_pos = (valid.long().cumsum(1) - 1).clamp(min=0) if valid is not None else torch.arange(seq_len, device=dev)[None]
    n_gen_free = (gen == mask_id).sum(1).clamp(min=1)  # (B,) for the time passed to the net
    num_blocks = gen_length // block_length
    plan = [block_length] * num_blocks if policy.adaptive else steps_per_block(steps, num_blocks)
    nfe = 0
    for blk in range(num_blocks):
        lo, hi = p + blk * block_length, p + (blk + 1) * block_length
        n_steps = plan[blk]
        schedule.start_block((x[:, lo:hi] == mask_id).sum(1), n_steps)  # (B,) masks of the block
        cache.start_block(lo, hi, seq_len, valid, abs_pos, n_steps, shift)
        for step in range(block_length + 1):  # a step commits at least one token: block_length suffice
            candidates = x[:, lo:hi] == mask_id  # (B, bl)
            if not candidates.any():
                break
            if step == block_length:
                raise RuntimeError(f"policy {type(policy).__name__} left masked tokens after {step} steps: "
                                   f"a step must commit at least one token of each row that has some")
            t = 1.0 - (x[:, p:] == mask_id).sum(1) / n_gen_free  # (B,) share of the answer decoded
            logits = cache.block_logits(net, x, t, cond, valid, step).float()  # (B, bl, V)
            nfe += 1
            if not propose_mask:
                logits[..., mask_id] = -torch.inf
            if logits_hook is not None:
                logits = logits_hook(lo - p, logits)
            x0 = propose(logits, temperature, generator)
            score = policy.score(logits, x0, generator).float()
            if defer_eos:
                score = _defer_eos(score, x0, candidates, eos_id)
            score = torch.where(candidates, score, torch.full_like(score, -torch.inf))
            remaining = candidates.sum(1)  # (B,)
            k, fraction = schedule.count(step, remaining)
            k = policy.count(k, remaining, fraction, generator)
            whole = (b, seq_len)  # the policy ranks over the whole sequence (the references' tie order)
            whole_score = score.new_full(whole, -torch.inf)
            whole_score[:, lo:hi] = score
            whole_candidates = torch.zeros(whole, dtype=torch.bool, device=dev)
            whole_candidates[:, lo:hi] = candidates
            chosen = policy.commit(whole_score, whole_candidates, k)[:, lo:hi]
            x[:, lo:hi] = torch.where(chosen, x0, x[:, lo:hi])
            if eos_fill:
                x = _fill_after_eos(x, p, eos_id, mask_id)
    return Sample(tokens=x, nfe=nfe, prompt_length=p)


DEFER_EOS = 1e4  # the built-in scores lie in [-log V, 1]: subtracting this keeps both orders intact


def _defer_eos(score: torch.Tensor, x0: torch.Tensor, candidates: torch.Tensor, eos_id: int) -> torch.Tensor:
    """score, x0, candidates (B, bl): EOS proposals after a row's first masked position rank last
    (and never reach the threshold policy's bar)."""
    first = candidates.long().argmax(1, keepdim=True)  # (B, 1) the first masked position
    later = torch.arange(score.shape[1], device=score.device)[None] > first
    return torch.where(later & (x0 == eos_id), score - DEFER_EOS, score)


def _fill_after_eos(x: torch.Tensor, p: int, eos_id: int, mask_id: int) -> torch.Tensor:
    """Set every masked answer position after the first committed EOS to EOS. x (B, L)."""
    ans = x[:, p:]
    is_eos = ans == eos_id
    after = is_eos.long().cumsum(1) > 0  # at or after the first EOS
    fill = after & (ans == mask_id)
    return torch.cat([x[:, :p], torch.where(fill, torch.full_like(ans, eos_id), ans)], 1)
