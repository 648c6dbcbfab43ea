"""Convolutions rewritten for CPUs, each exactly the flax layer it replaces (XLA:CPU runs the
rewrite faster; benchmarks/conv_transpose.py and benchmarks/conv_same.py measure it).

``UpConv2x`` is an exact, drop-in replacement for

    flax.linen.ConvTranspose(features, kernel_size=(4, 4), strides=(2, 2),
                             padding="SAME", use_bias=use_bias)

(default ``transpose_kernel=False``) on NHWC inputs.

Why this is hand-written
------------------------
``nn.ConvTranspose`` lowers to ``lax.conv_transpose``, i.e. a stride-1
convolution over the *input-dilated* (lhs_dilation=2) image.  XLA:CPU computes
the gradients of lhs-dilated convolutions very slowly: for the DCGAN generator
(64x64x3, ngf=64, batch 64) forward+backward of the four transposed
convolutions took 3.6-3.9 s on a 2-core x86 CPU against 0.29 s in PyTorch.
The same operator written as stride-1 convolutions on the *undilated* input
(one per output phase) followed by depth-to-space computes exactly the same sums
(equal up to float rounding order) with ordinary convolutions whose gradients
XLA handles well: 13-15x faster forward+backward on that machine, see
``benchmarks/conv_transpose.py``.  Gradients come from plain autodiff: a custom
VJP (input gradient as one stride-2 convolution) was benchmarked and was not
measurably faster, and plain autodiff keeps forward-mode and higher-order
differentiation working.

Index mapping (per spatial axis; both axes are independent)
------------------------------------------------------------
For k=4, s=2, padding="SAME", ``lax.conv_transpose`` (jax 0.7 and 0.10) pads
the stride-2-dilated input ``z`` (``z[2i] = x[i]``, zeros elsewhere) by (2, 2)
and cross-correlates it with the *unflipped* kernel ``w`` (no flip because
``transpose_kernel=False``):

    y[o] = sum_{t=0..3} z[o + t - 2] * w[t],   o = 0 .. 2H-1.

Only taps with ``o + t`` even hit a real input sample, which gives, for
output phase ``a`` in {0, 1} and ``o = 2m + a``:

    y[2m + a] = sum_{j=0,1} x[m + a - 1 + j] * w[a + 2j]

i.e.  y[2m]   = x[m-1] * w[0] + x[m]   * w[2]
      y[2m+1] = x[m]   * w[1] + x[m+1] * w[3]

(``x`` is zero outside [0, H)).  So phase ``a`` is a stride-1 2-tap
cross-correlation of ``x`` with the sub-kernel ``w[a::2]`` and padding
``(1 - a, a)``; in 2-D, phase (ay, ax) uses ``kernel[ay::2, ax::2]`` with
padding ``((1-ay, ay), (1-ax, ax))`` and lands at ``y[2m+ay, 2n+ax]``.

Two equivalent ways of running it are implemented (``impl``):

* ``"phases"``: four 2x2 stride-1 convolutions (exact FLOP count), then
  interleave (depth-to-space).
* ``"fused"``: ONE 3x3 stride-1 convolution with padding (1, 1) producing
  ``4 * features`` channels.  Over the 3-tap window ``x[m-1 .. m+1]`` phase 0
  uses taps ``[w0, w2, 0]`` and phase 1 uses ``[0, w1, w3]``; the four 2x2
  sub-kernels are zero-padded to 3x3 and stacked along the output-feature axis
  in (ay, ax, features) order, followed by depth-to-space.  This costs 2.25x
  the FLOPs but is much faster when ``features`` is small (e.g. the RGB output
  layer) because the single conv has 4x more output channels.
* ``"auto"`` (default): ``"fused"`` if ``features <= 8`` else ``"phases"``
  (chosen from measurements on a 2-core x86 CPU).

(A single 2x2 conv with padding (1, 1) producing (H+1)x(W+1)x4C followed by
per-phase slicing is also exact, but its backward was ~30x slower on XLA:CPU,
slower even than nn.ConvTranspose.)
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax import lax
from flax import linen as nn
from flax.linen.dtypes import promote_dtype

__all__ = ["UpConv2x", "upconv2x", "DownConv2x", "downconv2x", "conv_same"]

Array = Any
Dtype = Any
Initializer = Callable[..., Array]

_DN = ("NHWC", "HWIO", "NHWC")
# ``impl="auto"`` uses the fused single conv for at most this many features.
FUSED_MAX_FEATURES = 8


def _depth_to_space(x):
    """(N, H, W, 4C) with channels ordered (ay, ax, c) -> (N, 2H, 2W, C), y[2m+ay, 2n+ax, c].

    The one interleave every layer here uses: UpConv2x's phases, its fused conv's output and
    DownConv2x's input gradient (the inverse of ``_space_to_depth``)."""
    n, h, w, c4 = x.shape
    c = c4 // 4
    x = x.reshape(n, h, w, 2, 2, c).transpose(0, 1, 3, 2, 4, 5)  # N, H, ay, W, ax, C
    return x.reshape(n, 2 * h, 2 * w, c)


