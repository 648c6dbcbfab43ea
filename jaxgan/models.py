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

from jaxgan.layers import DownConv2x, UpConv2x

DCGAN_INIT = nn.initializers.normal(0.02)
MIN_RESOLUTION, MAX_RESOLUTION = 16, 128


def num_doublings(resolution: int) -> int:
    """How many 2x up/down-samplings lie between 4x4 and `resolution` (a power of two, 16-128)."""
    if resolution not in {2**k for k in range(4, 8)}:
        raise ValueError(f"resolution must be a power of two from {MIN_RESOLUTION} to "
                         f"{MAX_RESOLUTION}, got {resolution}")
    return int(math.log2(resolution)) - 2


def embed_labels(embed: nn.Embed, labels):
    """Look up class embeddings: int labels (B,), or class weights (B, K) for a weighted mix of
    the embeddings (what morphing from one class to another interpolates)."""
    if jnp.issubdtype(labels.dtype, jnp.integer):
        return embed(labels)
    embed(jnp.zeros((1,), jnp.int32))  # creates the table on first use
    return labels.astype(jnp.float32) @ embed.embedding


class ConditionalBatchNorm(nn.Module):
    """BatchNorm whose gain and bias are looked up per class; plain BatchNorm when unconditional.

    Statistics are taken over the global batch: `axis_name` names the data-parallel mesh axis.
    """
    num_classes: int
    momentum: float = 0.9  # PyTorch's BatchNorm momentum 0.1, in flax's convention
    axis_name: str | None = None
    dtype: Any = None

    @nn.compact
    def __call__(self, x, labels, train: bool):
        conditional = self.num_classes > 0
        x = nn.BatchNorm(use_running_average=not train, momentum=self.momentum, epsilon=1e-5,
                         axis_name=self.axis_name if train else None, dtype=self.dtype,
                         use_scale=not conditional, use_bias=not conditional)(x)
        if conditional:
            features = x.shape[-1]
            gain = embed_labels(nn.Embed(self.num_classes, features, name="gain",
                                         embedding_init=nn.initializers.ones), labels)
            bias = embed_labels(nn.Embed(self.num_classes, features, name="bias",
                                         embedding_init=nn.initializers.zeros), labels)
            x = x * gain[:, None, None, :].astype(x.dtype) + bias[:, None, None, :].astype(x.dtype)
        return x


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
    """D(x, labels) -> one logit per image, shape (B,).

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
        if self.norm not in ("batch", "none"):
            raise ValueError(f"model.d_norm must be 'batch' or 'none', got {self.norm!r}")
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
                x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                                 axis_name=self.axis_name if train else None, dtype=self.dtype)(x)
            x = nn.leaky_relu(x, 0.2)
        logits = nn.Conv(1, (4, 4), padding="VALID", use_bias=False, kernel_init=DCGAN_INIT,
                         dtype=self.dtype)(x).reshape(-1).astype(jnp.float32)
        if self.num_classes > 0:
            features_BC = x.astype(jnp.float32).sum(axis=(1, 2))
            embed = nn.Embed(self.num_classes, width, embedding_init=DCGAN_INIT, name="projection")
            logits = logits + jnp.sum(embed(labels_B) * features_BC, axis=-1)
        return logits


def build_models(model_config, image_shape, num_classes: int, axis_name: str | None = None):
    """The (generator, discriminator) pair a config describes, for images of `image_shape`."""
    resolution, _, channels = image_shape
    dtype = jnp.dtype(model_config.get("dtype", "float32"))
    generator = Generator(resolution=resolution, channels=channels, num_classes=num_classes,
                          latent_dim=model_config.latent_dim, width=model_config.g_width,
                          axis_name=axis_name, dtype=dtype)
    discriminator = Discriminator(resolution=resolution, num_classes=num_classes,
                                  width=model_config.d_width, norm=model_config.d_norm,
                                  axis_name=axis_name, dtype=dtype)
    return generator, discriminator
