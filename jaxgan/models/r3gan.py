"""R3GAN's networks (Huang, Gokaslan, Kuleshov, Tompkin, NeurIPS 2024, "The GAN is dead; long
live the GAN! A Modern GAN Baseline"), written from the official PyTorch code (github
brownvc/R3GAN at 19a7ddf: R3GAN/Networks.py, Resamplers.py, FusedOperators.py; train.py's presets)
for NHWC, conditional or not.

A normalisation-free ResNet in stages, one per resolution from 4x4 up (G) or down to 4x4 (D):
- Residual block (Networks.py ResidualBlock): x + conv1x1(2C -> C)(lrelu(b2 + grouped conv3x3
  (2C -> 2C)(lrelu(b1 + conv1x1(C -> 2C)(x))))): leaky ReLU 0.2 with a learned bias per channel
  and no output gain (FusedOperators.py: bias_act with gain=1), no convolution biases, no
  normalisation. The grouped 3x3 has `model.group_width` channels per group (R3GAN's
  cardinality: 16 at its CIFAR-10 and FFHQ widths, 32 at ImageNet's).
- Fix-up initialisation (MSRInitializer): weights N(0, gain / sqrt(fan_in)) with
  gain = sqrt(2 / (1 + 0.2^2)) * L^(-1/4), L the number of blocks in that network; the last 1x1
  of every block starts at zero, so every block starts as the identity.
- Resampling (Resamplers.py, upfirdn2d): the separable low-pass [1, 3, 3, 1] / 8 per axis, a
  buffer, not a parameter. Up: zero insertion, then the filter times 2 per axis (4K in 2-D), with
  zero borders; down: the filter, then every second sample. A 1x1 convolution changes the width
  where two stages differ (G: before upsampling; D: after downsampling).
- G: z, with a bias-free linear embedding of the one-hot label (latent_dim wide, R3GAN's
  NoiseDimension) concatenated, scales each channel of a learned 4x4 basis (GenerativeBasis:
  basis N(0, 1), bias-free linear map); stages of blocks and upsampling; a 1x1 convolution to the
  image. No tanh: G's output is not bounded (samples are clipped to [-1, 1] when quantised, as
  R3GAN's metric code clamps them).
- D: a 1x1 convolution from the image (no activation), stages of blocks and downsampling, then
  DiscriminativeBasis: a depthwise 4x4 convolution of the 4x4 map and a bias-free linear layer to
  one logit, or, with classes, to an embedding (width of D's 4x4 stage) whose inner product with
  a bias-free linear embedding of the one-hot label is the logit (R3GAN's projection; no separate
  unconditional term).
Widths: `model.g_width` / `model.d_width` channels at every stage up to 32x32 (R3GAN's CIFAR-10
768, ImageNet-32 1536), half the previous stage's above (its FFHQ presets; its ImageNet-64 preset,
which keeps 1536 at 64x64, is not expressible). `model.blocks_per_stage` blocks per stage (R3GAN's
2). With configs/cifar10_r3gan.py and configs/imagenet32_r3gan.py the parameter counts equal the
official code's (tests/test_r3gan.py).
The grouped 3x3 runs as XLA's grouped convolution on accelerators and, on CPUs, as one batched
matrix product over its nine taps, 4-17x faster to differentiate there (GROUPED_IMPL below).
Where jaxgan differs: the official code runs the larger stages in bfloat16 (`model.dtype` sets
one compute dtype for all layers here); 1 or 3 image channels (the official: 3).
"""
from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen.dtypes import promote_dtype

from jaxgan.errors import UserError
from jaxgan.models.norms import embed_labels, projection

