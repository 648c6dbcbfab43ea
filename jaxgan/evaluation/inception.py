"""InceptionV3 as pytorch-fid computes FID with it, in Flax Linen.

This is torchvision's Inception3 with 1008 classes and the blocks pytorch-fid patches to match the
TensorFlow graph the FID was defined with (`pytorch_fid/inception.py`):
- FIDInceptionA / FIDInceptionC / FIDInceptionE_1: the pool branch averages without counting the
  zero padding (TensorFlow's average pool);
- FIDInceptionE_2 (Mixed_7c): the pool branch is a 3x3 *max* pool;
- BatchNorm with eps 1e-3 in inference mode, bias-free convolutions;
- input uint8 -> [0, 1] -> bilinear resize to 299x299 (PyTorch's `F.interpolate(..., mode=
  "bilinear", align_corners=False)`, no antialiasing) -> 2x - 1.
Module names follow the PyTorch state dict (`Mixed_5b.branch1x1.conv.weight` ->
`Mixed_5b/branch1x1/conv/kernel`) so the weights convert by name (`jaxgan.evaluation.weights`).

`InceptionV3()(x_BHWC)` takes the resized, normalised 299x299x3 input and returns the 2048-d pool
features and the 1008 logits; `preprocess` does the input transform.
"""
from __future__ import annotations

import functools

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

INPUT_SIZE = 299
FEATURE_DIM = 2048
NUM_LOGITS = 1008
BN_EPS = 1e-3


class BasicConv2d(nn.Module):
    """torchvision's BasicConv2d: bias-free conv, BatchNorm (eps 1e-3), ReLU."""
    features: int
    kernel: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(self.features, self.kernel, self.strides,
                    padding=[(p, p) for p in self.padding], use_bias=False, name="conv")(x)
        x = nn.BatchNorm(use_running_average=True, epsilon=BN_EPS, name="bn")(x)
        return nn.relu(x)


def _avg_pool_3x3_same(x):
    # TensorFlow's average pool: the padded zeros are not counted (count_include_pad=False).
    return nn.avg_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3_same(x):
    return nn.max_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)))


def _max_pool_3x3_stride2(x):
    return nn.max_pool(x, (3, 3), (2, 2), padding="VALID")


class InceptionA(nn.Module):
    """FIDInceptionA."""
    pool_features: int

    @nn.compact
    def __call__(self, x):
        branch1x1 = BasicConv2d(64, (1, 1), name="branch1x1")(x)
        branch5x5 = BasicConv2d(48, (1, 1), name="branch5x5_1")(x)
        branch5x5 = BasicConv2d(64, (5, 5), padding=(2, 2), name="branch5x5_2")(branch5x5)
        dbl = BasicConv2d(64, (1, 1), name="branch3x3dbl_1")(x)
        dbl = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(dbl)
        dbl = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(dbl)
        pool = BasicConv2d(self.pool_features, (1, 1), name="branch_pool")(_avg_pool_3x3_same(x))
        return jnp.concatenate([branch1x1, branch5x5, dbl, pool], axis=-1)


class InceptionB(nn.Module):
    """torchvision's InceptionB (Mixed_6a), unchanged by pytorch-fid."""

    @nn.compact
    def __call__(self, x):
        branch3x3 = BasicConv2d(384, (3, 3), (2, 2), name="branch3x3")(x)
        dbl = BasicConv2d(64, (1, 1), name="branch3x3dbl_1")(x)
        dbl = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(dbl)
        dbl = BasicConv2d(96, (3, 3), (2, 2), name="branch3x3dbl_3")(dbl)
        return jnp.concatenate([branch3x3, dbl, _max_pool_3x3_stride2(x)], axis=-1)


class InceptionC(nn.Module):
    """FIDInceptionC."""
    channels_7x7: int

    @nn.compact
    def __call__(self, x):
        c7 = self.channels_7x7
        row, col = dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
        branch1x1 = BasicConv2d(192, (1, 1), name="branch1x1")(x)
        b7 = BasicConv2d(c7, (1, 1), name="branch7x7_1")(x)
        b7 = BasicConv2d(c7, **row, name="branch7x7_2")(b7)
        b7 = BasicConv2d(192, **col, name="branch7x7_3")(b7)
        dbl = BasicConv2d(c7, (1, 1), name="branch7x7dbl_1")(x)
        dbl = BasicConv2d(c7, **col, name="branch7x7dbl_2")(dbl)
        dbl = BasicConv2d(c7, **row, name="branch7x7dbl_3")(dbl)
        dbl = BasicConv2d(c7, **col, name="branch7x7dbl_4")(dbl)
        dbl = BasicConv2d(192, **row, name="branch7x7dbl_5")(dbl)
        pool = BasicConv2d(192, (1, 1), name="branch_pool")(_avg_pool_3x3_same(x))
        return jnp.concatenate([branch1x1, b7, dbl, pool], axis=-1)


class InceptionD(nn.Module):
    """torchvision's InceptionD (Mixed_7a), unchanged by pytorch-fid."""

    @nn.compact
    def __call__(self, x):
        b3 = BasicConv2d(192, (1, 1), name="branch3x3_1")(x)
        b3 = BasicConv2d(320, (3, 3), (2, 2), name="branch3x3_2")(b3)
        b7 = BasicConv2d(192, (1, 1), name="branch7x7x3_1")(x)
        b7 = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
        b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
        b7 = BasicConv2d(192, (3, 3), (2, 2), name="branch7x7x3_4")(b7)
        return jnp.concatenate([b3, b7, _max_pool_3x3_stride2(x)], axis=-1)


