"""ResNet-family generator and discriminator (SNGAN / BigGAN, Flax Linen), conditional or not.

The networks are StudioGAN's `resnet` (SNGAN: Miyato et al. 2018, Miyato & Koyama 2018) and
`big_resnet` (BigGAN: Brock et al. 2019) backbones, written for NHWC:

Generator: z -> Dense -> 4x4, then one up-sampling residual block per doubling
  (BN -> ReLU -> nearest 2x -> conv3x3 -> BN -> ReLU -> conv3x3, plus nearest 2x -> conv1x1
  shortcut), an optional SAGAN self-attention block after the block that reaches
  `attention_resolution`, then BN -> ReLU -> conv3x3 -> tanh. Conditioning is class-conditional
  BatchNorm (gain = 1 + embedding(label), bias = embedding(label)), or BigGAN's: a shared class
  embedding and/or a hierarchical latent (z split into one chunk per block plus one for the Dense
  layer), concatenated into a vector from which each BatchNorm's gain and bias are linear maps.
Discriminator: down-sampling residual blocks (the first one "optimised": conv -> ReLU -> conv ->
  avg-pool, shortcut avg-pool -> conv1x1), the last blocks at constant resolution, optional
  self-attention, ReLU, global sum pooling, Dense(1) + projection <embedding(label), features>.
  With `norm="spectral"` every convolution, Dense and embedding of D is spectrally normalised
  (flax's nn.SpectralNorm: its power-iteration vector lives in the 'batch_stats' collection, which
  the train step threads and checkpoints like BatchNorm statistics).

Every weight starts orthogonal (StudioGAN's `ortho` init), biases at zero. Channel widths follow
StudioGAN's tables (multiples of g_width / d_width); with the CIFAR-10 settings of
configs/cifar10_sngan.py and configs/cifar10_biggan.py the parameter counts equal StudioGAN's
(tests/test_resnet.py).
"""
from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxgan.errors import UserError
from jaxgan.models.cpu_conv import conv_same
from jaxgan.models.norms import (ConditionalBatchNorm, batch_norm, embed_labels,
                                 sow_class_scores, spectrally_normalised, upsample2x)

MIN_RESOLUTION, MAX_RESOLUTION = 16, 256
ORTHO = nn.initializers.orthogonal()
BN_EPSILON = 1e-4  # StudioGAN's (and BigGAN's) BatchNorm epsilon
SN_EPSILON = 1e-6  # StudioGAN's spectral-norm epsilon

# Channel multipliers (of g_width) of the generator blocks' outputs, from 4x4 up: StudioGAN's
# g_out_dims (a block's input width is the previous block's output, the first one's G_WIDTH_IN).
G_OUT = {16: (4, 4), 32: (4, 4, 4), 64: (8, 4, 2, 1), 128: (16, 8, 4, 2, 1),
         256: (16, 8, 8, 4, 2, 1)}
G_IN0 = {16: 4, 32: 4, 64: 16, 128: 16, 256: 16}
# Discriminator blocks: (output multiplier of d_width, downsample), StudioGAN's d_out_dims/d_down.
D_BLOCKS = {16: ((2, True), (2, True), (2, False), (2, False)),
            32: ((2, True), (2, True), (2, False), (2, False)),
            64: ((1, True), (2, True), (4, True), (8, True), (16, False)),
            128: ((1, True), (2, True), (4, True), (8, True), (16, True), (16, False)),
            256: ((1, True), (2, True), (4, True), (8, True), (8, True), (16, True), (16, False))}


def avg_pool2x(x_BHWC):
    return nn.avg_pool(x_BHWC, (2, 2), (2, 2))


class Layers:
    """Layer constructors of one network: orthogonal init, spectrally normalised or not.

    `sn(layer)(x, ...)` runs `layer` with its kernel divided by its largest singular value
    (estimated by one power-iteration step per training call) when `spectral`."""

    def __init__(self, spectral: bool, train: bool, dtype):
        self.spectral, self.train, self.dtype = spectral, train, dtype

    def apply(self, layer, *args):
        return spectrally_normalised(layer, self.spectral, self.train, SN_EPSILON)(*args)

    def conv(self, x, features, kernel=3, use_bias=True, name=None):
        return self.apply(nn.Conv(features, (kernel, kernel), padding="SAME", use_bias=use_bias,
                                  kernel_init=ORTHO, dtype=self.dtype, name=name,
                                  conv_general_dilated=conv_same), x)

    def dense(self, x, features, use_bias=True, name=None):
        return self.apply(nn.Dense(features, use_bias=use_bias, kernel_init=ORTHO,
                                   dtype=self.dtype, name=name), x)

    def embed(self, labels, num_classes, features, name=None):
        return self.apply(nn.Embed(num_classes, features, embedding_init=ORTHO, name=name), labels)


