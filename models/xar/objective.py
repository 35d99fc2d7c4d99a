"""Next-X flow matching with Noisy Context Learning (NCL), and the entity-by-entity sampler.

Training (noisy_context=True, xAR's NCL): every entity of a row draws its own time t (logit-normal by
default), all tokens are noised at once on the core's path x_t = t x1 + (1 - t) x0 (t = 1 data; the
reference runs time the other way), and the network sees the noisy entities under the block-causal
mask, so the context it conditions on is noisy too. MSE of the velocity on every token.

Without NCL (noisy_context=False, the clean teacher-forced baseline) the sequence is doubled:
[clean tokens, noisy tokens]; a noisy entity sees the clean entities before it and itself
(``Partition.teacher_forcing_mask``), so context is always clean, as it is when sampling.

Sampling: for each entity in order, the core's ``flow_sample`` integrates its tokens from noise with
the finished entities in a KV cache; the finished entity is then run once, clean (t = 1), to add its
keys. Guidance batches conditional and null rows together, its scale ramped linearly over the AR steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from models.xar.network import NextXTransformer
from zoo import generators
from zoo.checks import MAX_STEPS, check_float, check_int
from zoo.nn import KVCache
from zoo.objectives.base import LossOutput
from zoo.objectives.flow import FlowMatching, guided as guided_velocity, integrate_flow


class NextXFlowMatching:
    """Args:
        noisy_context: NCL (per-entity times, noisy context); False: clean teacher forcing.
        time_sampler, logit_normal_mean, logit_normal_std: the per-entity time draw (FlowMatching's).
        label_dropout: share of rows trained with the null class, for guidance.
    """

    def __init__(self, noisy_context: bool = True, time_sampler: str = "logit_normal", logit_normal_mean: float = 0.0,
                 logit_normal_std: float = 1.0, label_dropout: float = 0.1):
        self.flow = FlowMatching(time_sampler, logit_normal_mean, logit_normal_std, cond_drop_prob=label_dropout)
        self.noisy_context = noisy_context

    def entity_times(self, batch_size: int, num_entities: int, generator=None, device="cpu") -> torch.Tensor:
        """One time per entity and row, drawn independently: (B, E)."""
        return self.flow.sample_times(batch_size * num_entities, generator, device).view(batch_size, num_entities)

    def loss(self, net: NextXTransformer, x1: torch.Tensor, cond: torch.Tensor,
             generator: torch.Generator | None = None) -> LossOutput:
        """x1: latents (B, C, H, W); cond: labels (B,)."""
        part = net.partition
        tokens = part.to_tokens(x1)  # (B, N, C)
        b, n, _ = tokens.shape
        entity = part.token_entity.to(x1.device)
        t = self.entity_times(b, part.num_entities, generator, x1.device)[:, entity]  # (B, N)
        x0 = torch.randn(tokens.shape, generator=generator, device=x1.device, dtype=x1.dtype)
        xt = t[..., None] * tokens + (1 - t[..., None]) * x0
        target = tokens - x0
        if self.flow.cond_drop_prob > 0:
            drop = torch.rand(b, generator=generator, device=x1.device) < self.flow.cond_drop_prob
            cond = net.drop_cond(cond, drop)
        if self.noisy_context:
            v = net(xt, t, cond)
        else:
            slots = part.token_slot.to(x1.device)
            v = net(torch.cat([tokens, xt], 1), torch.cat([torch.ones_like(t), t], 1), cond,
                    slots=torch.cat([slots, slots]), attn_mask=part.teacher_forcing_mask(x1.device))[:, n:]
        loss = (v.float() - target.float()).square().mean()
        return LossOutput(loss, {"velocity_mse": loss.detach()})

    @torch.no_grad()
    def evaluate(self, net: NextXTransformer, dataloader, generator=None, **unused) -> dict:
        """Velocity MSE on a split, with the objective's own time draws (no label dropout)."""
        total, count = 0.0, 0
        for batch in dataloader:
            total += self.loss(net, batch["x1"], batch["cond"], generator).loss.item() * len(batch["cond"])
            count += len(batch["cond"])
        return {"velocity_mse": total / count}


@dataclass
class LatentSample:
    latents: torch.Tensor  # (B, C, H, W)
    nfe: int  # velocity passes: a guided step is one batched pass, or two with cfg_batched=False
    ar_steps: int
    cache_passes: int  # clean passes run only to put a finished entity's keys in the cache
    steps: list[int]  # flow steps of each entity

    @property
    def net_calls(self) -> int:
        """Every forward pass of the network: velocity passes and cache passes."""
        return self.nfe + self.cache_passes


def guidance_ramp(scale: float, step: int, num_steps: int, ramp: bool) -> float:
    """The guidance scale at AR step ``step`` (0-based) of ``num_steps``: linear from 1 at the first
    step to ``scale`` at the last, as the reference's 1 + (w - 1) k / 3 over its 4 cells; constant
    without ``ramp`` or with one step."""
    return 1.0 + (scale - 1.0) * step / (num_steps - 1) if ramp and num_steps > 1 else scale


def entity_steps(steps, num_entities: int) -> list[int]:
    """Flow steps of each entity: one int for all, or a list with one per entity (e.g. [8, 4, 4, 2]:
    more for the first entity, which has no context to lean on)."""
    if isinstance(steps, (list, tuple)):
        if len(steps) != num_entities:
            raise ValueError(f"steps={list(steps)}: give one step count per entity ({num_entities}) or one int")
        return [check_int("steps", s, low=1, high=MAX_STEPS) for s in steps]
    return [check_int("steps", steps, low=1, high=MAX_STEPS)] * num_entities


class _Context:
    """The finished entities, as the sampler feeds them back: keys in KV caches (one for all rows, or
    one per guidance half), or, uncached, the clean tokens rerun at every pass.

    ``fuse`` holds a finished entity back until the next entity's first velocity pass and runs both in
    that one pass: the finished tokens (t = 1) see the cache and themselves, the new ones see all, and the
    cache keeps the finished entity's keys only. Same attention as a separate clean pass, one call fewer
    per entity."""

    def __init__(self, net: NextXTransformer, rows: torch.Tensor, halves: int, use_cache: bool, fuse: bool):
        self.net, self.rows, self.use_cache, self.fuse = net, rows, use_cache, fuse and use_cache
        self.groups = rows.chunk(halves)  # rows run together in one pass
        self.caches = [KVCache() for _ in self.groups] if use_cache else None
        part = net.partition
        self.slots_all, self.entity = part.token_slot.to(rows.device), part.token_entity.to(rows.device)
        self.done = [torch.zeros(g.shape[0], 0, net.latent_channels, device=rows.device) for g in self.groups]
        self.pending = None  # (clean tokens per group, their slots): a finished entity not yet cached
        self.cache_passes = 0

    def velocity(self, x: torch.Tensor, t: torch.Tensor, start: int, end: int) -> torch.Tensor:
        """x (rows, n, C) at time t (rows,) for the entity [start, end) -> velocities, one pass a group."""
        out = []
        for g, (cond, xg, tg) in enumerate(zip(self.groups, x.split([len(c) for c in self.groups]),
                                                t.split([len(c) for c in self.groups]))):
            slots = self.slots_all[start:end]
            if not self.use_cache:  # the whole prefix, clean, then this entity: block-causal over both
                seq = torch.cat([self.done[g], xg], 1)
                times = torch.cat([torch.ones(seq.shape[0], start, device=x.device), tg[:, None].expand(-1, end - start)], 1)
                e = self.entity[:end]
                out.append(self.net(seq, times, cond, slots=self.slots_all[:end], attn_mask=e[:, None] >= e[None, :])[:, start:])
            elif self.pending is not None:  # the finished entity rides along, and its keys stay
                clean, clean_slots = self.pending[0][g], self.pending[1]
                m, past = clean.shape[1], self.caches[g].length
                times = torch.cat([torch.ones(xg.shape[0], m, device=x.device), tg[:, None].expand(-1, end - start)], 1)
                mask = torch.ones(m + end - start, past + m + end - start, dtype=torch.bool, device=x.device)
                mask[:m, past + m:] = False  # the finished tokens do not see the new entity
                v = self.net(torch.cat([clean, xg], 1), times, cond, slots=torch.cat([clean_slots, slots]),
                             attn_mask=mask, cache=self.caches[g], update_cache=True)
                self.caches[g].truncate(past + m)
                out.append(v[:, m:])
            else:
                out.append(self.net(xg, tg, cond, slots=slots, cache=self.caches[g]))
        if self.pending is not None and self.use_cache:
            self.pending = None
        return torch.cat(out)

    def add(self, clean: torch.Tensor, start: int, end: int) -> None:
        """A finished entity (rows, n, C) joins the context."""
        parts = list(clean.split([len(c) for c in self.groups]))
        if not self.use_cache:
            self.done = [torch.cat([d, p], 1) for d, p in zip(self.done, parts)]
        elif self.fuse:
            self.pending = (parts, self.slots_all[start:end])
        else:
            for g, (cond, p) in enumerate(zip(self.groups, parts)):
                self.net(p, torch.ones(p.shape[0], device=p.device), cond, slots=self.slots_all[start:end],
                         cache=self.caches[g], update_cache=True)
                self.cache_passes += 1


@torch.no_grad()
def next_x_sample(net: NextXTransformer, labels: torch.Tensor, steps=20, solver: str = "euler",
                  guidance_scale: float = 1.0, cfg_ramp: bool = True, use_cache: bool = True,
                  fuse_cache_pass: bool = True, cfg_batched: bool = True,
                  generator: torch.Generator | None = None) -> LatentSample:
    """Latents (B, C, H, W) for labels (B,), one entity per AR step, ``steps`` flow steps each (an int,
    or one per entity) with ``solver`` (an ODE solver, ``euler_maruyama`` as the reference samples, or a
    diffusers scheduler).

    use_cache=False reruns the whole prefix at every flow step (the reference check of the cache: both
    give the same latents). fuse_cache_pass=False runs a separate clean pass to cache each finished
    entity (the plain KV-cache sampler); cfg_batched=False runs guidance's conditional and null rows as
    two passes. Both exist to measure what the defaults buy; all give the same latents."""
    per_entity = entity_steps(steps, net.partition.num_entities)
    guidance_scale = check_float("guidance_scale", guidance_scale)
    part = net.partition
    b, c, device = labels.shape[0], net.latent_channels, labels.device
    guided = guidance_scale != 1.0
    rows = torch.cat([labels, torch.full_like(labels, net.num_classes)]) if guided else labels
    context = _Context(net, rows, 2 if guided and not cfg_batched else 1, use_cache, fuse_cache_pass)
    out, nfe = [], 0
    for k, (start, end) in enumerate(part.entity_bounds):
        scale = guidance_ramp(guidance_scale, k, part.num_entities, cfg_ramp)

        def entity_velocity(x, t: float, start=start, end=end):  # x (rows, n, C): the context's rows
            return context.velocity(x, torch.full((x.shape[0],), t, device=x.device, dtype=x.dtype), start, end)

        velocity = guided_velocity(entity_velocity, scale) if guided else entity_velocity
        x0 = generators.randn((b, end - start, c), generator, device=device)
        sample = integrate_flow(velocity, x0, steps=per_entity[k], solver=solver, generator=generator)
        nfe += sample.nfe * len(context.groups)
        out.append(sample.x)
        if k + 1 < part.num_entities:
            context.add(torch.cat([sample.x, sample.x]) if guided else sample.x, start, end)
    return LatentSample(part.from_tokens(torch.cat(out, 1)), nfe, part.num_entities, context.cache_passes, per_entity)
