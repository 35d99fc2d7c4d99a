"""Flow matching: path, loss, solvers and guidance against known answers, and diffusers parity."""

import math

import pytest
import torch

from zoo.objectives import FlowMatching
from zoo.objectives.flow import flow_sample, guided, integrate_flow


class Recorder(torch.nn.Module):
    """Wraps a velocity function and records every (x, t) it is called with."""

    def __init__(self, fn):
        super().__init__()
        self.fn, self.calls = fn, []

    def forward(self, x, t, cond=None, **kwargs):
        self.calls.append((x.clone(), t.clone()))
        return self.fn(x, t, cond)

    def drop_cond(self, cond, drop):
        return torch.where(drop[:, None], torch.zeros_like(cond), cond)


def test_path_endpoints_follow_the_time_convention():
    x0, x1 = torch.randn(3, 4), torch.randn(3, 4)
    xt, target = FlowMatching.path(x0, x1, torch.zeros(3))
    assert torch.equal(xt, x0) and torch.equal(target, x1 - x0)  # t = 0 is noise
    xt, _ = FlowMatching.path(x0, x1, torch.ones(3))
    assert torch.equal(xt, x1)  # t = 1 is data


@pytest.mark.parametrize("solver", ["euler", "midpoint"])
def test_solvers_land_on_the_point_the_ideal_field_points_to(solver):
    target = torch.tensor([[2.0, -1.0]])
    net = Recorder(lambda x, t, c: (target - x) / (1 - t[:, None]))  # exact field toward one point
    out = FlowMatching().sample(net, x0=torch.randn(1, 2), steps=5, solver=solver)
    assert torch.allclose(out.x, target, atol=1e-5)
    assert out.nfe == {"euler": 5, "midpoint": 10}[solver]


def test_heun_is_second_order():
    x0 = torch.ones(1, 1)
    exact = math.exp(1.0)  # dx/dt = x from 1 at t=0
    errors = {}
    for solver in ("euler", "heun"):
        out = FlowMatching().sample(Recorder(lambda x, t, c: x), x0=x0, steps=8, solver=solver)
        errors[solver] = abs(out.x.item() - exact)
    assert errors["heun"] < errors["euler"] / 10


def test_guidance_combines_conditional_and_unconditional_velocities():
    net = Recorder(lambda x, t, c: c.clone())  # velocity = condition; null condition = 0
    cond = torch.full((2, 3), 1.0)
    out = FlowMatching().sample(net, x0=torch.zeros(2, 3), steps=4, cond=cond, guidance_scale=3.0)
    # one NFE a step: the conditional and unconditional rows go through the network in one batched pass
    assert torch.allclose(out.x, torch.full((2, 3), 3.0)) and out.nfe == 4


