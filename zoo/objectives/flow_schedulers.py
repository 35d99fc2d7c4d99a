"""diffusers schedulers as flow solvers: ``FlowMatching.sample(..., solver="unipc")`` or any diffusers
scheduler object configured for flow matching.

The one place where the conventions meet. Ours: t = 0 is noise, t = 1 is data, x_t = (1 - t) x0 + t x1,
and the network predicts v = dx/dt. diffusers' flow schedulers: sigma = 1 is noise, x = sigma noise +
(1 - sigma) data, timestep = sigma x num_train_timesteps, and the model output is dx/dsigma = -v. So
each scheduler timestep is evaluated at t = 1 - timestep / num_train_timesteps and given -v; guidance
is mixed into v before the scheduler sees it.
"""

from __future__ import annotations

from typing import Callable

import torch

# name -> (diffusers class, its config for flow matching with no time shift)
SCHEDULERS: dict[str, tuple[str, dict]] = {
    "flow_euler": ("FlowMatchEulerDiscreteScheduler", {"shift": 1.0}),
    "flow_heun": ("FlowMatchHeunDiscreteScheduler", {"shift": 1.0}),
    "unipc": ("UniPCMultistepScheduler", {"prediction_type": "flow_prediction", "use_flow_sigmas": True,
                                          "flow_shift": 1.0}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"prediction_type": "flow_prediction", "use_flow_sigmas": True,
                                                 "flow_shift": 1.0, "algorithm_type": "dpmsolver++",
                                                 "solver_order": 2}),
}


def is_scheduler(solver) -> bool:
    """A diffusers scheduler object (duck-typed: it sets timesteps and steps)."""
    return hasattr(solver, "set_timesteps") and hasattr(solver, "step")


def make_scheduler(name: str):
    """A fresh diffusers scheduler by name (see ``SCHEDULERS``)."""
    if name not in SCHEDULERS:
        raise ValueError(f"scheduler {name!r} is unknown; choose one of {sorted(SCHEDULERS)} or pass a "
                         f"diffusers scheduler object")
    import diffusers

    cls, config = SCHEDULERS[name]
    return getattr(diffusers, cls)(num_train_timesteps=1000, **config)


@torch.no_grad()
def integrate(velocity: Callable[[torch.Tensor, float], torch.Tensor], x0: torch.Tensor, steps: int,
              scheduler) -> torch.Tensor:
    """x at t = 1 from noise x0, with ``velocity(x, t)`` in our convention and ``steps`` scheduler steps
    (a two-stage scheduler such as Heun evaluates twice a step)."""
    scheduler.set_timesteps(steps, device=x0.device)
    scale = float(scheduler.config.num_train_timesteps)
    x = x0
    for timestep in scheduler.timesteps:
        t = 1.0 - float(timestep) / scale
        model_output = -velocity(x, t)
        x = scheduler.step(model_output, timestep, x, return_dict=False)[0]
    return x
