import jax
import jax.numpy as jnp
import numpy as np

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
