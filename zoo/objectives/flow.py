"""Flow matching on the linear (rectified-flow) path, its solvers and classifier-free guidance.

Time convention: t = 0 is Gaussian noise x0, t = 1 is data x1.
    x_t = t * x1 + (1 - t) * x0,    target velocity u = x1 - x0,    dx/dt = v(x_t, t).
A network is called as ``net(x_t, t, cond, **net_kwargs)`` and returns a velocity shaped like x_t.
For guidance it also offers ``net.drop_cond(cond, drop)`` -> cond with rows ``drop`` (B,) bool
replaced by the null condition.

diffusers' FlowMatchEulerDiscreteScheduler runs the same ODE in sigma = 1 - t with model output
dx/dsigma = -v; tests/zoo/test_flow.py checks the two agree step for step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from zoo import generators
from zoo.checks import MAX_STEPS, check_float, check_int
from zoo.objectives.base import LossOutput, cfg
from zoo.objectives.flow_schedulers import SCHEDULERS, integrate, is_scheduler, make_scheduler


def euler_step(velocity, x, t0: float, t1: float) -> torch.Tensor:
    return x + (t1 - t0) * velocity(x, t0)


def midpoint_step(velocity, x, t0: float, t1: float) -> torch.Tensor:
    h = t1 - t0
    return x + h * velocity(x + 0.5 * h * velocity(x, t0), t0 + 0.5 * h)


def heun_step(velocity, x, t0: float, t1: float) -> torch.Tensor:
    h = t1 - t0
    v0 = velocity(x, t0)
    return x + 0.5 * h * (v0 + velocity(x + h * v0, t1))


def euler_maruyama(generator: torch.Generator | None = None, churn: float = 1.0) -> Callable:
    """A stochastic step with the ODE's marginals (xAR samples this way): with the score of the linear
    path, s(x, t) = -(x - t v) / (1 - t), and a noise level eps(t) = churn (1 - t),
        dx = [v + eps s] dt + sqrt(2 eps) dW = [v - churn (x - t v)] dt + sqrt(2 churn (1 - t)) dW,
    finite up to t = 1. The step that ends at t = 1 is a plain Euler step (the reference also ends
    deterministically). Returns a step function for ``flow_sample``'s ``solver``."""

    def step(velocity, x, t0: float, t1: float) -> torch.Tensor:
        v = velocity(x, t0)
        h = t1 - t0
        if t1 >= 1.0:
            return x + h * v
        noise = generators.randn(x.shape, generator, device=x.device, dtype=x.dtype)
        return x + h * (v - churn * (x - t0 * v)) + math.sqrt(2 * churn * (1 - t0) * h) * noise

    return step


# name -> step(velocity, x, t0, t1) -> x at t1; velocity(x, t) is the (guided) network. A solver of
# one's own is passed to FlowMatching.sample as such a callable. STOCHASTIC_SOLVERS: name -> a factory
# of such a step from the sampler's generator.
SOLVERS: dict[str, Callable] = {"euler": euler_step, "midpoint": midpoint_step, "heun": heun_step}
STOCHASTIC_SOLVERS: dict[str, Callable] = {"euler_maruyama": euler_maruyama}
TIME_SAMPLERS = ("uniform", "logit_normal")


@dataclass
class FlowSample:
    x: torch.Tensor  # the sample at t = 1, shaped like x0
    nfe: int  # forward passes of the network (a guided step is one batched pass)