def _upconv2x_phases(x, kernel, precision=None):
    phases = [  # in (ay, ax) order: phase (ay, ax) lands at y[2m+ay, 2n+ax]
        lax.conv_general_dilated(
            x,
            kernel[ay::2, ax::2],  # taps (ay, ay+2) x (ax, ax+2), unflipped
            window_strides=(1, 1),
            padding=((1 - ay, ay), (1 - ax, ax)),
            dimension_numbers=_DN,
            precision=precision,
        )
        for ay in range(2)
        for ax in range(2)
    ]
    return _depth_to_space(jnp.concatenate(phases, axis=-1))


def _fused_kernel(kernel):
    """(4, 4, Cin, C) -> (3, 3, Cin, 4*C), output channels ordered (ay, ax, c)."""
    cin, c = kernel.shape[2], kernel.shape[3]
    rows = []
    for ay in range(2):
        cols = []
        for ax in range(2):
            sub = kernel[ay::2, ax::2]  # (2, 2, Cin, C)
            # Phase a occupies window taps (a, a+1) of the 3-tap window x[m-1..m+1].
            cols.append(jnp.pad(sub, ((ay, 1 - ay), (ax, 1 - ax), (0, 0), (0, 0))))
        rows.append(jnp.stack(cols, axis=3))  # (3, 3, Cin, 2[ax], C)
    return jnp.stack(rows, axis=3).reshape(3, 3, cin, 4 * c)  # (.., 2[ay], 2[ax], C)


def _upconv2x_fused(x, kernel, precision=None):
    z = lax.conv_general_dilated(
        x,
        _fused_kernel(kernel),
        window_strides=(1, 1),
        padding=((1, 1), (1, 1)),
        dimension_numbers=_DN,
        precision=precision,
    )  # (N, H, W, 4C) with channels (ay, ax, c)
    return _depth_to_space(z)


def upconv2x(x, kernel, impl: str = "auto", precision=None):
    """Functional form: equals ``lax.conv_transpose(x, kernel, (2, 2), "SAME",
    dimension_numbers=("NHWC", "HWIO", "NHWC"))`` for a (4, 4, Cin, Cout) kernel.

    ``x`` must be (N, H, W, Cin); ``x`` and ``kernel`` must share a dtype.
    """
    if x.ndim != 4:
        raise ValueError(f"upconv2x expects NHWC input, got shape {x.shape}")
    if kernel.shape[:2] != (4, 4) or kernel.ndim != 4:
        raise ValueError(f"upconv2x expects a (4, 4, Cin, Cout) kernel, got {kernel.shape}")
    if kernel.shape[2] != x.shape[-1]:
        raise ValueError(f"kernel in-features {kernel.shape[2]} != input features {x.shape[-1]}")
    if impl == "auto":
        impl = "fused" if kernel.shape[-1] <= FUSED_MAX_FEATURES else "phases"
    if impl == "phases":
        return _upconv2x_phases(x, kernel, precision)
    if impl == "fused":
        return _upconv2x_fused(x, kernel, precision)
    raise ValueError(f"unknown impl {impl!r}; expected 'auto', 'phases' or 'fused'")


