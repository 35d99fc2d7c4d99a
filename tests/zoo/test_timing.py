"""The shared timer on a fake clock: warm-up excluded, median and range, synchronisation around every
timed call on a GPU and none on a CPU."""

import pytest
import torch

from zoo.timing import paired_speedup, speedup, synchronizer, time_calls


def fake_clock(durations):
    """A clock whose successive timed calls take ``durations`` seconds (start and end reads per call)."""
    ticks, now = [], 0.0
    for d in durations:
        ticks += [now, now + d]
        now += d + 100.0  # time between calls never counts
    it = iter(ticks)
    return lambda: next(it)


def test_warmup_is_not_timed_and_the_median_and_range_are_right():
    calls = []
    timing, last = time_calls(lambda i: calls.append(i) or i * 10, repeats=5, warmup=2,
                              clock=fake_clock([3.0, 1.0, 2.0, 9.0, 4.0]))
    assert calls == [0, 1, 0, 1, 2, 3, 4]  # two warm-ups, then five timed calls
    assert timing.runs == [3.0, 1.0, 2.0, 9.0, 4.0] and last == 40
    assert (timing.median, timing.low, timing.high) == (3.0, 1.0, 9.0)
    fields = timing.fields("seconds", scale=2.0)
    assert fields["seconds"] == 1.5 and fields["seconds_min"] == 0.5 and fields["seconds_max"] == 4.5
    assert fields["repeats"] == 5 and fields["warmup"] == 2 and fields["threads"] == torch.get_num_threads()
    assert timing.rate(30.0, "tokens_per_second") == {"tokens_per_second": 10.0, "tokens_per_second_min": 3.3,
                                                      "tokens_per_second_max": 30.0}


def test_a_gpu_is_synchronised_around_every_timed_call_and_a_cpu_not():
    events = []
    clock = fake_clock([1.0, 1.0])

    def read():
        events.append("clock")
        return clock()

    time_calls(lambda i: events.append("call"), repeats=2, warmup=1, clock=read,
               synchronize=lambda: events.append("sync"))
    assert events == ["call", "sync", "sync", "clock", "call", "sync", "clock", "sync", "clock", "call", "sync", "clock"]
    assert synchronizer("cpu") is None and synchronizer(None) is None
    assert synchronizer(torch.device("cuda", 0)) is not None  # built without touching a GPU
    timing, _ = time_calls(lambda i: None, repeats=1, device="cpu")
    assert timing.synchronized is False


@pytest.mark.parametrize("kwargs", [{"repeats": 0}, {"repeats": True}, {"warmup": -1}])
def test_impossible_counts_are_refused(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        time_calls(lambda i: None, **kwargs)


def test_speedups_unpaired_and_paired():
    base = {"seconds": 4.0, "seconds_min": 3.0, "seconds_max": 6.0}
    fast = {"seconds": 2.0, "seconds_min": 1.5, "seconds_max": 3.0}
    assert speedup("s", base, fast) == {"s": 2.0, "s_range": [1.0, 4.0]}
    # the same three inputs timed by both: ratios 2, 4, 1 -> median 2, range 1-4, whatever the inputs' sizes
    assert paired_speedup("s", [2.0, 40.0, 3.0], [1.0, 10.0, 3.0]) == {"s": 2.0, "s_range": [1.0, 4.0]}
    with pytest.raises(ValueError, match="one to one"):
        paired_speedup("s", [1.0], [1.0, 2.0])