def _expand(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, ..., 1) to broadcast against x."""
    return t.reshape(-1, *([1] * (x.dim() - 1)))


class FlowMatching:
    """Linear-path flow matching.

    Args:
        time_sampler: "uniform" or "logit_normal" (SD3: t = sigmoid(N(mean, std))).
        logit_normal_mean, logit_normal_std: parameters of the logit-normal draw.
        cond_drop_prob: share of training rows whose condition is dropped (for guidance).
    """

    def __init__(self, time_sampler: str = "uniform", logit_normal_mean: float = 0.0,
                 logit_normal_std: float = 1.0, cond_drop_prob: float = 0.0):
        if time_sampler not in TIME_SAMPLERS:
            raise ValueError(f"time_sampler={time_sampler!r} must be one of {TIME_SAMPLERS}")
        if not 0.0 <= cond_drop_prob < 1.0:
            raise ValueError(f"cond_drop_prob={cond_drop_prob} must lie in [0, 1)")
        self.time_sampler = time_sampler
        self.logit_normal_mean = logit_normal_mean
        self.logit_normal_std = logit_normal_std
        self.cond_drop_prob = cond_drop_prob

    @staticmethod
    def path(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_t, target velocity) for t (B,)."""
        tt = _expand(t, x1)
        return tt * x1 + (1 - tt) * x0, x1 - x0

    def sample_times(self, batch_size: int, generator=None, device="cpu") -> torch.Tensor:
        if self.time_sampler == "uniform":
            return torch.rand(batch_size, generator=generator, device=device)
        z = torch.randn(batch_size, generator=generator, device=device)
        return torch.sigmoid(self.logit_normal_mean + self.logit_normal_std * z)

    def loss(self, net, x1: torch.Tensor, cond=None, mask: torch.Tensor | None = None,
             generator: torch.Generator | None = None, **net_kwargs) -> LossOutput:
        """Mean squared velocity error. ``mask`` (B, N) marks real set elements when x1 is a padded
        set (B, N, D); padded elements are left out of the mean."""
        b = x1.shape[0]
        t = self.sample_times(b, generator, x1.device)
        x0 = torch.randn(x1.shape, generator=generator, device=x1.device, dtype=x1.dtype)
        xt, target = self.path(x0, x1, t)
        if self.cond_drop_prob > 0 and cond is not None:
            drop = torch.rand(b, generator=generator, device=x1.device) < self.cond_drop_prob
            cond = net.drop_cond(cond, drop)
        if mask is not None:
            net_kwargs["mask"] = mask
        err = (net(xt, t, cond, **net_kwargs).float() - target.float()) ** 2
        if mask is None:
            loss = err.mean()
        else:
            w = mask.float().reshape(*mask.shape, *[1] * (err.dim() - 2))  # (B, N, 1, ...)
            loss = (err * w).sum() / (w.sum() * err[0, 0].numel()).clamp(min=1)
        return LossOutput(loss, {"velocity_mse": loss.detach()})

    def sample(self, *args, **kwargs):
        """``flow_sample`` (the sampler lives apart from the loss; this keeps the objective contract)."""
        return flow_sample(*args, **kwargs)


@torch.no_grad()
def stack_rows(a, b):
    """Two batches of a network input (a tensor, None, or a tuple / list / dict of them) as one, rows of
    ``a`` first: what a guided step passes to run both halves in one forward pass."""
    if a is None:
        return None
    if isinstance(a, torch.Tensor):
        return torch.cat([a, b])
    if isinstance(a, dict):
        return {k: stack_rows(a[k], b[k]) for k in a}
    if isinstance(a, (tuple, list)):
        return type(a)(stack_rows(x, y) for x, y in zip(a, b))
    raise TypeError(f"cannot batch a {type(a).__name__} for guidance")


def check_solver(solver):
    """A pipeline's ``solver`` argument, the same names everywhere: a built-in step (SOLVERS), a
    stochastic one (STOCHASTIC_SOLVERS), a diffusers scheduler's name (SCHEDULERS) or object."""
    if is_scheduler(solver) or (isinstance(solver, str) and solver in {**SOLVERS, **STOCHASTIC_SOLVERS, **SCHEDULERS}):
        return solver
    names = sorted(SOLVERS) + sorted(STOCHASTIC_SOLVERS) + sorted(SCHEDULERS)
    raise ValueError(f"solver={solver!r}: expected one of {names} or a diffusers scheduler object")


Velocity = Callable[[torch.Tensor, float], torch.Tensor]  # v(x, t), t a float in our time convention


def guided(both: Callable[[torch.Tensor, float], torch.Tensor], scale: float) -> Velocity:
    """Classifier-free guidance as one batched pass (CONTRIBUTING.md, "NFE"): ``both(x2, t)`` returns the
    velocity of the rows x2 = [x; x], the first half with the condition and the second without it; the
    guided velocity of x is cfg(conditional, unconditional, scale). Every flow sampler guides here."""

    def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
        v, v_null = both(torch.cat([x, x]), t).chunk(2)
        return cfg(v, v_null, scale)

    return velocity


