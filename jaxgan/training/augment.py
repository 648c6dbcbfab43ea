"""Differentiable augmentation of what the discriminator sees (DiffAugment, Zhao et al. 2020),
applied with a probability p that may adapt during training (ADA, Karras et al. 2020).

Real and generated images are both augmented, so D cannot memorise a small training set and the
generator is not pushed towards images it has memorised; gradients flow through every operation
to the generator. The policies are DiffAugment's: `color` (brightness, saturation, contrast),
`translation` (shift by up to 1/8 of the side, zero fill) and `cutout` (a zeroed square of half
the side). Each operation is applied to each image with probability p (p = 1: plain DiffAugment).

The random numbers are drawn for the global batch from the step's key (`draw`), outside the
per-device code, so one device and eight give the same result; `apply` is the per-device part.
Written by hand (array arithmetic and a per-image dynamic slice): neither optax nor flax has it.

A policy may instead be StyleGAN2-ADA's whole pipeline, alone: 'ada' or 'bgc'
(jaxgan.training.augment_pipe), with the same division into `draw` and `apply`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jaxgan.config import AUGMENT_PIPES, AUGMENTATIONS
from jaxgan.training import augment_pipe


def parse_policy(policy: str) -> tuple[str, ...]:
    """'color,translation' -> ('color', 'translation'); '' -> (); 'ada' -> ('ada',)."""
    names = tuple(name for name in policy.split(",") if name)
    if any(name in AUGMENT_PIPES for name in names):
        if len(names) > 1:
            raise ValueError(f"{policy!r}: StyleGAN2-ADA's pipeline ({' or '.join(AUGMENT_PIPES)})"
                             " takes no other augmentation beside it")
        return names
    unknown = [name for name in names if name not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown[0]!r}; expected {', '.join(AUGMENTATIONS)}")
    return names


def max_shift(resolution: int) -> int:
    """DiffAugment's translation range: 1/8 of the image side."""
    return max(1, resolution // 8)


def cutout_size(resolution: int) -> int:
    """DiffAugment's cutout square: half the image side, rounded."""
    return int(resolution * 0.5 + 0.5)


def cutout_centres(resolution: int) -> int:
    """How many cutout centres draw() chooses from per axis: 0 .. resolution (DiffAugment's
    range), one fewer when the square's side is odd."""
    return resolution + (1 - cutout_size(resolution) % 2)


def draw_shifts(key, shape, resolution: int):
    """Integer (dy, dx) shifts in [-s, s], shape (*shape, 2)."""
    s = max_shift(resolution)
    return jax.random.randint(key, (*shape, 2), -s, s + 1, jnp.int32)


def draw(key, policy: tuple[str, ...], shape, resolution: int) -> dict:
    """The random numbers of `policy` for a batch of `shape` (e.g. (K, 3, B)): a dict of arrays
    whose leading axes are `shape` (the batch axis last of them)."""
    if policy and policy[0] in AUGMENT_PIPES:  # its own numbers (the older policies' untouched)
        return {"pipe": augment_pipe.draw(jax.random.fold_in(key, 5), shape)}
    # Translation draws from `key` itself, as jaxgan 0.1 did, so its runs keep their numbers.
    keys = {"translation": key, **{name: jax.random.fold_in(key, i + 1) for i, name in
                                   enumerate(("apply", "color", "cutout"))}}
    numbers = {"apply": jax.random.uniform(keys["apply"], (*shape, len(policy)))}
    if "color" in policy:  # brightness, saturation, contrast factors, each U[0, 1)
        numbers["color"] = jax.random.uniform(keys["color"], (*shape, 3))
    if "translation" in policy:
        numbers["translation"] = draw_shifts(keys["translation"], shape, resolution)
    if "cutout" in policy:  # the square's centre, DiffAugment's range
        numbers["cutout"] = jax.random.randint(keys["cutout"], (*shape, 2), 0,
                                               cutout_centres(resolution), jnp.int32)
    return numbers


def translate(x_BHWC, shift_B2):
    """Shift every image by its (dy, dx), filling with zeros (mid-grey in [-1, 1])."""
    _, h, w, c = x_BHWC.shape
    s = max_shift(h)
    padded = jnp.pad(x_BHWC, ((0, 0), (s, s), (s, s), (0, 0)))
    return jax.vmap(lambda image, d: lax.dynamic_slice(image, (s - d[0], s - d[1], 0), (h, w, c)))(
        padded, shift_B2)


def color(x_BHWC, factors_B3):
    """DiffAugment's rand_brightness, rand_saturation, rand_contrast with factors U[0, 1)."""
    brightness, saturation, contrast = (factors_B3[:, i, None, None, None] for i in range(3))
    x = x_BHWC + (brightness - 0.5)
    mean = x.mean(axis=-1, keepdims=True)
    x = (x - mean) * (saturation * 2.0) + mean
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return (x - mean) * (contrast + 0.5) + mean


def cutout(x_BHWC, centre_B2):
    """Zero a square of `cutout_size` around each image's centre (clipped at the border)."""
    _, h, w, _ = x_BHWC.shape
    size = cutout_size(h)
    rows, cols = jnp.arange(h), jnp.arange(w)
    top, left = centre_B2[:, 0] - size // 2, centre_B2[:, 1] - size // 2
    inside_rows = (rows[None] >= top[:, None]) & (rows[None] < top[:, None] + size)
    inside_cols = (cols[None] >= left[:, None]) & (cols[None] < left[:, None] + size)
    keep = ~(inside_rows[:, :, None] & inside_cols[:, None, :])
    return x_BHWC * keep[..., None].astype(x_BHWC.dtype)


OPERATIONS = {"color": color, "translation": translate, "cutout": cutout}


def apply(x_BHWC, numbers: dict, policy: tuple[str, ...], p):
    """Augment a batch: each operation of `policy` in turn, to each image with probability `p`
    (StyleGAN2-ADA's pipeline: each of its operations with p times its multiplier)."""
    if policy and policy[0] in AUGMENT_PIPES:
        return augment_pipe.apply(x_BHWC, numbers["pipe"], augment_pipe.PIPES[policy[0]], p)
    for i, name in enumerate(policy):
        augmented = OPERATIONS[name](x_BHWC, numbers[name])
        chosen = (numbers["apply"][:, i] < p)[:, None, None, None]
        x_BHWC = jnp.where(chosen, augmented, x_BHWC)
    return x_BHWC


def adapt_probability(p, real_sign_mean, target: float, num_images, kimg: float):
    """ADA's update (Karras et al. 2020): p moves by num_images / (kimg * 1000) towards more
    augmentation while E[sign(D(real))] exceeds `target` (D is overfitting), else towards less."""
    step = jnp.sign(real_sign_mean - target) * num_images / (kimg * 1000.0)
    return jnp.clip(p + step, 0.0, 1.0)
