"""The one timer every benchmark uses: warm-up calls first (allocations, lazy initialisation, kernel
choice), then ``repeats`` timed calls, reported as the median with its range; on a GPU the device is
synchronised before each clock read, so the time is the work's and not the launch's.

    timing, last = time_calls(lambda i: pipe(prompt=prompts[i % len(prompts)]), repeats=5, device="cuda")
    row = {**timing.fields("seconds")}   # seconds, seconds_min, seconds_max, repeats, warmup, threads
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch


@dataclass
class Timing:
    runs: list[float]  # seconds of each timed call, in order
    warmup: int  # untimed calls before them
    threads: int  # torch's intra-op threads while timing
    synchronized: bool  # a CUDA device was synchronised around each call

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def low(self) -> float:
        return min(self.runs)

    @property
    def high(self) -> float:
        return max(self.runs)

    def fields(self, name: str = "seconds", scale: float = 1.0, digits: int = 4) -> dict:
        """{name: median, name_min, name_max} (each divided by ``scale``: per image, per token) and how
        it was measured."""
        return {name: round(self.median / scale, digits), f"{name}_min": round(self.low / scale, digits),
                f"{name}_max": round(self.high / scale, digits), "repeats": len(self.runs), "warmup": self.warmup,
                "threads": self.threads}

    def rate(self, amount: float, name: str, digits: int = 1) -> dict:
        """``amount`` per second (tokens, decisions): the median call's rate and the range (the slowest
        call gives the lowest rate)."""
        return {name: round(amount / self.median, digits), f"{name}_min": round(amount / self.high, digits),
                f"{name}_max": round(amount / self.low, digits)}


def synchronizer(device) -> Callable[[], None] | None:
    """What to call before reading the clock: CUDA's synchronize for a CUDA device, nothing on a CPU."""
    device = torch.device(device) if device is not None else None
    if device is not None and device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return None


def time_calls(fn: Callable[[int], object], repeats: int = 3, warmup: int = 1, device=None,
               clock: Callable[[], float] = time.perf_counter, synchronize: Callable[[], None] | None = None,
               warmup_fn: Callable[[int], object] | None = None) -> tuple[Timing, object]:
    """Call ``fn(i)`` ``warmup`` times untimed (i = 0, 1, ...), then ``repeats`` times timed (i = 0, 1, ...:
    a call may pick its input by i). Returns the Timing and the last timed call's result. ``synchronize``
    defaults to the device's (``synchronizer``); ``warmup_fn`` replaces ``fn`` for the warm-ups (a
    cheaper call that still initialises everything, where a full one would cost minutes)."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats={repeats!r}: expected an integer of at least 1")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup={warmup!r}: expected an integer of at least 0")
    device_sync = synchronize or synchronizer(device)
    sync = device_sync or (lambda: None)
    for i in range(warmup):
        (warmup_fn or fn)(i)
    sync()
    runs, result = [], None
    for i in range(repeats):
        sync()
        start = clock()
        result = fn(i)
        sync()
        runs.append(clock() - start)
    return Timing(runs, warmup, torch.get_num_threads(), device_sync is not None), result


def speedup(key: str, baseline: dict, row: dict, name: str = "seconds") -> dict:
    """{key: how many times faster ``row`` is than ``baseline``, key_range: [low, high]} from two
    ``Timing.fields(name)`` dicts: the ratio of the medians, and the range from the slowest baseline call
    over the fastest row call to the reverse (a claim holds where the whole range is above 1)."""
    return {key: round(baseline[name] / row[name], 2),
            f"{key}_range": [round(baseline[f"{name}_min"] / row[f"{name}_max"], 2),
                             round(baseline[f"{name}_max"] / row[f"{name}_min"], 2)]}


def paired_speedup(key: str, baseline_runs: list[float], runs: list[float]) -> dict:
    """{key: the median of per-input ratios, key_range: [min, max]} when call i of both timed the same
    input (each prompt decoded alone by both methods): the spread is then the methods', not the inputs'."""
    if len(baseline_runs) != len(runs) or not runs:
        raise ValueError(f"paired runs must match one to one: {len(baseline_runs)} and {len(runs)}")
    ratios = sorted(b / r for b, r in zip(baseline_runs, runs))
    return {key: round(statistics.median(ratios), 2), f"{key}_range": [round(ratios[0], 2), round(ratios[-1], 2)]}