MIN_RESOLUTION, MAX_RESOLUTION = 8, 1024
EXPANSION = 2              # ExpansionFactor of every official preset
DEFAULT_BLOCKS = 2         # blocks per stage of every official preset
DEFAULT_GROUP_WIDTH = 16   # expanded channels per group: 1536 / 96 in the CIFAR-10 preset
FULL_WIDTH_MAX = 32        # stages up to this size have the full width (FFHQ presets above)
SLOPE = 0.2                # leaky ReLU slope (bias_act's default alpha)
# BiasedActivation.Gain, used only to scale the initialisation (bias_act runs with gain 1).
ACTIVATION_GAIN = math.sqrt(2.0 / (1.0 + SLOPE ** 2))
# CreateLowpassKernel([1, 2, 1]): [1, 2, 1] * [1, 1] = [1, 3, 3, 1], normalised, per axis.
LOWPASS = (1 / 8, 3 / 8, 3 / 8, 1 / 8)


def msr_init(gain: float, fan_in: int):
    """MSRInitializer: N(0, gain / sqrt(fan_in))."""
    return nn.initializers.normal(gain / math.sqrt(fan_in))


def block_gain(num_blocks: int) -> float:
    """The fix-up gain of a block's first two layers: Gain * L^(-1 / (2m - 2)), m = 3 layers."""
    return ACTIVATION_GAIN * num_blocks ** (-1.0 / (2 * 3 - 2))


