"""A toy model family: what adding one takes (tests/test_families.py registers it with one line,
`Family("toy_family", {"toy_hidden": ...})`, and trains it). Its discriminator has its own loss
and its own per-image random numbers, so that the test shows the train step needs no change for
either.
"""
from __future__ import annotations

import math
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.models.norms import embed_labels, projection


class Generator(nn.Module):
    """G(z, labels) -> images in [-1, 1]: one hidden layer."""
    image_shape: tuple
    num_classes: int
    hidden: int

    @nn.compact
    def __call__(self, z_BZ, labels_B=None, train: bool = False):
        if self.num_classes:
            z_BZ = jnp.concatenate([z_BZ, embed_labels(nn.Embed(self.num_classes, 4), labels_B)],
                                   axis=-1)
        h = nn.relu(nn.Dense(self.hidden)(z_BZ))
        x = nn.Dense(math.prod(self.image_shape))(h)
        return jnp.tanh(x).reshape(-1, *self.image_shape)


class Discriminator(nn.Module):
    """D(x, labels) -> (logits (B,), its own loss): a small penalty on the logits of the real
    images its random per-image mask keeps."""
    num_classes: int
    hidden: int
    aux_loss_name: ClassVar[str] = "toy_penalty"

    @staticmethod
    def draw_numbers(key, n_updates: int, batch_size: int) -> dict:
        return {"keep": jax.random.bernoulli(key, 0.5, (n_updates, batch_size))}

    @nn.compact
    def __call__(self, x_BHWC, labels_B=None, train: bool = False, numbers=None):
        h = nn.relu(nn.Dense(self.hidden)(x_BHWC.reshape(x_BHWC.shape[0], -1)))
        logits = nn.Dense(1)(h)[:, 0]
        if self.num_classes:
            # the projection head, its class scores sown for train.class_loss
            logits = logits + projection(self, nn.Embed(self.num_classes, self.hidden,
                                                        name="projection"), labels_B, h)
        if numbers is None:
            return logits, jnp.zeros((), jnp.float32)
        return logits, 0.01 * jnp.mean(numbers["keep"] * jnp.square(logits))


def build(model_config, image_shape, num_classes: int, axis_name: str | None = None):
    """Its networks; model.toy_hidden is its own config key (its registry line declares it)."""
    hidden = model_config.toy_hidden or 16
    return (Generator(tuple(image_shape), num_classes, hidden),
            Discriminator(num_classes, hidden))