class SelfAttention(nn.Module):
    """SAGAN self-attention (Zhang et al. 2019) as StudioGAN writes it: keys and values max-pooled
    2x, x + sigma * attention(x) with sigma starting at 0."""
    spectral: bool = False
    dtype: Any = None

    @nn.compact
    def __call__(self, x_BHWC, train: bool):
        b, h, w, c = x_BHWC.shape
        layers = Layers(self.spectral, train, self.dtype)
        conv = lambda x, features, name: layers.conv(x, features, 1, use_bias=False, name=name)
        pool = lambda x: nn.max_pool(x, (2, 2), (2, 2))
        theta = conv(x_BHWC, c // 8, "theta").reshape(b, h * w, c // 8)
        phi = pool(conv(x_BHWC, c // 8, "phi")).reshape(b, h * w // 4, c // 8)
        g = pool(conv(x_BHWC, c // 2, "g")).reshape(b, h * w // 4, c // 2)
        attention = nn.softmax(jnp.einsum("bqc,bkc->bqk", theta, phi).astype(jnp.float32), -1)
        attended = jnp.einsum("bqk,bkc->bqc", attention.astype(g.dtype), g).reshape(b, h, w, c // 2)
        out = conv(attended, c, "out")
        sigma = self.param("sigma", nn.initializers.zeros, ())
        return x_BHWC + sigma.astype(out.dtype) * out


class GeneratorBlock(nn.Module):
    features: int
    num_classes: int
    spectral: bool = False
    axis_name: str | None = None
    dtype: Any = None

    @nn.compact
    def __call__(self, x, cond, vector: bool, train: bool):
        layers = Layers(self.spectral, train, self.dtype)
        norm = lambda name: ConditionalBatchNorm(
            self.num_classes, self.axis_name, self.dtype, epsilon=BN_EPSILON, gain_init=ORTHO,
            bias_init=ORTHO, one_plus_gain=True, spectral=self.spectral,
            spectral_epsilon=SN_EPSILON, name=name)
        h = nn.relu(norm("bn1")(x, cond, train, vector))
        h = layers.conv(upsample2x(h), self.features, name="conv1")
        h = nn.relu(norm("bn2")(h, cond, train, vector))
        h = layers.conv(h, self.features, name="conv2")
        return h + layers.conv(upsample2x(x), self.features, 1, name="shortcut")


class Generator(nn.Module):
    """G(z, labels) -> images in [-1, 1], shape (B, resolution, resolution, channels).

    `labels`: int class indices (B,), or class weights (B, num_classes) to blend classes."""
    resolution: int = 32
    channels: int = 3
    num_classes: int = 0
    latent_dim: int = 128
    width: int = 64
    attention_resolution: int = 0
    shared_embedding_dim: int = 0
    hierarchical_latent: bool = False
    spectral: bool = False
    axis_name: str | None = None
    dtype: Any = None

    @nn.compact
    def __call__(self, z_BZ, labels_B=None, train: bool = False):
        widths = [m * self.width for m in G_OUT[self.resolution]]
        layers = Layers(self.spectral, train, self.dtype)
        # The conditioning vector of every block's BatchNorms (BigGAN), or None (SNGAN's labels).
        chunks = [z_BZ]
        if self.hierarchical_latent:
            chunks = jnp.split(z_BZ, len(widths) + 1, axis=-1)
        shared = []
        if self.shared_embedding_dim and self.num_classes:
            shared = [embed_labels(nn.Embed(self.num_classes, self.shared_embedding_dim,
                                            embedding_init=ORTHO, name="shared_embedding"),
                                   labels_B).astype(z_BZ.dtype)]
        vector = self.hierarchical_latent or bool(shared)
        conds = [jnp.concatenate(shared + chunks[i + 1:i + 2], axis=-1) if vector else labels_B
                 for i in range(len(widths))]

        in0 = G_IN0[self.resolution] * self.width
        x = layers.dense(chunks[0], 4 * 4 * in0, name="linear").reshape(-1, 4, 4, in0)
        size = 4
        for i, features in enumerate(widths):
            x = GeneratorBlock(features, self.num_classes, self.spectral, self.axis_name,
                               self.dtype, name=f"block{i}")(x, conds[i], vector, train)
            size *= 2
            if size == self.attention_resolution:
                x = SelfAttention(self.spectral, self.dtype, name="attention")(x, train)
        x = nn.relu(batch_norm(train, self.axis_name, self.dtype, epsilon=BN_EPSILON)(x))
        x = layers.conv(x, self.channels, name="conv_out")
        return jnp.tanh(x.astype(jnp.float32))


class DiscriminatorBlock(nn.Module):
    features: int
    downsample: bool
    first: bool = False  # StudioGAN's DiscOptBlock: no activation before the first convolution
    spectral: bool = True
    dtype: Any = None

    @nn.compact
    def __call__(self, x, train: bool):
        layers = Layers(self.spectral, train, self.dtype)
        h = x if self.first else nn.relu(x)
        h = layers.conv(h, self.features, name="conv1")
        h = layers.conv(nn.relu(h), self.features, name="conv2")
        if self.downsample:
            h = avg_pool2x(h)
        if self.first:
            return h + layers.conv(avg_pool2x(x), self.features, 1, name="shortcut")
        if self.downsample or x.shape[-1] != self.features:
            x = layers.conv(x, self.features, 1, name="shortcut")
            x = avg_pool2x(x) if self.downsample else x
        return h + x


class Discriminator(nn.Module):
    """D(x, labels) -> (one logit per image, shape (B,); its own loss: 0, it has none)."""
    resolution: int = 32
    num_classes: int = 0
    width: int = 64
    attention_resolution: int = 0
    spectral: bool = True
    dtype: Any = None

    @nn.compact
    def __call__(self, x_BHWC, labels_B=None, train: bool = False):
        layers = Layers(self.spectral, train, self.dtype)
        x, size = x_BHWC, self.resolution
        for i, (multiple, downsample) in enumerate(D_BLOCKS[self.resolution]):
            x = DiscriminatorBlock(multiple * self.width, downsample, first=i == 0,
                                   spectral=self.spectral, dtype=self.dtype, name=f"block{i}")(x, train)
            previous, size = size, size // 2 if downsample else size
            if size == self.attention_resolution and size != previous:  # the first block there
                x = SelfAttention(self.spectral, self.dtype, name="attention")(x, train)
        features_BC = nn.relu(x).astype(jnp.float32).sum(axis=(1, 2))
        logits = layers.dense(features_BC, 1, name="linear").reshape(-1).astype(jnp.float32)
        if self.num_classes > 0:
            # The whole (spectrally normalised) table, then each image's row: the same numbers
            # as embedding the labels, and every class's score for train.class_loss (as
            # jaxgan.models.norms.projection sows it for the other families).
            table_KC = layers.embed(jnp.arange(self.num_classes), self.num_classes,
                                    features_BC.shape[-1], name="projection").astype(jnp.float32)
            sow_class_scores(self, features_BC, table_KC)
            logits = logits + jnp.sum(table_KC[labels_B] * features_BC, axis=-1)
        return logits, jnp.zeros((), jnp.float32)


def _check(model_config, image_shape, num_classes):
    resolution, _, channels = image_shape
    if resolution not in G_OUT:
        raise UserError(f"data.resolution: the resnet family supports powers of two from "
                        f"{MIN_RESOLUTION} to {MAX_RESOLUTION}, got {resolution}")
    if channels not in (1, 3):
        raise UserError(f"data.channels: the resnet family supports 1 or 3, got {channels}")
    if model_config.d_norm not in ("spectral", "none"):
        raise UserError(f"model.d_norm={model_config.d_norm!r}: the resnet family's discriminator "
                        "takes 'spectral' (SNGAN, BigGAN) or 'none'")
    # Sizes both networks pass through: G's blocks output 8 .. resolution, D's resolution/2 .. 8.
    sizes = {resolution // 2**k for k in range(1, int(math.log2(resolution)) - 2)}
    attention = model_config.attention_resolution
    if attention and attention not in sizes:
        raise UserError(f"model.attention_resolution={attention}: at {resolution} px it must be 0 "
                        f"(none) or one of {', '.join(map(str, sorted(sizes)))}")
    blocks = len(G_OUT[resolution])
    if model_config.hierarchical_latent and model_config.latent_dim % (blocks + 1):
        raise UserError(f"model.latent_dim={model_config.latent_dim}: a hierarchical latent at "
                        f"{resolution} px is split into {blocks + 1} equal chunks, so it must be a "
                        f"multiple of {blocks + 1}")


def build(model_config, image_shape, num_classes: int, axis_name: str | None = None):
    """The (generator, discriminator) pair `model_config` describes (jaxgan.models.build_models)."""
    image_shape = tuple(image_shape)
    _check(model_config, image_shape, num_classes)
    resolution, _, channels = image_shape
    dtype = jnp.dtype(model_config.dtype)
    generator = Generator(
        resolution=resolution, channels=channels, num_classes=num_classes,
        latent_dim=model_config.latent_dim, width=model_config.g_width,
        attention_resolution=model_config.attention_resolution,
        shared_embedding_dim=model_config.shared_embedding_dim,
        hierarchical_latent=model_config.hierarchical_latent,
        spectral=model_config.g_spectral_norm, axis_name=axis_name, dtype=dtype)
    discriminator = Discriminator(
        resolution=resolution, num_classes=num_classes, width=model_config.d_width,
        attention_resolution=model_config.attention_resolution,
        spectral=model_config.d_norm == "spectral", dtype=dtype)
    return generator, discriminator