def test_the_integrator_takes_a_velocity_function_and_guidance_is_one_wrapper_around_it():
    """integrate_flow knows nothing of networks or conditions: v(x, t) in, each call one NFE (heun: two a
    step); guided(both, w) batches [x; x] into one call of ``both`` and mixes its halves."""
    seen = []

    def both(x2, t):  # first half conditional (velocity 1), second unconditional (velocity 0)
        seen.append(x2.shape[0])
        return torch.cat([torch.ones_like(x2[: len(x2) // 2]), torch.zeros_like(x2[len(x2) // 2:])])

    out = integrate_flow(guided(both, 2.5), torch.zeros(4, 3), steps=3, solver="heun")
    assert out.nfe == 6 and seen == [8] * 6 and torch.allclose(out.x, torch.full((4, 3), 2.5))
    plain = integrate_flow(lambda x, t: torch.full_like(x, t), torch.zeros(2, 1), steps=4)  # dx/dt = t
    assert plain.nfe == 4 and torch.allclose(plain.x, torch.full((2, 1), 0.375))  # Euler's left sums of t


def test_a_guided_step_is_one_pass_with_its_inputs_stacked():
    calls = []

    class Counting(torch.nn.Module):
        def forward(self, x, t, cond, mask=None):
            calls.append((x.shape[0], cond.shape[0], None if mask is None else mask.shape[0]))
            return cond[:, :1, None].float().expand_as(x) * mask[:, :, None].float()

        def drop_cond(self, cond, drop):
            return torch.where(drop[:, None], torch.zeros_like(cond), cond)

    mask = torch.ones(3, 5, dtype=torch.bool)
    out = flow_sample(Counting(), x0=torch.zeros(3, 5, 2), steps=2, cond=torch.ones(3, 2), guidance_scale=2.0, mask=mask)
    assert calls == [(6, 6, 6), (6, 6, 6)] and out.nfe == 2
    assert torch.allclose(out.x, torch.full((3, 5, 2), 2.0))


def test_loss_is_exact_for_the_true_velocity_and_ignores_padding():
    fm = FlowMatching()
    x1 = torch.randn(2, 5, 3)
    g = torch.Generator().manual_seed(0)
    t = fm.sample_times(2, g)
    x0 = torch.randn(x1.shape, generator=g)

    def true_velocity(x, tt, c):  # recovers x1 - x0 from x_t, knowing x0
        return (x - x0) / tt[:, None, None]

    out = fm.loss(Recorder(true_velocity), x1, generator=torch.Generator().manual_seed(0))
    assert out.loss.item() < 1e-8
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[:, 3:] = False
    wrong_on_pads = Recorder(lambda x, tt, c: torch.cat([true_velocity(x, tt, c)[:, :3],
                                                          torch.full((2, 2, 3), 9.0)], 1))
    out = fm.loss(wrong_on_pads, x1, mask=mask, generator=torch.Generator().manual_seed(0))
    assert out.loss.item() < 1e-8


def test_time_samplers_stay_inside_the_unit_interval():
    for sampler in ("uniform", "logit_normal"):
        t = FlowMatching(time_sampler=sampler).sample_times(1000, torch.Generator().manual_seed(0))
        assert 0 < t.min() and t.max() < 1
    t = FlowMatching(time_sampler="logit_normal").sample_times(10000, torch.Generator().manual_seed(0))
    assert abs(t.mean().item() - 0.5) < 0.01 and t.std() < 0.25  # concentrated around the middle


def test_euler_matches_diffusers_flow_match_euler_step_for_step():
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    scheduler.set_timesteps(10)
    w = torch.randn(4, 4, generator=torch.Generator().manual_seed(1))

    def v(x, t, c):  # any smooth velocity field in our convention
        return torch.tanh(x @ w) + t[:, None]

    x0 = torch.randn(2, 4, generator=torch.Generator().manual_seed(2))
    ours = Recorder(v)
    out = FlowMatching().sample(ours, x0=x0, times=1.0 - scheduler.sigmas, solver="euler")

    x, theirs = x0.clone(), []
    for sigma, timestep in zip(scheduler.sigmas[:-1], scheduler.timesteps):
        theirs.append(x.clone())
        t = torch.full((2,), 1.0 - sigma.item())
        x = scheduler.step(-v(x, t, None), timestep, x).prev_sample  # dx/dsigma = -dx/dt
    assert len(ours.calls) == len(theirs) == 10
    for (x_ours, t_ours), x_theirs, sigma in zip(ours.calls, theirs, scheduler.sigmas):
        assert torch.allclose(x_ours, x_theirs, atol=1e-5)
        assert torch.allclose(t_ours, torch.full((2,), 1.0 - sigma.item()))
    assert torch.allclose(out.x, x, atol=1e-5)


@pytest.mark.parametrize("kwargs, words", [
    (dict(steps=0), "steps"), (dict(steps=2.5), "integer"), (dict(solver="rk45"), "solver"),
    (dict(times=torch.tensor([0.0, 0.5, 0.4, 1.0])), "increasing"),
    (dict(guidance_scale=2.0), "condition"),
])
def test_bad_sampling_arguments_raise(kwargs, words):
    with pytest.raises(ValueError, match=words):
        FlowMatching().sample(Recorder(lambda x, t, c: x), x0=torch.zeros(1, 2), **kwargs)


def test_a_solver_is_a_step_function_from_the_table_or_the_caller():
    from zoo.objectives.flow import SOLVERS

    class Linear(torch.nn.Module):
        def forward(self, x, t, cond=None):
            return torch.ones_like(x) * 2.0

    fm = FlowMatching()
    x0 = torch.zeros(2, 3)
    by_name = fm.sample(Linear(), x0=x0, steps=4, solver="heun")
    by_function = fm.sample(Linear(), x0=x0, steps=4, solver=SOLVERS["heun"])
    assert torch.equal(by_name.x, by_function.x) and by_name.nfe == by_function.nfe == 8
    assert torch.allclose(by_name.x, torch.full((2, 3), 2.0))
    with pytest.raises(ValueError, match="euler"):
        fm.sample(Linear(), x0=x0, steps=4, solver="rk45")


class GaussianFlow(torch.nn.Module):
    """The exact velocity of the linear path from N(0, 1) to N(mu, s^2): x(1) = mu + s x(0), exactly."""

    mu, s = 2.0, 0.5

    def forward(self, x, t, cond=None):
        a, b = 1 - t[:, None], t[:, None]
        return self.mu + (b * self.s**2 - a) / (a**2 + b**2 * self.s**2) * (x - b * self.mu)


@pytest.mark.parametrize("solver, steps, nfe, tol", [
    ("euler", 50, 50, 0.05), ("midpoint", 10, 20, 1e-3), ("heun", 10, 20, 0.01),
    ("flow_euler", 50, 50, 0.05), ("flow_heun", 10, 19, 0.01), ("unipc", 10, 10, 0.015),
    ("dpmpp_2m", 10, 10, 0.01),
])
def test_every_solver_integrates_a_gaussian_flow_to_its_exact_end(solver, steps, nfe, tol):
    x0 = torch.randn(64, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = FlowMatching().sample(GaussianFlow(), x0=x0.clone(), steps=steps, solver=solver)
    assert out.nfe == nfe
    assert (out.x - (GaussianFlow.mu + GaussianFlow.s * x0)).abs().max() < tol


def test_euler_maruyama_keeps_the_marginals_and_draws_from_the_generator():
    """The SDE ends in N(mu, s^2) like the ODE, but the end is no longer a function of x0 alone."""
    x0 = torch.randn(20000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = FlowMatching().sample(GaussianFlow(), x0=x0.clone(), steps=100, solver="euler_maruyama",
                                generator=torch.Generator().manual_seed(1))
    assert out.nfe == 100
    assert abs(out.x.mean().item() - GaussianFlow.mu) < 0.02 and abs(out.x.std().item() - GaussianFlow.s) < 0.02
    assert (out.x - (GaussianFlow.mu + GaussianFlow.s * x0)).abs().mean() > 0.05  # not the ODE's map
    again = FlowMatching().sample(GaussianFlow(), x0=x0.clone(), steps=100, solver="euler_maruyama",
                                  generator=torch.Generator().manual_seed(1))
    assert torch.equal(again.x, out.x)


def test_a_diffusers_scheduler_object_is_a_solver_and_names_are_checked():
    from diffusers import UniPCMultistepScheduler

    from zoo.objectives.flow_schedulers import make_scheduler

    x0 = torch.randn(8, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    by_name = FlowMatching().sample(GaussianFlow(), x0=x0, steps=6, solver="unipc")
    obj = UniPCMultistepScheduler.from_config(make_scheduler("unipc").config)
    assert torch.allclose(FlowMatching().sample(GaussianFlow(), x0=x0, steps=6, solver=obj).x, by_name.x)
    with pytest.raises(ValueError, match="dpmpp_2m"):
        FlowMatching().sample(GaussianFlow(), x0=x0, steps=6, solver="dpm")
    with pytest.raises(ValueError, match="own time grid"):
        FlowMatching().sample(GaussianFlow(), x0=x0, solver="unipc", times=torch.linspace(0, 1, 5))


def test_every_flow_pipeline_takes_one_solver_argument_with_one_set_of_names():
    from diffusers import UniPCMultistepScheduler

    from zoo.objectives.flow import check_solver

    for name in ("euler", "heun", "euler_maruyama", "unipc", "flow_euler"):
        assert check_solver(name) == name
    scheduler = UniPCMultistepScheduler()
    assert check_solver(scheduler) is scheduler
    for bad in ("nope", None, 3):
        with pytest.raises(ValueError, match="solver=.*euler_maruyama.*unipc"):
            check_solver(bad)
