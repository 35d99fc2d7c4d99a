"""Random draws from one torch.Generator or a list of them, one per row (diffusers' convention).

A pipeline's ``generator`` is None, a torch.Generator, or a list with one generator per row of the
batch. With a list, row i of every draw comes from generator i alone, so a row does not depend on
which other rows share its batch: under a fixed step plan, row i of ``pipe(..., generator=[g0, g1])``
equals ``pipe(<row i's inputs>, generator=g_i)``. With one generator (or None) each draw is the plain
torch call, so a seed's samples are those of a pipeline that knows nothing of lists.

Every sampling-time draw goes through these functions; a draw over a subset of the rows (rows still
decoding) passes ``select(generator, rows)``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

Generators = torch.Generator | Sequence[torch.Generator] | None


def check_generator(generator) -> Generators:
    """None, a torch.Generator or a non-empty list of them (a seed integer or a numpy generator would
    fail deep inside a sampler)."""
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, (list, tuple)) and generator and all(isinstance(g, torch.Generator) for g in generator):
        return generator
    got = (f"a list holding {sorted({type(g).__name__ for g in generator})}" if isinstance(generator, (list, tuple))
           and generator else f"{type(generator).__name__}" + (" (empty)" if isinstance(generator, (list, tuple)) else ""))
    raise ValueError(f"generator: expected a torch.Generator, a list of them (one per row) or None, got {got} "
                     f"(torch.Generator().manual_seed(seed) makes one)")


def is_list(generator: Generators) -> bool:
    return isinstance(generator, (list, tuple))


def _per_row(draw: Callable, shape: Sequence[int], generator: Generators) -> torch.Tensor:
    """draw(shape, generator) once, or once per row (shape[0] rows) with that row's generator."""
    shape = tuple(shape)
    if not is_list(generator):
        return draw(shape, generator)
    _check_rows(shape[0] if shape else 0, generator)
    return torch.stack([draw(shape[1:], g) for g in generator])


def _check_rows(rows: int, generator: Sequence[torch.Generator]) -> None:
    if rows != len(generator):
        raise ValueError(f"generator: a list of {len(generator)} generators for a batch of {rows} rows; "
                         f"give one generator per row, or a single one")


def rand(shape: Sequence[int], generator: Generators = None, device=None, dtype=None) -> torch.Tensor:
    return _per_row(lambda s, g: torch.rand(s, generator=g, device=device, dtype=dtype), shape, generator)


def randn(shape: Sequence[int], generator: Generators = None, device=None, dtype=None) -> torch.Tensor:
    return _per_row(lambda s, g: torch.randn(s, generator=g, device=device, dtype=dtype), shape, generator)


def randint(low: int, high: int, shape: Sequence[int], generator: Generators = None, device=None) -> torch.Tensor:
    return _per_row(lambda s, g: torch.randint(low, high, s, generator=g, device=device), shape, generator)


def binomial(count: torch.Tensor, prob: torch.Tensor, generator: Generators = None) -> torch.Tensor:
    """torch.binomial over rows: count and prob (B, ...) of one shape."""
    if not is_list(generator):
        return torch.binomial(count, prob, generator=generator)
    _check_rows(len(count), generator)
    return torch.cat([torch.binomial(count[i:i + 1], prob[i:i + 1], generator=g) for i, g in enumerate(generator)])


def select(generator: Generators, rows) -> Generators:
    """The generators of ``rows`` (a 1-d index tensor or list) when there is one per row; else as given."""
    if not is_list(generator):
        return generator
    return [generator[int(i)] for i in rows]


def device_of(generator: Generators) -> torch.device:
    """Where the generator(s) draw (the CPU without one)."""
    first = generator[0] if is_list(generator) else generator
    return first.device if first is not None else torch.device("cpu")
