import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.training import augment


def test_translate_moves_content_and_fills_with_zeros():
    x = jnp.arange(16 * 16, dtype=jnp.float32).reshape(1, 16, 16, 1) + 1.0
    down_right = augment.translate(x, jnp.array([[1, 2]]))
    np.testing.assert_array_equal(down_right[0, 1:, 2:], x[0, :-1, :-2])
    assert float(jnp.abs(down_right[0, 0]).max()) == 0.0
    assert float(jnp.abs(down_right[0, :, :2]).max()) == 0.0
    np.testing.assert_array_equal(augment.translate(x, jnp.zeros((1, 2), jnp.int32)), x)


def test_shifts_stay_within_an_eighth_and_gradients_flow():
    shifts = augment.draw_shifts(jax.random.key(0), (1000,), 32)
    assert int(jnp.abs(shifts).max()) == 4
    x = jnp.ones((2, 16, 16, 3))
    grad = jax.grad(lambda x: augment.translate(x, jnp.array([[2, -2], [0, 1]])).sum())(x)
    assert float(grad.sum()) == 2 * 16 * 16 * 3 - 3 * (2 * 16 + 2 * 16 - 4) - 3 * 16


def test_color_is_diffaugments_brightness_saturation_contrast():
    x = jnp.array([0.0, 1.0, 2.0, 3.0]).reshape(1, 2, 2, 1)
    np.testing.assert_allclose(augment.color(x, jnp.array([[0.5, 0.5, 0.5]])), x, atol=1e-6)
    np.testing.assert_allclose(augment.color(x, jnp.array([[1.0, 0.5, 0.5]])), x + 0.5, atol=1e-6)
    # Contrast factor 1.0 scales the deviations from the image mean (1.5) by 1.5.
    np.testing.assert_allclose(augment.color(x, jnp.array([[0.5, 0.5, 1.0]])),
                               (x - 1.5) * 1.5 + 1.5, atol=1e-6)
    # Saturation 0 turns an RGB pixel into its grey mean.
    rgb = jnp.array([0.0, 0.3, 0.9]).reshape(1, 1, 1, 3)
    np.testing.assert_allclose(augment.color(rgb, jnp.array([[0.5, 0.0, 0.5]])),
                               jnp.full((1, 1, 1, 3), 0.4), atol=1e-6)


def test_cutout_zeroes_a_square_of_half_the_side():
    x = jnp.ones((2, 8, 8, 3))
    out = augment.cutout(x, jnp.array([[4, 4], [0, 7]]))
    zeros = np.asarray(out[..., 0] == 0)
    assert zeros[0].sum() == 16 and zeros[0, 2:6, 2:6].all()
    assert zeros[1].sum() == 2 * 3 and zeros[1, :2, 5:].all()  # rows -2..1, cols 5..8, clipped


def test_policy_probability_and_gradients():
    policy = augment.parse_policy("color,translation,cutout")
    key = jax.random.key(0)
    numbers = augment.draw(key, policy, (64,), 16)
    # Translation draws the same numbers as jaxgan 0.1's shifts did.
    np.testing.assert_array_equal(numbers["translation"], augment.draw_shifts(key, (64,), 16))
    x = jax.random.uniform(jax.random.key(1), (64, 16, 16, 3), minval=-1, maxval=1)
    np.testing.assert_array_equal(augment.apply(x, numbers, policy, 0.0), x)
    changed = np.asarray(jnp.any(augment.apply(x, numbers, policy, 1.0) != x, axis=(1, 2, 3)))
    assert changed.all()
    half = augment.apply(x, numbers, policy, 0.5)
    untouched = np.all(np.asarray(numbers["apply"]) >= 0.5, axis=-1)
    assert untouched.any() and np.array_equal(np.asarray(half)[untouched], np.asarray(x)[untouched])
    grad = jax.grad(lambda x: augment.apply(x, numbers, policy, 1.0).sum())(x)
    assert float(jnp.abs(grad).sum()) > 0
    with pytest.raises(ValueError, match="unknown augmentation 'colour'"):
        augment.parse_policy("colour")


def test_adaptive_probability_follows_the_sign_of_real_logits():
    # D too sure of real images (mean sign 0.9 > target 0.6): p rises by 64 / 100,000 images.
    assert np.isclose(float(augment.adapt_probability(0.5, 0.9, 0.6, 64, 100.0)), 0.50064)
    assert np.isclose(float(augment.adapt_probability(0.5, 0.2, 0.6, 64, 100.0)), 0.49936)
    assert float(augment.adapt_probability(0.0, 0.2, 0.6, 64, 100.0)) == 0.0