class _Conv4x4Stride2(nn.Module):
    """Fields, parameters and dtype handling shared by UpConv2x and DownConv2x: the same
    parameter tree, creation order and promotion as flax's nn.ConvTranspose / nn.Conv, so a
    model can swap one for the other; subclasses say which exact operator runs (`_op`)."""

    features: int
    use_bias: bool = False
    kernel_init: Initializer = nn.initializers.lecun_normal()
    bias_init: Initializer = nn.initializers.zeros_init()
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32
    precision: Any = None
    impl: str = "auto"

    @nn.compact
    def __call__(self, inputs: Array) -> Array:
        inputs = jnp.asarray(inputs)
        if inputs.ndim < 3:
            raise ValueError(f"{type(self).__name__} expects (..., H, W, C) input, "
                             f"got {inputs.shape}")
        batch_shape = inputs.shape[:-3]
        x = inputs.reshape((-1,) + inputs.shape[-3:])
        in_features = x.shape[-1]

        # Same creation order / names / shapes as flax's layer -> same values for the same rng.
        kernel = self.param(
            "kernel", self.kernel_init, (4, 4, in_features, self.features), self.param_dtype
        )
        bias = None
        if self.use_bias:
            bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype)
        x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)

        y = self._op(x, kernel, impl=self.impl, precision=self.precision)
        y = y.reshape(batch_shape + y.shape[1:])
        if bias is not None:
            y += jnp.reshape(bias, (1,) * (y.ndim - 1) + (-1,))
        return y


class UpConv2x(_Conv4x4Stride2):
    """2x upsampling transposed conv, exactly ``nn.ConvTranspose(features,
    (4, 4), strides=(2, 2), padding="SAME", use_bias=use_bias)``.

    Same parameter tree (``kernel``: (4, 4, Cin, features), ``bias``:
    (features,) if ``use_bias``), same default initialisers (lecun_normal /
    zeros) and same dtype promotion as flax.  Input (..., H, W, Cin) ->
    (..., 2H, 2W, features); extra leading batch dims are flattened, and an
    unbatched (H, W, Cin) input is accepted, like ``nn.ConvTranspose``.

    Attributes:
        features: number of output features.
        use_bias: add a bias (default False: GAN layers are usually followed by a
            normalisation).  NOTE nn.ConvTranspose defaults to True.
        kernel_init, bias_init: initialisers (flax's ConvTranspose defaults).
        dtype: computation dtype (None: inferred from input and params).
        param_dtype: dtype of the parameters.
        precision: passed to ``lax.conv_general_dilated``.
        impl: "auto" | "phases" | "fused" (all exact; see module docstring).
    """

    @staticmethod
    def _op(x, kernel, **kwargs):
        return upconv2x(x, kernel, **kwargs)


# ---------------------------------------------------------------------------------------------
# DownConv2x: nn.Conv(features, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)))
# ---------------------------------------------------------------------------------------------
#
# Index mapping (per spatial axis).  With ``x`` of even length H and ``xp = pad(x, (1, 1))``,
# the strided conv is
#
#     y[o] = sum_{t=0..3} xp[2o + t] * w[t],   o = 0 .. H/2 - 1.
#
# Write t = 2j + p (j, p in {0, 1}) and space-to-depth ``xp`` (length H + 2, even) into
# s[b, p] = xp[2b + p], b = 0 .. H/2:
#
#     y[o] = sum_{j=0,1} sum_{p=0,1} s[o + j, p] * w[2j + p]
#
# i.e. a stride-1, VALID, 2-tap cross-correlation of ``s`` (2 * Cin channels per axis) with the
# kernel ``K[j, p] = w[2j + p]``.  In 2-D, s2d channels are ordered (py, px, cin) and
# K[jy, jx, (py, px, cin), cout] = w[2jy + py, 2jx + px, cin, cout] (``_s2d_kernel``).
#
# Input gradient.  dxp = (adjoint of s2d)(ds) with ds[b, p] = sum_j dy[b - j] * w[2j + p]
# (dy zero outside [0, H/2)), a stride-1 "full" (padding (1, 1)) 2-tap correlation of dy with
# the spatially flipped, in/out-swapped kernel K, followed by depth-to-space and cropping the
# 1-pixel border that came from the padding.  No dilated convolution anywhere.
#
# Performance (2-core x86 CPU, DCGAN discriminator at batch 64; benchmarks/conv_transpose.py
# --down): the pure space-to-depth form (impl="s2d", plain autodiff) is exact but SLOWER than
# nn.Conv on XLA:CPU (0.47x with jax 0.10, 0.92x with jax 0.7): its stride-1 2x2 VALID conv and
# its kernel gradient run ~3-4x slower than XLA's own stride-2 conv and kernel gradient.  Only
# the input gradient wins (~2x at 32x32x64).  So the default keeps nn.Conv's forward and kernel
# gradient and replaces just the input gradient through a custom VJP: ~1.1-1.2x end to end.

