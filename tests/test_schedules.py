"""R3GAN's schedules: the cosine ramp and the EMA half-life, against its formulas by hand."""
import math

import pytest

from jaxgan.training import schedules


@pytest.mark.parametrize("images, expected", [
    (0, 2e-4), (5e6, 2e-4 + (1 - math.cos(math.pi / 4)) / 2 * (5e-5 - 2e-4)),
    (1e7, 1.25e-4), (2e7, 5e-5), (3e7, 5e-5)])
def test_cosine_ramp_is_r3gans_cosine_decay(images, expected):
    # R3GAN's CIFAR-10 learning rate: 2e-4 -> 5e-5 over 2e7 images, final after that.
    assert float(schedules.cosine_ramp(images, 2e7, 2e-4, 5e-5)) == pytest.approx(expected,
                                                                                  rel=1e-6)


def test_ema_beta_halves_a_weight_in_one_half_life():
    assert float(schedules.ema_beta(512, 512.0)) == pytest.approx(0.5)
    # (float32: the 9,766th power of 0.99993 keeps about three digits)
    assert float(schedules.ema_beta(512, 5e6)) ** (5e6 / 512) == pytest.approx(0.5, rel=1e-3)
    assert float(schedules.ema_beta(512, 0.0)) == 0.0  # a half-life of 0: the EMA is G