def stage_widths(width: int, resolution: int) -> list[int]:
    """Channels of each stage, from 4x4 up to `resolution`."""
    sizes = [2 ** k for k in range(2, int(math.log2(resolution)) + 1)]
    return [width // max(1, size // FULL_WIDTH_MAX) for size in sizes]


# ---------------------------------------------------------------------------------------------
# Resampling (upfirdn2d.upsample2d / downsample2d with the [1, 3, 3, 1] kernel), per axis
# ---------------------------------------------------------------------------------------------
#
# Up: insert zeros (x at even indices), pad (2, 1), convolve with 2 * LOWPASS per axis:
#     y[2m] = x[m-1] / 4 + 3 x[m] / 4,   y[2m+1] = 3 x[m] / 4 + x[m+1] / 4   (x = 0 outside).
# Down: pad (1, 1), convolve with LOWPASS, keep every second sample:
#     y[j] = (x[2j-1] + 3 x[2j] + 3 x[2j+1] + x[2j+2]) / 8.
# Written as shifted slices (no convolution): exact, and their gradients are slices and pads.

def _upsample_axis(x, axis: int):
    n = x.shape[axis]
    pads = [(0, 0)] * x.ndim
    pads[axis] = (1, 1)
    xp = jnp.pad(x, pads)
    window = lambda start: jax.lax.slice_in_dim(xp, start, start + n, axis=axis)
    previous, middle, following = window(0), window(1), window(2)
    even = 0.25 * previous + 0.75 * middle
    odd = 0.75 * middle + 0.25 * following
    y = jnp.stack([even, odd], axis=axis + 1)   # (..., n, 2, ...): y[2m + a]
    return y.reshape(x.shape[:axis] + (2 * n,) + x.shape[axis + 1:])


def _downsample_axis(x, axis: int):
    n = x.shape[axis]
    pads = [(0, 0)] * x.ndim
    pads[axis] = (1, 1)
    xp = jnp.pad(x, pads)
    taps = [jax.lax.slice_in_dim(xp, t, t + n - 1, stride=2, axis=axis) for t in range(4)]
    return sum(w * tap for w, tap in zip(LOWPASS, taps))


def interpolative_upsample2x(x_BHWC):
    """R3GAN's InterpolativeUpsampler: (B, H, W, C) -> (B, 2H, 2W, C), each channel alone."""
    return _upsample_axis(_upsample_axis(x_BHWC, 1), 2)


def interpolative_downsample2x(x_BHWC):
    """R3GAN's InterpolativeDownsampler: (B, H, W, C) -> (B, H/2, W/2, C), each channel alone."""
    return _downsample_axis(_downsample_axis(x_BHWC, 1), 2)


# ---------------------------------------------------------------------------------------------
# The grouped 3x3 convolution
# ---------------------------------------------------------------------------------------------

def grouped_conv3x3_xla(x_BHWC, kernel, groups: int):
    """XLA's grouped convolution; `kernel` (3, 3, C / groups, C) as nn.Conv's grouped kernel
    (output channel o belongs to group o // (C / groups))."""
    return jax.lax.conv_general_dilated(x_BHWC, kernel, (1, 1), ((1, 1), (1, 1)),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        feature_group_count=groups)


def grouped_conv3x3_taps(x_BHWC, kernel, groups: int):
    """The same sums as one batched matrix product over groups: the nine shifted copies of the
    input (zero padding 1) contracted with the kernel over (tap, input channel of the group)."""
    b, h, w, c = x_BHWC.shape
    per_group, out = kernel.shape[2], kernel.shape[3]
    xp = jnp.pad(x_BHWC, ((0, 0), (1, 1), (1, 1), (0, 0)))
    shifted = jnp.stack([xp[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=3)
    shifted = shifted.reshape(b, h, w, 9, groups, per_group)
    k = kernel.reshape(9, per_group, groups, out // groups)
    y = jnp.einsum("bhwtgi,tigo->bhwgo", shifted, k)
    return y.reshape(b, h, w, out)


def grouped_conv3x3_per_group(x_BHWC, kernel, groups: int):
    """The same sums as `groups` dense 3x3 convolutions, one per group, side by side: XLA:CPU
    runs dense convolutions and their gradients through its fast kernels, while the grouped
    convolution and the batched product above leave most of the CPU idle."""
    per_group, out = kernel.shape[2], kernel.shape[3]
    per_out = out // groups
    return jnp.concatenate([
        jax.lax.conv_general_dilated(
            x_BHWC[..., g * per_group:(g + 1) * per_group],
            kernel[..., g * per_out:(g + 1) * per_out], (1, 1), ((1, 1), (1, 1)),
            dimension_numbers=("NHWC", "HWIO", "NHWC"))
        for g in range(groups)], axis=-1)


# Which form runs on CPUs ("xla", "taps" or "per_group"). XLA:CPU differentiates grouped
# convolutions slowly, and the batched product of the taps leaves most of the CPU idle as well:
# benchmarks/grouped_conv.py (2-core AMD EPYC Zen 4, batch 16, one other job on the machine,
# 2026-12-07) measured forward / forward + both gradients / R1's double backward at configs/
# r3gan_cpu.py's 32x32 blocks (112 expanded channels, 7 groups) in 67 ms / 2.07 s / 4.08 s with
# XLA's grouped convolution, 232 / 447 / 597 ms per tap and 16 / 47 / 146 ms per group; at
# 16x16 and 8x8 with 128 channels, and with 32 or 48 groups, per group was the fastest too,
# except R1 at 48 groups (196 against 175 ms per tap). Only at the CIFAR-10 preset's 96 groups
# is R1 twice the taps' (838 against 428 ms) while forward + gradients take a third (108 against
# 353 ms): about level per step, which differentiates D twice for every R1. Accelerators always
# run XLA's (their convolution libraries do grouped convolutions well).
GROUPED_IMPL = "per_group"
CPU_FORMS = {"taps": grouped_conv3x3_taps, "per_group": grouped_conv3x3_per_group}


def grouped_conv3x3(x_BHWC, kernel, groups: int):
    if jax.default_backend() == "cpu" and GROUPED_IMPL in CPU_FORMS:
        return CPU_FORMS[GROUPED_IMPL](x_BHWC, kernel, groups)
    return grouped_conv3x3_xla(x_BHWC, kernel, groups)


class GroupedConv3x3(nn.Module):
    """Bias-free 3x3 convolution (zero padding 1) in `groups` groups, N(0, gain / sqrt(fan_in))."""
    features: int
    groups: int
    gain: float
    dtype: Any = None

    @nn.compact
    def __call__(self, x_BHWC):
        per_group = x_BHWC.shape[-1] // self.groups
        kernel = self.param("kernel", msr_init(self.gain, 9 * per_group),
                            (3, 3, per_group, self.features))
        x_BHWC, kernel = promote_dtype(x_BHWC, kernel, dtype=self.dtype)
        return grouped_conv3x3(x_BHWC, kernel, self.groups)


class BiasedLeakyReLU(nn.Module):
    """leaky_relu(x + b, 0.2), b per channel from zero (R3GAN's BiasedActivation)."""
    dtype: Any = None

    @nn.compact
    def __call__(self, x):
        bias = self.param("bias", nn.initializers.zeros, (x.shape[-1],))
        x, bias = promote_dtype(x, bias, dtype=self.dtype)
        return nn.leaky_relu(x + bias, SLOPE)


def linear(features: int, gain: float, fan_in: int, dtype, name: str) -> nn.Dense:
    """A bias-free linear layer, or a 1x1 convolution on NHWC maps (the same sums)."""
    return nn.Dense(features, use_bias=False, kernel_init=msr_init(gain, fan_in), dtype=dtype,
                    name=name)


class ResidualBlock(nn.Module):
    groups: int
    gain: float           # block_gain(blocks in this network)
    dtype: Any = None

    @nn.compact
    def __call__(self, x_BHWC):
        c = x_BHWC.shape[-1]
        e = EXPANSION * c
        y = linear(e, self.gain, c, self.dtype, "expand")(x_BHWC)
        y = BiasedLeakyReLU(self.dtype, name="act1")(y)
        y = GroupedConv3x3(e, self.groups, self.gain, self.dtype, name="grouped")(y)
        y = BiasedLeakyReLU(self.dtype, name="act2")(y)
        # ActivationGain=0: the block starts as the identity.
        y = nn.Dense(c, use_bias=False, kernel_init=nn.initializers.zeros, dtype=self.dtype,
                     name="project")(y)
        return x_BHWC + y


class Generator(nn.Module):
    """G(z, labels) -> images (B, resolution, resolution, channels), float32, unbounded.

    `labels`: int class indices (B,), or class weights (B, num_classes) to blend classes."""
    resolution: int = 32
    channels: int = 3
    num_classes: int = 0
    latent_dim: int = 64
    widths: tuple = ()
    groups: tuple = ()
    blocks: int = DEFAULT_BLOCKS
    dtype: Any = None

    @nn.compact
    def __call__(self, z_BZ, labels_B=None, train: bool = False):
        x = z_BZ.astype(jnp.float32)
        if self.num_classes > 0:
            # A bias-free Linear on the one-hot label is a table lookup (a blend for weights).
            embed = nn.Embed(self.num_classes, self.latent_dim, name="embedding",
                             embedding_init=msr_init(1.0, self.num_classes))
            x = jnp.concatenate([x, embed_labels(embed, labels_B).astype(x.dtype)], axis=-1)
        gain = block_gain(self.blocks * len(self.widths))
        basis = self.param("basis", nn.initializers.normal(1.0), (4, 4, self.widths[0]))
        scale_BC = linear(self.widths[0], 1.0, x.shape[-1], self.dtype, "basis_scale")(x)
        h = basis[None].astype(scale_BC.dtype) * scale_BC[:, None, None, :]
        for stage, (width, groups) in enumerate(zip(self.widths, self.groups)):
            if stage > 0:
                if width != h.shape[-1]:
                    h = linear(width, 1.0, h.shape[-1], self.dtype, f"transition{stage}")(h)
                h = interpolative_upsample2x(h)
            for i in range(self.blocks):
                h = ResidualBlock(groups, gain, self.dtype, name=f"stage{stage}_block{i}")(h)
        images = linear(self.channels, 1.0, h.shape[-1], self.dtype, "aggregation")(h)
        return images.astype(jnp.float32)


class Discriminator(nn.Module):
    """D(x, labels) -> (one logit per image, shape (B,); its own loss: 0, it has none).
    `widths`/`groups` from 4x4 up (as G's)."""
    resolution: int = 32
    num_classes: int = 0
    widths: tuple = ()
    groups: tuple = ()
    blocks: int = DEFAULT_BLOCKS
    dtype: Any = None

    @nn.compact
    def __call__(self, x_BHWC, labels_B=None, train: bool = False):
        widths, groups = self.widths[::-1], self.groups[::-1]   # from full size down to 4x4
        gain = block_gain(self.blocks * len(widths))
        h = linear(widths[0], 1.0, x_BHWC.shape[-1], self.dtype, "extraction")(x_BHWC)
        for stage, (width, group) in enumerate(zip(widths, groups)):
            for i in range(self.blocks):
                h = ResidualBlock(group, gain, self.dtype, name=f"stage{stage}_block{i}")(h)
            if stage + 1 < len(widths):
                h = interpolative_downsample2x(h)
                if widths[stage + 1] != width:
                    h = linear(widths[stage + 1], 1.0, width, self.dtype,
                               f"transition{stage}")(h)
        c = widths[-1]
        # DiscriminativeBasis: a depthwise 4x4 convolution without padding of the 4x4 map (one
        # weighted sum per channel), then a bias-free linear layer.
        basis = self.param("basis", msr_init(1.0, 16), (4, 4, c))
        h, basis = promote_dtype(h, basis, dtype=self.dtype)
        features_BC = jnp.einsum("bhwc,hwc->bc", h, basis)
        out = c if self.num_classes > 0 else 1   # ConditionEmbeddingDimension = D's 4x4 width
        features_BE = linear(out, 1.0, c, self.dtype, "head")(features_BC).astype(jnp.float32)
        if self.num_classes == 0:
            return features_BE[:, 0], jnp.zeros((), jnp.float32)
        embed = nn.Embed(self.num_classes, out, name="projection",
                         embedding_init=msr_init(1.0 / math.sqrt(out), self.num_classes))
        return projection(self, embed, labels_B, features_BE), jnp.zeros((), jnp.float32)


def settings(model_config) -> tuple[int, int]:
    """(blocks per stage, channels per group) with 0 meaning R3GAN's."""
    return (model_config.blocks_per_stage or DEFAULT_BLOCKS,
            model_config.group_width or DEFAULT_GROUP_WIDTH)


def _check(model_config, image_shape):
    resolution, _, channels = image_shape
    if not (MIN_RESOLUTION <= resolution <= MAX_RESOLUTION):
        raise UserError(f"data.resolution: the r3gan family supports powers of two from "
                        f"{MIN_RESOLUTION} to {MAX_RESOLUTION}, got {resolution}")
    if channels not in (1, 3):
        raise UserError(f"data.channels: the r3gan family supports 1 or 3, got {channels}")
    if model_config.d_norm != "none":
        raise UserError(f"model.d_norm={model_config.d_norm!r}: the r3gan family has no "
                        "normalisation: set 'none'")
    _, group_width = settings(model_config)
    for name in ("g_width", "d_width"):
        width = model_config[name]
        for size, w in zip((2 ** k for k in range(2, 11)), stage_widths(width, resolution)):
            if w < 1:
                raise UserError(f"model.{name}={width}: at {resolution} px the r3gan family's "
                                f"{size}x{size} stage would have no channels; raise it")
            if (EXPANSION * w) % group_width:
                raise UserError(
                    f"model.{name}={width}: at {resolution} px the r3gan family's {size}x{size} "
                    f"stage would have {w} channels, whose {EXPANSION * w} expanded ones are not "
                    f"a multiple of model.group_width={group_width}; change either")


def build(model_config, image_shape, num_classes: int, axis_name: str | None = None):
    """The (generator, discriminator) pair `model_config` describes (jaxgan.models.build_models).
    `axis_name` is unused: nothing in these networks depends on the rest of the batch."""
    image_shape = tuple(image_shape)
    _check(model_config, image_shape)
    resolution, _, channels = image_shape
    blocks, group_width = settings(model_config)
    dtype = jnp.dtype(model_config.dtype)

    def shape(width):
        widths = tuple(stage_widths(width, resolution))
        return widths, tuple(EXPANSION * w // group_width for w in widths)
    g_widths, g_groups = shape(model_config.g_width)
    d_widths, d_groups = shape(model_config.d_width)
    generator = Generator(resolution=resolution, channels=channels, num_classes=num_classes,
                          latent_dim=model_config.latent_dim, widths=g_widths, groups=g_groups,
                          blocks=blocks, dtype=dtype)
    discriminator = Discriminator(resolution=resolution, num_classes=num_classes,
                                  widths=d_widths, groups=d_groups, blocks=blocks, dtype=dtype)
    return generator, discriminator