_DOWN_IMPLS = ("auto", "fused", "phases", "s2d")


def _check_down_args(x, kernel, name="downconv2x"):
    if x.ndim != 4:
        raise ValueError(f"{name} expects NHWC input, got shape {x.shape}")
    if kernel.ndim != 4 or kernel.shape[:2] != (4, 4):
        raise ValueError(f"{name} expects a (4, 4, Cin, Cout) kernel, got {kernel.shape}")
    if kernel.shape[2] != x.shape[-1]:
        raise ValueError(f"kernel in-features {kernel.shape[2]} != input features {x.shape[-1]}")
    if x.shape[1] % 2 or x.shape[2] % 2:
        raise ValueError(f"{name} needs even H and W, got {x.shape[1:3]}")


def _space_to_depth(x):
    """(N, 2H, 2W, C) -> (N, H, W, 4C), channels ordered (py, px, c)."""
    n, h, w, c = x.shape
    x = x.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n, h // 2, w // 2, 4 * c)


def _s2d_kernel(kernel):
    """(4, 4, Cin, C) -> (2, 2, 4*Cin, C): K[jy, jx, (py, px, ci)] = w[2jy + py, 2jx + px, ci]."""
    cin, c = kernel.shape[2], kernel.shape[3]
    k = kernel.reshape(2, 2, 2, 2, cin, c).transpose(0, 2, 1, 3, 4, 5)  # jy, jx, py, px, ci, c
    return k.reshape(2, 2, 4 * cin, c)


def _strided_conv(x, kernel, precision=None):
    """Exactly what nn.Conv(k=4, s=2, padding=1) computes."""
    return lax.conv_general_dilated(
        x, kernel, window_strides=(2, 2), padding=((1, 1), (1, 1)),
        dimension_numbers=_DN, precision=precision,
    )


def _downconv2x_s2d(x, kernel, precision=None):
    s = _space_to_depth(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))))
    return lax.conv_general_dilated(
        s, _s2d_kernel(kernel), window_strides=(1, 1), padding="VALID",
        dimension_numbers=_DN, precision=precision,
    )


def _downconv2x_input_grad_fused(dy, kernel, precision=None):
    """d<y, dy>/dx as ONE stride-1 2x2 conv of dy (padding (1, 1), 4*Cin output channels) +
    depth-to-space + crop.  Computes (H/2 + 1)(W/2 + 1) output blocks for (H/2)(W/2) needed."""
    k = jnp.swapaxes(_s2d_kernel(kernel)[::-1, ::-1], 2, 3)  # (2, 2, C, 4*Cin), flipped
    ds = lax.conv_general_dilated(
        dy, k, window_strides=(1, 1), padding=((1, 1), (1, 1)),
        dimension_numbers=_DN, precision=precision,
    )  # (N, H/2 + 1, W/2 + 1, 4*Cin): s2d blocks of d(xp)
    return _depth_to_space(ds)[:, 1:-1, 1:-1]


def _downconv2x_input_grad_phases(dy, kernel, precision=None):
    """d<y, dy>/dx as four stride-1 2x2 phase convs + interleave (no wasted border).

    Per axis dx[2m] = dy[m] w1 + dy[m-1] w3 and dx[2m+1] = dy[m+1] w0 + dy[m] w2, i.e. the
    k4 s2 "SAME" transposed conv of dy with the flipped, in/out-swapped kernel: UpConv2x's
    phase form with ``kernel[::-1, ::-1]``.
    """
    return _upconv2x_phases(dy, jnp.swapaxes(kernel[::-1, ::-1], 2, 3), precision)


# impl="auto" uses the fused input gradient when the output is at least this big (H/2 and W/2):
# its wasted border (a (H/2+1)x(W/2+1) result for H/2 x W/2 blocks) is then small.
DOWN_FUSED_MIN_SIZE = 8


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _downconv2x_vjp(x, kernel, precision=None, dx_impl="fused"):
    return _strided_conv(x, kernel, precision)


def _downconv2x_vjp_fwd(x, kernel, precision, dx_impl):
    return _strided_conv(x, kernel, precision), (x, kernel)