class InceptionE(nn.Module):
    """FIDInceptionE_1 (average pool without padding) or FIDInceptionE_2 (`max_pool=True`)."""
    max_pool: bool = False

    @nn.compact
    def __call__(self, x):
        row, col = dict(kernel=(1, 3), padding=(0, 1)), dict(kernel=(3, 1), padding=(1, 0))
        branch1x1 = BasicConv2d(320, (1, 1), name="branch1x1")(x)
        b3 = BasicConv2d(384, (1, 1), name="branch3x3_1")(x)
        b3 = jnp.concatenate([BasicConv2d(384, **row, name="branch3x3_2a")(b3),
                              BasicConv2d(384, **col, name="branch3x3_2b")(b3)], axis=-1)
        dbl = BasicConv2d(448, (1, 1), name="branch3x3dbl_1")(x)
        dbl = BasicConv2d(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(dbl)
        dbl = jnp.concatenate([BasicConv2d(384, **row, name="branch3x3dbl_3a")(dbl),
                               BasicConv2d(384, **col, name="branch3x3dbl_3b")(dbl)], axis=-1)
        pooled = _max_pool_3x3_same(x) if self.max_pool else _avg_pool_3x3_same(x)
        pool = BasicConv2d(192, (1, 1), name="branch_pool")(pooled)
        return jnp.concatenate([branch1x1, b3, dbl, pool], axis=-1)


class InceptionV3(nn.Module):
    """pytorch-fid's FID Inception: (B, 299, 299, 3) in [-1, 1] -> (pool (B, 2048), logits (B, 1008))."""

    @nn.compact
    def __call__(self, x_BHWC):
        x = BasicConv2d(32, (3, 3), (2, 2), name="Conv2d_1a_3x3")(x_BHWC)
        x = BasicConv2d(32, (3, 3), name="Conv2d_2a_3x3")(x)
        x = BasicConv2d(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)
        x = _max_pool_3x3_stride2(x)
        x = BasicConv2d(80, (1, 1), name="Conv2d_3b_1x1")(x)
        x = BasicConv2d(192, (3, 3), name="Conv2d_4a_3x3")(x)
        x = _max_pool_3x3_stride2(x)
        x = InceptionA(32, name="Mixed_5b")(x)
        x = InceptionA(64, name="Mixed_5c")(x)
        x = InceptionA(64, name="Mixed_5d")(x)
        x = InceptionB(name="Mixed_6a")(x)
        x = InceptionC(128, name="Mixed_6b")(x)
        x = InceptionC(160, name="Mixed_6c")(x)
        x = InceptionC(160, name="Mixed_6d")(x)
        x = InceptionC(192, name="Mixed_6e")(x)
        x = InceptionD(name="Mixed_7a")(x)
        x = InceptionE(name="Mixed_7b")(x)
        x = InceptionE(max_pool=True, name="Mixed_7c")(x)
        pool_BD = jnp.mean(x, axis=(1, 2))
        logits_BK = nn.Dense(NUM_LOGITS, name="fc")(pool_BD)
        return pool_BD, logits_BK


@functools.lru_cache(maxsize=None)
def bilinear_matrix(in_size: int, out_size: int = INPUT_SIZE) -> np.ndarray:
    """(out, in) weights of PyTorch's bilinear interpolation along one axis (align_corners=False).

    Written by hand because jax.image.resize antialiases when it shrinks and computes source
    coordinates its own way; FID must see exactly the pixels pytorch-fid feeds its network.
    As ATen's upsample_bilinear2d: scale = in/out in float32, source = (dst + 0.5) * scale - 0.5,
    clamped at 0; the upper neighbour is clamped to the last pixel.
    """
    scale = np.float32(in_size) / np.float32(out_size)
    dst = np.arange(out_size, dtype=np.float32)
    src = np.maximum((dst + np.float32(0.5)) * scale - np.float32(0.5), np.float32(0))
    lower = src.astype(np.int64)  # floor, since src >= 0
    upper = np.minimum(lower + 1, in_size - 1)
    upper_weight = src - lower.astype(np.float32)
    matrix = np.zeros((out_size, in_size), np.float32)
    np.add.at(matrix, (np.arange(out_size), lower), np.float32(1) - upper_weight)
    np.add.at(matrix, (np.arange(out_size), upper), upper_weight)
    return matrix


def preprocess(images_BHWC):
    """uint8 (B, H, W, 1 or 3) -> float32 (B, 299, 299, 3) in [-1, 1], as pytorch-fid's input.

    Grey images are repeated to RGB (as PIL's convert("RGB") in pytorch-fid's file loader).
    """
    x = images_BHWC.astype(jnp.float32) / 255.0
    if x.shape[-1] == 1:
        x = jnp.repeat(x, 3, axis=-1)
    if x.shape[1:3] != (INPUT_SIZE, INPUT_SIZE):
        rows = jnp.asarray(bilinear_matrix(x.shape[1]))
        cols = jnp.asarray(bilinear_matrix(x.shape[2]))
        x = jnp.einsum("oh,bhwc->bowc", rows, x, precision="highest")
        x = jnp.einsum("pw,bowc->bopc", cols, x, precision="highest")
    return 2.0 * x - 1.0
