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
from zoo.checks import MAX_STEPS, check_float, check_int
from zoo.nn import KVCache
from zoo.objectives.base import LossOutput, cfg
from zoo.objectives.flow import FlowMatching, flow_sample


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
    nfe: int  # AR steps x flow steps: the velocity evaluations (a guided one runs both rows in one batch)
    ar_steps: int
    cache_passes: int  # clean passes that put a finished entity's keys in the cache (AR steps - 1)


def guidance_ramp(scale: float, step: int, num_steps: int, ramp: bool) -> float:
    """The guidance scale at AR step ``step`` (0-based) of ``num_steps``: linear from 1 at the first
    step to ``scale`` at the last, as the reference's 1 + (w - 1) k / 3 over its 4 cells; constant
    without ``ramp`` or with one step."""
    return 1.0 + (scale - 1.0) * step / (num_steps - 1) if ramp and num_steps > 1 else scale


@torch.no_grad()
def next_x_sample(net: NextXTransformer, labels: torch.Tensor, steps: int = 20, solver: str = "euler",
                  guidance_scale: float = 1.0, cfg_ramp: bool = True, use_cache: bool = True,
                  generator: torch.Generator | None = None) -> LatentSample:
    """Latents (B, C, H, W) for labels (B,), one entity per AR step, ``steps`` flow steps each with
    ``solver`` (an ODE solver, ``euler_maruyama`` as the reference samples, or a diffusers scheduler).

    use_cache=False reruns the whole prefix at every flow step (the reference check of the cache:
    both give the same latents)."""
    steps = check_int("steps", steps, low=1, high=MAX_STEPS)
    guidance_scale = check_float("guidance_scale", guidance_scale)
    part = net.partition
    b, c, device = labels.shape[0], net.latent_channels, labels.device
    guided = guidance_scale != 1.0
    rows = torch.cat([labels, torch.full_like(labels, net.num_classes)]) if guided else labels
    slots_all = part.token_slot.to(device)
    cache = KVCache() if use_cache else None
    done = torch.zeros(rows.shape[0], 0, c, device=device)  # finished tokens (uncached path)
    out, nfe = [], 0
    for k, (start, end) in enumerate(part.entity_bounds):
        slots = slots_all[start:end]
        scale = guidance_ramp(guidance_scale, k, part.num_entities, cfg_ramp)

        def velocity(x, t, _cond=None, **_):
            xx = torch.cat([x, x]) if guided else x  # (rows, n, C)
            tt = t[:1].expand(rows.shape[0])
            if use_cache:
                v = net(xx, tt, rows, slots=slots, cache=cache)
            else:  # the whole prefix, clean, then this entity: block-causal over both
                seq = torch.cat([done, xx], 1)
                times = torch.cat([torch.ones(rows.shape[0], done.shape[1], device=device), tt[:, None].expand(-1, end - start)], 1)
                e = part.token_entity[:end].to(device)
                v = net(seq, times, rows, slots=slots_all[:end], attn_mask=e[:, None] >= e[None, :])[:, start:]
            return cfg(*v.chunk(2), scale) if guided else v

        x0 = torch.randn(b, end - start, c, generator=generator, device=device)
        sample = flow_sample(velocity, x0=x0, steps=steps, solver=solver, generator=generator)
        nfe += sample.nfe
        out.append(sample.x)
        clean = torch.cat([sample.x, sample.x]) if guided else sample.x
        if k + 1 < part.num_entities:
            if use_cache:
                net(clean, torch.ones(rows.shape[0], device=device), rows, slots=slots, cache=cache, update_cache=True)
            else:
                done = torch.cat([done, clean], 1)
    return LatentSample(part.from_tokens(torch.cat(out, 1)), nfe, part.num_entities, part.num_entities - 1)