def _downconv2x_vjp_bwd(precision, dx_impl, res, dy):
    x, kernel = res
    if dx_impl == "fused":
        dx = _downconv2x_input_grad_fused(dy, kernel, precision)
    else:
        dx = _downconv2x_input_grad_phases(dy, kernel, precision)
    # The kernel gradient is left to XLA (an undilated conv of x with dy: fast on XLA:CPU).
    (dk,) = jax.vjp(lambda k: _strided_conv(x, k, precision), kernel)[1](dy)
    return dx.astype(x.dtype), dk.astype(kernel.dtype)


_downconv2x_vjp.defvjp(_downconv2x_vjp_fwd, _downconv2x_vjp_bwd)


def downconv2x(x, kernel, impl: str = "auto", precision=None):
    """Functional form: equals ``lax.conv_general_dilated(x, kernel, (2, 2), ((1, 1), (1, 1)),
    dimension_numbers=("NHWC", "HWIO", "NHWC"))`` for a (4, 4, Cin, Cout) kernel and even H, W.

    ``impl``:
      * ``"s2d"``: pad, space-to-depth, ONE stride-1 2x2 conv; plain autodiff.
      * ``"fused"`` / ``"phases"``: the strided conv itself forward, with a custom VJP whose
        input gradient is one stride-1 2x2 conv + depth-to-space (``"fused"``) or four phase
        2x2 convs + interleave (``"phases"``); kernel gradient by XLA.  Reverse mode only
        (``jax.jvp`` is not supported through a custom VJP); grad-of-grad works.
      * ``"auto"`` (default): ``"fused"`` if H/2 and W/2 >= DOWN_FUSED_MIN_SIZE else
        ``"phases"``.
    """
    _check_down_args(x, kernel)
    if impl == "auto":
        impl = "fused" if min(x.shape[1], x.shape[2]) // 2 >= DOWN_FUSED_MIN_SIZE else "phases"
    if impl == "s2d":
        return _downconv2x_s2d(x, kernel, precision)
    if impl in ("fused", "phases"):
        return _downconv2x_vjp(x, kernel, precision, impl)
    raise ValueError(f"unknown impl {impl!r}; expected one of {_DOWN_IMPLS}")


class DownConv2x(_Conv4x4Stride2):
    """2x downsampling conv, exactly ``nn.Conv(features, (4, 4), strides=(2, 2),
    padding=((1, 1), (1, 1)), use_bias=use_bias)`` on inputs with even H and W.

    Same parameter tree (``kernel``: (4, 4, Cin, features), ``bias``: (features,) if
    ``use_bias``), same default initialisers (lecun_normal / zeros) and same dtype promotion as
    flax.  Input (..., H, W, Cin) -> (..., H/2, W/2, features); extra leading batch dims are
    flattened and an unbatched (H, W, Cin) input is accepted, like ``nn.Conv``.

    Attributes: as ``UpConv2x``; ``impl``: "auto" (default) | "fused" | "phases" | "s2d", all
    exact (see ``downconv2x``).
    """

    @staticmethod
    def _op(x, kernel, **kwargs):
        return downconv2x(x, kernel, **kwargs)


# ---------------------------------------------------------------------------------------------
# conv_same: stride-1 "SAME" convolutions (the resnet family's 3x3 and 1x1) with the kernel
# gradient as matrix products
# ---------------------------------------------------------------------------------------------
#
# Why hand-written: XLA:CPU computes the kernel gradient of some stride-1 3x3 convolutions much
# slower than the convolution itself, the large ones above all. Per tap (i, j) of a k x k kernel
# the gradient is one matrix product, dK[i, j] = X_ij^T dY, with X_ij the padded input shifted by
# (i, j) and flattened to (B*H*W, Cin). Measured on a 2-core EPYC, batch 64
# (benchmarks/conv_same.py), when this was written: 64x64, 64 -> 32 channels: XLA's kernel
# gradient 1,276 ms, the products 561 ms; 32x32, 128 -> 64: 4,096 against 360 ms. On Zen 4, jax 0.10
# (2026-12-07, shared machine, so ratios): 64x64x64 -> 32: 615 against 510 ms, 64x64x32 -> 32:
# 416 / 281, 32x32x128 -> 64: 367 / 286 -- but XLA's is the faster below about 128K input
# values per image (H*W*Cin): 32x32x64 -> 64: 105 / 196, 16x16x256 -> 128: 112 / 169, 8x8x256:
# 44 / 59, and at the 32-px recipes' widths 16-64 by 1.5-5x (benchmarks/conv_taps.py). So the
# products are used for inputs of at least MATMUL_MIN_INPUT values per image (whole resnet steps
# at 32 px, widths 16, got 14-22% faster with this limit, jax 0.7 and 0.10, fastgan_cpu.py's
# 11-13%; art.py's at 64 px did not change), for at least MATMUL_MIN_FEATURES output channels
# (the RGB output layer: the skinny products lose there) and on CPUs only (GPU and TPU
# convolution libraries compute this gradient well). Forward and input gradient stay XLA's:
# per-tap and stacked (im2col) products lost to them at the recipes' 3x3 shapes. 1x1
# convolutions as plain products were faster alone (about 1 ms of 1.5-4.6 ms) but left whole
# resnet steps unchanged, so they stay XLA's too (benchmarks/conv_taps.py).
MATMUL_MIN_FEATURES = 8
MATMUL_MIN_INPUT = 128 * 1024  # H * W * Cin of one image


