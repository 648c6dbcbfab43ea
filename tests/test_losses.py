import math

import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.training import losses

REAL = jnp.array([2.0, -1.0])
FAKE = jnp.array([0.5, -3.0])


def softplus(x):
    return math.log(1.0 + math.exp(x))


def test_non_saturating_d_loss():
    expected = (softplus(-2.0) + softplus(1.0)) / 2 + (softplus(0.5) + softplus(-3.0)) / 2
    assert float(losses.d_loss("non_saturating", REAL, FAKE)) == pytest.approx(expected, rel=1e-6)


def test_non_saturating_g_loss():
    expected = (softplus(-0.5) + softplus(3.0)) / 2
    assert float(losses.g_loss("non_saturating", FAKE)) == pytest.approx(expected, rel=1e-6)


def test_non_saturating_is_stable_for_large_logits():
    # log(sigmoid(x)) written on probabilities gives inf/nan here; softplus does not.
    assert float(losses.d_loss("non_saturating", jnp.array([200.0]), jnp.array([-200.0]))) == 0.0
    assert float(losses.g_loss("non_saturating", jnp.array([-200.0]))) == pytest.approx(200.0)


def test_hinge_losses():
    # D: mean(relu(1 - [2, -1])) + mean(relu(1 + [0.5, -3])) = (0 + 2)/2 + (1.5 + 0)/2
    assert float(losses.d_loss("hinge", REAL, FAKE)) == pytest.approx(1.75)
    assert float(losses.g_loss("hinge", FAKE)) == pytest.approx(1.25)


def test_unknown_loss_is_named():
    with pytest.raises(ValueError, match="'wasserstein'"):
        losses.d_loss("wasserstein", REAL, FAKE)


def test_mode_seeking_is_the_mean_inverse_ratio_over_pairs():
    x = jnp.array([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.5, 0.5]]).reshape(4, 1, 1, 2)
    z = jnp.array([[0.0], [2.0], [0.0], [1.0]])
    # pair 0: |dx| = 1, |dz| = 2 -> ratio 0.5; pair 1: |dx| = 0.5, |dz| = 1 -> ratio 0.5
    assert float(losses.mode_seeking(x, z, eps=0.0)) == pytest.approx(2.0)
    identical = jnp.zeros((2, 1, 1, 2))
    assert float(losses.mode_seeking(identical, jnp.array([[0.0], [1.0]]))) == pytest.approx(1e5)


def test_zero_centred_gradient_penalty_hand_computed():
    # D(x) = sum(x^2): grad = 2x, |grad|^2 = 4 * sum(x^2): 4 * 5 = 20 and 4 * 10 = 40, mean 30.
    x = jnp.array([[1.0, 2.0], [3.0, -1.0]]).reshape(2, 1, 1, 2)
    penalty, logits, aux = losses.zero_centred_gradient_penalty(
        lambda x: ((x ** 2).sum(axis=(1, 2, 3)), "aux"), x)
    assert float(penalty) == 30.0
    np.testing.assert_array_equal(logits, [5.0, 10.0])
    assert aux == "aux"


def test_lecam_hand_computed():
    real, fake = jnp.array([1.0, 3.0]), jnp.array([-1.0, 0.5])
    # relu(real - 0.5)^2 = 0.25, 6.25 (mean 3.25); relu(2 - fake)^2 = 9, 2.25 (mean 5.625).
    assert float(losses.lecam(real, fake, ema_real=2.0, ema_fake=0.5)) == 8.875
    np.testing.assert_allclose(losses.lecam_update(5.0, 6.0, 1.0, 2.0, first=True), (1.0, 2.0))
    ema_real, ema_fake = losses.lecam_update(5.0, 6.0, 1.0, 2.0, first=False)
    assert np.isclose(float(ema_real), 0.99 * 5 + 0.01) and np.isclose(float(ema_fake), 0.99 * 6 + 0.02)


def test_relativistic_pairing_losses_hand_computed():
    # Pairs (2, 0.5) and (-1, -3): D's margins 1.5 and 2; G's are their negatives.
    expected_d = (softplus(-1.5) + softplus(-2.0)) / 2
    expected_g = (softplus(1.5) + softplus(2.0)) / 2
    assert float(losses.d_loss("rpgan", REAL, FAKE)) == pytest.approx(expected_d, rel=1e-6)
    assert float(losses.g_loss("rpgan", FAKE, REAL)) == pytest.approx(expected_g, rel=1e-6)
    # Pairing, not all-pairs: swapping the fakes' order changes the loss.
    assert float(losses.d_loss("rpgan", REAL, FAKE[::-1])) != pytest.approx(expected_d)