def network_velocity(net, cond=None, guidance_scale: float = 1.0, **net_kwargs) -> Velocity:
    """The velocity of a network called as ``net(x, t (B,), cond, **net_kwargs)``, guided (``guided``)
    when guidance_scale != 1, the unconditional rows' condition from ``net.drop_cond``."""
    guidance_scale = check_float("guidance_scale", guidance_scale)

    def times(x: torch.Tensor, t: float) -> torch.Tensor:
        return torch.full((x.shape[0],), float(t), device=x.device, dtype=x.dtype)

    if guidance_scale == 1.0:
        return lambda x, t: net(x, times(x, t), cond, **net_kwargs)
    if cond is None:
        raise ValueError("guidance_scale != 1 needs a condition to guide with")
    stacked = {}  # the conditions of [x; x], made at the first call (which knows the rows and the device)

    def both(x2: torch.Tensor, t: float) -> torch.Tensor:
        if not stacked:
            null_cond = net.drop_cond(cond, torch.ones(x2.shape[0] // 2, dtype=torch.bool, device=x2.device))
            stacked["cond"] = stack_rows(cond, null_cond)
            stacked["kwargs"] = {k: stack_rows(v, v) for k, v in net_kwargs.items()}
        return net(x2, times(x2, t), stacked["cond"], **stacked["kwargs"])

    return guided(both, guidance_scale)


def integrate_flow(velocity: Velocity, x0: torch.Tensor, steps: int = 50, solver: str | Callable | object = "euler",
                   times: torch.Tensor | None = None, generator=None) -> FlowSample:
    """Integrate dx/dt = velocity(x, t) from t = 0 (the noise x0) to t = 1; each call of ``velocity`` is
    one NFE (a guided one too: ``guided`` batches its two halves into one pass).

    solver: a name in SOLVERS or STOCHASTIC_SOLVERS (drawing from ``generator``), a step function, a
    diffusers scheduler name (flow_schedulers.SCHEDULERS: flow_euler, flow_heun, unipc, dpmpp_2m) or a
    diffusers scheduler object, which sets its own time grid from ``steps``. ``times`` overrides the
    uniform grid (increasing, 0 -> 1)."""
    if not callable(solver) or is_scheduler(solver):
        check_solver(solver)  # a step function aside, the names and objects every pipeline accepts
    scheduler = step = None
    if is_scheduler(solver):
        scheduler = solver
    elif isinstance(solver, str) and solver in STOCHASTIC_SOLVERS:
        step = STOCHASTIC_SOLVERS[solver](generator)
    elif isinstance(solver, str):
        scheduler = make_scheduler(solver) if solver in SCHEDULERS else None
        step = SOLVERS.get(solver)
    else:
        step = solver
    if scheduler is not None and times is not None:
        raise ValueError("a diffusers scheduler sets its own time grid: give steps, not times")
    if times is None:
        steps = check_int("steps", steps, low=1, high=MAX_STEPS)
        times = torch.linspace(0.0, 1.0, steps + 1)
    elif times.dim() != 1 or len(times) < 2 or (times.diff() <= 0).any():
        raise ValueError("times must be an increasing 1-d grid of at least 2 points")
    nfe = 0

    def counted(x, t):
        nonlocal nfe
        nfe += 1  # one forward pass of the network over the batch, guided or not (CONTRIBUTING.md, "NFE")
        return velocity(x, t)

    if scheduler is not None:
        return FlowSample(x=integrate(counted, x0, steps, scheduler), nfe=nfe)
    x = x0
    times = times.tolist()
    for t0, t1 in zip(times[:-1], times[1:]):
        x = step(counted, x, t0, t1)
    return FlowSample(x=x, nfe=nfe)


def flow_sample(net, x0: torch.Tensor | None = None, shape: tuple[int, ...] | None = None,
                steps: int = 50, solver: str | Callable | object = "euler", cond=None, guidance_scale: float = 1.0,
                times: torch.Tensor | None = None, generator: torch.Generator | None = None,
                device=None, **net_kwargs) -> FlowSample:
    """A network's sample: x0 (or noise of ``shape`` drawn from ``generator``) integrated by
    ``integrate_flow`` along ``network_velocity(net, cond, guidance_scale, **net_kwargs)``."""
    velocity = network_velocity(net, cond, guidance_scale, **net_kwargs)  # checks guidance first: fail before work
    if x0 is None:
        if shape is None:
            raise ValueError("give x0 or a shape")
        x0 = generators.randn(shape, generator, device=device)
    return integrate_flow(velocity, x0, steps, solver, times, generator)
