"""Differentiable augmentation of what the discriminator sees (DiffAugment, Zhao et al. 2020).

Real and generated images are both shifted, so D cannot memorise a small training set and the
generator is not pushed towards a few images it has memorised; gradients flow through the shift to
the generator. Written by hand (a pad and a per-image dynamic slice): neither optax nor flax has it.
"""
import jax
import jax.numpy as jnp
from jax import lax


def max_shift(resolution: int) -> int:
    """DiffAugment's translation range: 1/8 of the image side."""
    return max(1, resolution // 8)


def draw_shifts(key, shape, resolution: int):
    """Integer (dy, dx) shifts in [-s, s], shape (*shape, 2)."""
    s = max_shift(resolution)
    return jax.random.randint(key, (*shape, 2), -s, s + 1, jnp.int32)


def translate(x_BHWC, shift_B2):
    """Shift every image by its (dy, dx), filling with zeros (mid-grey in [-1, 1])."""
    _, h, w, c = x_BHWC.shape
    s = max_shift(h)
    padded = jnp.pad(x_BHWC, ((0, 0), (s, s), (s, s), (0, 0)))
    return jax.vmap(lambda image, d: lax.dynamic_slice(image, (s - d[0], s - d[1], 0), (h, w, c)))(
        padded, shift_B2)
