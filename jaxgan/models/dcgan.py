"""DCGAN-family generator and discriminator (Flax Linen), conditional or not.

Conditioning follows the two standard recipes: conditional BatchNorm in the generator (per-class
gain and bias, as in BigGAN / Miyato & Koyama) and a projection head in the discriminator
(Miyato & Koyama 2018, "cGANs with Projection Discriminator"). `num_classes=0` gives the
unconditional DCGAN of the same shape (plain BatchNorm, no projection).

With `g_width = d_width = 64`, `latent_dim = 100`, 64x64x3 and `d_norm="batch"` the networks are
the PyTorch DCGAN example's: the first 1x1 -> 4x4 transposed convolution is written as the
equivalent bias-free Dense layer (same parameter count), every convolution is bias-free, and all
weights start from N(0, 0.02).
"""
from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxgan.errors import UserError
from jaxgan.models.cpu_conv import DownConv2x, UpConv2x
from jaxgan.models.norms import ConditionalBatchNorm, batch_norm, embed_labels, projection

DCGAN_INIT = nn.initializers.normal(0.02)
MIN_RESOLUTION, MAX_RESOLUTION = 16, 128


def num_doublings(resolution: int) -> int:
    """How many 2x up/down-samplings lie between 4x4 and `resolution` (a power of two, 16-128)."""
    if resolution not in {2**k for k in range(4, 8)}:
        raise ValueError(f"powers of two from {MIN_RESOLUTION} to {MAX_RESOLUTION}, got "
                         f"{resolution}")
    return int(math.log2(resolution)) - 2


class Generator(nn.Module):
    """G(z, labels) -> images in [-1, 1], shape (B, resolution, resolution, channels).

    `labels`: int class indices (B,), or class weights (B, num_classes) to blend classes.

    4x4 x (width * 2^(n-1)) from a Dense layer, then n-1 (upsample 2x, BatchNorm, ReLU) blocks
    halving the width, then an upsampling to `channels` and tanh; n = log2(resolution) - 2.
    """
    resolution: int = 16
    channels: int = 1
    num_classes: int = 0
    latent_dim: int = 100
    width: int = 64
    axis_name: str | None = None
    dtype: Any = None

    @nn.compact
    def __call__(self, z_BZ, labels_B=None, train: bool = False):
        n = num_doublings(self.resolution)
        width = self.width * 2 ** (n - 1)
        norm = lambda: ConditionalBatchNorm(self.num_classes, axis_name=self.axis_name,
                                            dtype=self.dtype)
        if self.num_classes > 0:
            # The label also enters with the noise (as in the classic conditional DCGAN), which
            # makes classes separate from the first steps; conditional BatchNorm refines them.
            label_BE = embed_labels(nn.Embed(self.num_classes, self.latent_dim,
                                             name="label_embedding"), labels_B)
            z_BZ = jnp.concatenate([z_BZ, label_BE.astype(z_BZ.dtype)], axis=-1)
        x = nn.Dense(4 * 4 * width, use_bias=False, kernel_init=DCGAN_INIT, dtype=self.dtype)(z_BZ)
        x = x.reshape(-1, 4, 4, width)
        x = nn.relu(norm()(x, labels_B, train))
        for _ in range(n - 1):
            width //= 2
            x = UpConv2x(width, kernel_init=DCGAN_INIT, dtype=self.dtype)(x)
            x = nn.relu(norm()(x, labels_B, train))
        x = UpConv2x(self.channels, kernel_init=DCGAN_INIT, dtype=self.dtype)(x)
        return jnp.tanh(x.astype(jnp.float32))


class Discriminator(nn.Module):
    """D(x, labels) -> (one logit per image, shape (B,); its own loss: 0, it has none).

    (conv 4x4 stride 2, [BatchNorm], LeakyReLU 0.2) blocks doubling the width down to 4x4, then a
    4x4 'valid' convolution to one logit; conditional models add the projection
    <embed(label), sum-pooled features>.
    """
    resolution: int = 16
    num_classes: int = 0
    width: int = 64
    norm: str = "batch"  # "batch" | "none"
    axis_name: str | None = None
    dtype: Any = None

    @nn.compact
    def __call__(self, x_BHWC, labels_B=None, train: bool = False):
        n = num_doublings(self.resolution)
        width = self.width
        use_bias = self.norm == "none"
        # DownConv2x: exactly nn.Conv(k4, s2, pad 1), with a faster input gradient on XLA:CPU.
        conv = lambda features: DownConv2x(features, use_bias=use_bias, kernel_init=DCGAN_INIT,
                                           dtype=self.dtype)
        x = nn.leaky_relu(conv(width)(x_BHWC), 0.2)
        for _ in range(n - 1):
            width *= 2
            x = conv(width)(x)
            if self.norm == "batch":
                x = batch_norm(train, self.axis_name, self.dtype)(x)
            x = nn.leaky_relu(x, 0.2)
        logits = nn.Conv(1, (4, 4), padding="VALID", use_bias=False, kernel_init=DCGAN_INIT,
                         dtype=self.dtype)(x).reshape(-1).astype(jnp.float32)
        if self.num_classes > 0:
            features_BC = x.astype(jnp.float32).sum(axis=(1, 2))
            embed = nn.Embed(self.num_classes, width, embedding_init=DCGAN_INIT, name="projection")
            logits = logits + projection(self, embed, labels_B, features_BC)
        return logits, jnp.zeros((), jnp.float32)


def build(model_config, image_shape, num_classes: int, axis_name: str | None = None):
    """The (generator, discriminator) pair `model_config` describes (jaxgan.models.build_models)."""
    resolution, width, channels = image_shape
    try:
        num_doublings(resolution)
    except ValueError as error:
        raise UserError(f"data.resolution: the dcgan family supports {error}") from None
    if model_config.d_norm == "spectral":
        raise UserError("model.d_norm='spectral': the dcgan family's discriminator takes 'batch' "
                        "or 'none' (spectral norm is the resnet family's: model.arch='resnet')")
    dtype = jnp.dtype(model_config.dtype)
    generator = Generator(resolution=resolution, channels=channels, num_classes=num_classes,
                          latent_dim=model_config.latent_dim, width=model_config.g_width,
                          axis_name=axis_name, dtype=dtype)
    discriminator = Discriminator(resolution=resolution, num_classes=num_classes,
                                  width=model_config.d_width, norm=model_config.d_norm,
                                  axis_name=axis_name, dtype=dtype)
    return generator, discriminator
