"""One argument validator for every pipeline and sampler: each check returns the value (normalised)
or raises a ValueError that names the argument, shows what was given and says what is expected.

    steps = check_int("steps", steps, low=1, high=MAX_STEPS)
    temperature = check_float("temperature", temperature, low=0.0)
    policy = check_choice("policy", policy, POLICIES)

A bool is refused where a number is expected (``True`` is an int to Python, never a step count), a
float where an integer is expected (``1.5`` or ``3.0`` steps), a string anywhere a number is, and NaN
and infinity everywhere.
"""

from __future__ import annotations

import math
import numbers

import torch

MAX_STEPS = 10_000  # more sampling steps than any method here needs: a typo, not a request for hours
MAX_BATCH = 16_384  # a batch_size past this is a typo; it would otherwise fail in the allocator minutes later


def _range(low, high) -> str:
    if low is not None and high is not None:
        return f"in [{low}, {high}]"
    if low is not None:
        return f"at least {low}"
    return f"at most {high}" if high is not None else ""


def check_int(name: str, value, low: int | None = None, high: int | None = None, optional: bool = False,
              why: str = ""):
    """An integer (Python or a 0-d integer tensor/NumPy scalar) within [low, high]; ``why`` says where
    a bound comes from (e.g. "the trained maximum")."""
    why = f" ({why})" if why else ""
    if value is None and optional:
        return None
    if isinstance(value, torch.Tensor) and value.dim() == 0 and not value.is_floating_point():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}={value!r}: expected an integer {_range(low, high)}".rstrip() + why)
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name}={value}: expected an integer {_range(low, high)}{why}")
    return value


def check_float(name: str, value, low: float | None = None, high: float | None = None, optional: bool = False,
                low_open: bool = False):
    """A finite real number within [low, high] (``(low, high]`` with ``low_open``)."""
    if value is None and optional:
        return None
    if isinstance(value, torch.Tensor) and value.dim() == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}={value!r}: expected a number {_range(low, high)}".rstrip())
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}={value}: expected a finite number {_range(low, high)}".rstrip())
    if (low is not None and (value < low or (low_open and value == low))) or (high is not None and value > high):
        bound = f"above {low}" + (f" and at most {high}" if high is not None else "") if low_open else _range(low, high)
        raise ValueError(f"{name}={value}: expected a number {bound}")
    return value


def check_bool(name: str, value, optional: bool = False):
    """True or False, nothing else: a string such as "no" or "false" would read as true, 0 and 1 are
    numbers, and a config.json written by hand may hold any of them."""
    if value is None and optional:
        return None
    if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r}: expected True or False")
    return value


def check_choice(name: str, value, choices, optional: bool = False):
    if value is None and optional:
        return None
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}={value!r}: expected one of {list(choices)}")
    return value


def check_tensor(name: str, value, shape: tuple, integer: bool | None = None, low=None, high=None) -> torch.Tensor:
    """A tensor of ``shape`` (None: any size, e.g. ``(None, None, 9)`` for (B, F, 9)), of integer or
    floating dtype as asked, with finite values within [low, high]."""
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    if value.dim() != len(shape) or any(w is not None and s != w for s, w in zip(value.shape, shape)):
        want = ", ".join("*" if w is None else str(w) for w in shape)
        raise ValueError(f"{name}: expected shape ({want}), got {tuple(value.shape)}")
    if integer is True and (value.is_floating_point() or value.is_complex() or value.dtype == torch.bool):
        raise ValueError(f"{name}: expected an integer tensor, got {value.dtype}")
    if integer is False and not value.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got {value.dtype}")
    if value.is_floating_point() and not torch.isfinite(value).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    if value.numel() and ((low is not None and value.min() < low) or (high is not None and value.max() > high)):
        raise ValueError(f"{name}: values must lie in [{low}, {high}], got [{value.min().item()}, "
                         f"{value.max().item()}]")
    return value
