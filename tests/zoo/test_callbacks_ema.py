"""The EMA callback's warm-up: early steps follow the weights, later ones average with ``decay``."""

import pytest

from zoo.callbacks import EMA


def test_ema_decay_warms_up_to_its_ceiling():
    ema = EMA(0.999)
    assert ema.decay_at(0) == pytest.approx(0.1)
    assert ema.decay_at(90) == pytest.approx(0.91)
    assert ema.decay_at(100_000) == 0.999
    weight_of_init = 1.0
    for step in range(2000):
        weight_of_init *= ema.decay_at(step)
    assert weight_of_init < 1e-6  # a flat 0.999 would leave 0.999 ** 2000 = 0.135


def test_ema_rejects_a_decay_outside_0_1():
    with pytest.raises(ValueError, match="decay"):
        EMA(1.0)
