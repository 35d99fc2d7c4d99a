"""Wilson intervals against values computed by hand from the formula."""

import pytest

from zoo.stats import binomial_interval


@pytest.mark.parametrize("k,n,low,high", [
    (21, 200, 0.0697, 0.1552),   # 10.5% crashes of 200 episodes
    (12, 200, 0.0347, 0.1019),   # 6.0%
    (0, 10, 0.0, 0.2775),        # none: the interval still has width
    (10, 10, 0.7225, 1.0),
    (50, 100, 0.4038, 0.5962),
])
def test_wilson_interval_known_values(k, n, low, high):
    a, b = binomial_interval(k, n)
    assert a == pytest.approx(low, abs=1e-4) and b == pytest.approx(high, abs=1e-4)


def test_bad_counts_are_refused():
    for k, n in ((3, 2), (-1, 5), (1, 0), (1.5, 4)):
        with pytest.raises(ValueError):
            binomial_interval(k, n)
