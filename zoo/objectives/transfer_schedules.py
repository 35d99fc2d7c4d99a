"""How many masked tokens of a block a sampling step commits: the masked sampler's second strategy
beside the policy (which ones). Both reference samplers are here:

- ``LinearSchedule`` (LLaDA's ``get_num_transfer_tokens``): the block's masks split evenly over its
  steps, the remainder in the first steps; fixed when the block starts.
- ``TimeGridSchedule`` (Dream's ``diffusion_generate``): times t_i = linspace(1, eps, steps + 1) in
  the papers' convention (1 = all masked); step i commits int(remaining * (1 - t_{i+1} / t_i)) of the
  tokens still masked, and the last step all of them, so some steps may commit none.

``count`` returns the number to commit (B,) and the share of the remaining masks it is (B,), which a
policy that moves each token independently (Dream's ``origin``) uses as its probability.
"""

from __future__ import annotations

import torch

from zoo.checks import check_float


class Schedule:
    def start_block(self, remaining: torch.Tensor, n_steps: int) -> None:
        """remaining (B,): masked tokens of each row's block when it starts."""
        self.n_steps = n_steps

    def count(self, step: int, remaining: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class LinearSchedule(Schedule):
    def start_block(self, remaining, n_steps):
        super().start_block(remaining, n_steps)
        self.per_step = torch.stack([remaining // n_steps + (s < remaining % n_steps).long()
                                     for s in range(n_steps)], 1)  # (B, n_steps)

    def count(self, step, remaining):
        k = self.per_step[:, step] if step < self.n_steps else remaining
        return k, k / remaining.clamp(min=1)


class TimeGridSchedule(Schedule):
    """Dream's grid. The arithmetic is float32, as in the reference, so that the counts agree to the
    token (Dream takes the batch's mean mask count; rows here keep their own, equal unless EOS fill
    ended some rows early)."""

    def __init__(self, eps: float = 1e-3):
        self.eps = check_float("eps", eps, low=0.0, high=1.0, low_open=True)

    def start_block(self, remaining, n_steps):
        super().start_block(remaining, n_steps)
        self.times = torch.linspace(1, self.eps, n_steps + 1, device=remaining.device)

    def count(self, step, remaining):
        if step >= self.n_steps - 1:
            return remaining, torch.ones_like(remaining, dtype=torch.float32)
        fraction = 1 - self.times[step + 1] / self.times[step]
        k = (remaining.float() * fraction).long()
        return k, fraction.expand(remaining.shape)


SCHEDULES = {"linear": LinearSchedule, "time_grid": TimeGridSchedule}


def make_schedule(schedule: "str | Schedule") -> Schedule:
    if isinstance(schedule, Schedule):
        return schedule
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule={schedule!r} is unknown; choose one of {sorted(SCHEDULES)} or a Schedule")
    return SCHEDULES[schedule]()