def _uses_products(lhs, kernel, strides, padding, lhs_dilation, rhs_dilation,
                   dimension_numbers, feature_group_count):
    """Whether conv_same computes this convolution's kernel gradient as per-tap products."""
    k = kernel.shape[0]
    pads = padding if isinstance(padding, str) else tuple(map(tuple, padding))
    return (kernel.ndim == 4 and kernel.shape[1] == k and k % 2 == 1
            and kernel.shape[3] >= MATMUL_MIN_FEATURES
            and tuple(strides) == (1, 1) and feature_group_count == 1
            and all(d in (None, 1, (1, 1)) for d in (lhs_dilation, rhs_dilation))
            and pads in ("SAME", ((k // 2, k // 2),) * 2)
            and lax.conv_dimension_numbers((1, 1, 1, 1), kernel.shape, dimension_numbers)
            == lax.conv_dimension_numbers((1, 1, 1, 1), kernel.shape, _DN)
            and lhs.ndim == 4 and lhs.shape[1] * lhs.shape[2] * lhs.shape[3] >= MATMUL_MIN_INPUT)


def _conv_same(x, kernel, precision=None):
    pad = kernel.shape[0] // 2
    return lax.conv_general_dilated(x, kernel, (1, 1), ((pad, pad), (pad, pad)),
                                    dimension_numbers=_DN, precision=precision)


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_same_vjp(x, kernel, precision=None):
    return _conv_same(x, kernel, precision)


def _conv_same_vjp_fwd(x, kernel, precision):
    return _conv_same(x, kernel, precision), (x, kernel)


def _conv_same_vjp_bwd(precision, res, dy):
    x, kernel = res
    (dx,) = jax.vjp(lambda v: _conv_same(v, kernel, precision), x)[1](dy)
    k, pad = kernel.shape[0], kernel.shape[0] // 2
    _, h, w, cin = x.shape
    xp = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    dy_2d = dy.reshape(-1, dy.shape[-1])
    taps = [lax.dot_general(xp[:, i:i + h, j:j + w].reshape(-1, cin), dy_2d,
                            (((0,), (0,)), ((), ())), precision=precision,
                            preferred_element_type=jnp.float32)
            for i in range(k) for j in range(k)]
    dk = jnp.stack(taps).reshape(kernel.shape)
    return dx.astype(x.dtype), dk.astype(kernel.dtype)


_conv_same_vjp.defvjp(_conv_same_vjp_fwd, _conv_same_vjp_bwd)


def conv_same(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
              dimension_numbers=None, feature_group_count=1, precision=None, **kwargs):
    """``lax.conv_general_dilated`` with its signature (for ``nn.Conv(...,
    conv_general_dilated=conv_same)``): on a CPU, a stride-1 "SAME" NHWC convolution with an odd
    square kernel, at least MATMUL_MIN_FEATURES outputs and MATMUL_MIN_INPUT input values per
    image gets the matmul kernel gradient above; anything else, or any other backend, is
    ``lax.conv_general_dilated`` itself. The forward
    values are identical; the kernel gradient equals XLA's up to float rounding order. Reverse
    mode only on CPUs (a custom VJP; gradients of gradients work, as R1 needs)."""
    if kwargs or jax.default_backend() != "cpu" or not _uses_products(
            lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
            feature_group_count):
        return lax.conv_general_dilated(
            lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
            rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
            feature_group_count=feature_group_count, precision=precision, **kwargs)
    return _conv_same_vjp(lhs, rhs, precision)
