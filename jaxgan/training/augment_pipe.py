"""StyleGAN2-ADA's augmentation pipeline (Karras et al. 2020, "Training Generative Adversarial
Networks with Limited Data"), as NVlabs' `AugmentPipe` (stylegan2-ada-pytorch and stylegan3,
training/augment.py) runs it, in JAX: the pipeline R3GAN trains with (train.augment="ada").

Per image, in the official order: the geometric operations (x-flip, rotation by a multiple of 90
degrees, integer translation, isotropic scaling, rotation before and after an anisotropic
scaling, fractional translation) compose into one inverse 3x3 homogeneous matrix (output pixel
-> input pixel, in pixels about the image centre, x right and y down) applied once; the colour
operations (brightness, contrast, luma flip, hue rotation, saturation) compose into one 4x4
matrix on (r, g, b, 1) in the [-1, 1] image space, with AugmentPipe's luma axis (1, 1, 1) /
sqrt(3); then cutout. Each operation fires with probability p * its multiplier (the rotation
twice with 1 - sqrt(1 - p * multiplier), so that one of them fires with p * multiplier), and its
parameters are AugmentPipe's (strengths as its defaults).

What differs from the official code, and why:
- The geometric matrix is applied by bilinear sampling at the image's own resolution, where
  AugmentPipe upsamples 2x with the 12-tap sym6 wavelet filter, grid-samples bilinearly and
  downsamples with it again. The supersampling is an anti-aliasing refinement: with it, rotated
  and shrunk images alias less, and images whose matrix is the identity pass through the two
  filters (nearly, not exactly, unchanged). Without it the pipeline is a gather of four pixels
  per output pixel, cheap on CPUs (the supersampled one moves 4x the pixels through two 12-tap
  convolutions per image); images no operation touches come out bit-identical.
- Sampling reads the input reflected at its border (numpy's 'reflect': the edge pixel once) up to
  side - 1 pixels beyond it and zero further out: what AugmentPipe's reflect padding (a batch-wide
  margin that covers every transformed corner, capped at side - 1) followed by grid_sample's zero
  padding reads, pixel for pixel.
- The 90-degree rotations and the flip take their matrices' entries from exact tables (0, +-1)
  rather than cos/sin of float32 multiples of pi/2 (cos(float32(pi/2)) = -4.4e-8): they are
  AugmentPipe's "pixel blitting", exact permutations in the original TensorFlow implementation,
  and here too (with integer translations) they move pixels without interpolating them.
- The random numbers are JAX's (`draw`), drawn for the global batch outside the per-device code
  as jaxgan's other augmentations are, so one device and eight augment alike; every operation's
  numbers are drawn whatever its multiplier, and hue and saturation (skipped on 1-channel images,
  as AugmentPipe skips them) draw theirs too.
- AugmentPipe's image-space filtering and additive noise are left out: neither R3GAN nor
  StyleGAN2-ADA's default pipeline ('bgc') uses them.

Written by hand (array arithmetic and a per-image gather; differentiable with respect to the
images, twice, as R1 and R2 through it need): neither optax, flax nor dm_pix has this pipeline.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

# Every operation's random numbers, in AugmentPipe's order: (name, distribution of its values,
# how many per image). Each also draws one uniform number that decides whether it fires.
DRAWS = (
    ("xflip", "uniform", 1), ("rotate90", "uniform", 1), ("xint", "uniform", 2),
    ("scale", "normal", 1), ("pre_rotate", "uniform", 1), ("aniso", "normal", 1),
    ("post_rotate", "uniform", 1), ("xfrac", "normal", 2),
    ("brightness", "normal", 1), ("contrast", "normal", 1), ("lumaflip", "uniform", 1),
    ("hue", "uniform", 1), ("saturation", "normal", 1), ("cutout", "uniform", 2),
)
GEOMETRIC = ("xflip", "rotate90", "xint", "scale", "pre_rotate", "aniso", "post_rotate", "xfrac")
COLOUR = ("brightness", "contrast", "lumaflip", "hue", "saturation")


@dataclasses.dataclass(frozen=True)
class Pipe:
    """AugmentPipe's arguments: a probability multiplier per operation (0: off) and the
    strengths, with AugmentPipe's defaults."""
    xflip: float = 0.0
    rotate90: float = 0.0
    xint: float = 0.0
    scale: float = 0.0
    rotate: float = 0.0
    aniso: float = 0.0
    xfrac: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    lumaflip: float = 0.0
    hue: float = 0.0
    saturation: float = 0.0
    cutout: float = 0.0
    xint_max: float = 0.125       # integer translation's range, a fraction of the side
    scale_std: float = 0.2        # log2 std of isotropic scaling
    rotate_max: float = 1.0       # rotation's range, 1 = the full circle
    aniso_std: float = 0.2        # log2 std of anisotropic scaling
    xfrac_std: float = 0.125      # std of fractional translation, a fraction of the side
    brightness_std: float = 0.2
    contrast_std: float = 0.5     # log2 std
    hue_max: float = 1.0          # hue rotation's range, 1 = the full circle
    saturation_std: float = 1.0   # log2 std
    cutout_size: float = 0.5      # the cutout rectangle's side, a fraction of the image's

    def multiplier(self, name: str) -> float:
        return getattr(self, "rotate" if name.endswith("_rotate") else name)


_BGC = dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1)
PIPES = {
    # R3GAN's (brownvc/R3GAN train.py): 'bgc' with the colour operations at half probability,
    # plus cutout.
    "ada": Pipe(**_BGC, brightness=0.5, contrast=0.5, lumaflip=0.5, hue=0.5, saturation=0.5,
                cutout=1),
    # StyleGAN2-ADA's and StyleGAN3's default (their train.py, --aug=ada: augpipe 'bgc').
    "bgc": Pipe(**_BGC, brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1),
}


def draw(key, shape) -> dict:
    """Every operation's numbers for a batch of `shape` (its leading axes, the batch axis last):
    {name: {"apply": U[0, 1) of shape `shape`, "value": (*shape, count)}}."""
    keys = jax.random.split(key, 2 * len(DRAWS))
    numbers = {}
    for i, (name, distribution, count) in enumerate(DRAWS):
        sample = jax.random.uniform if distribution == "uniform" else jax.random.normal
        numbers[name] = {"apply": jax.random.uniform(keys[2 * i], shape),
                         "value": sample(keys[2 * i + 1], (*shape, count))}
    return numbers


# --- The 3x3 and 4x4 matrices, one per image: (B,) parameters -> (B, n, n). ---

def _matrices(rows):
    """[[entry, ...], ...] of (B,) arrays or numbers -> (B, n, n)."""
    batch = jnp.broadcast_shapes(*(jnp.shape(e) for row in rows for e in row))
    return jnp.stack([jnp.stack([jnp.broadcast_to(jnp.asarray(e, jnp.float32), batch)
                                 for e in row], -1) for row in rows], -2)


def translate2d(tx, ty):
    return _matrices([[1, 0, tx], [0, 1, ty], [0, 0, 1]])


def scale2d(sx, sy):
    return _matrices([[sx, 0, 0], [0, sy, 0], [0, 0, 1]])


def rotate2d(cos, sin):
    return _matrices([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]])


def translate3d(t):
    return _matrices([[1, 0, 0, t], [0, 1, 0, t], [0, 0, 1, t], [0, 0, 0, 1]])


def scale3d(s):
    return _matrices([[s, 0, 0, 0], [0, s, 0, 0], [0, 0, s, 0], [0, 0, 0, 1]])


# AugmentPipe's v, rounded to float32 before its outer product as AugmentPipe's (numpy
# constants: a module-level JAX array would start JAX's backend on import)
LUMA_AXIS = (np.array([1.0, 1.0, 1.0, 0.0]) / np.sqrt(3.0)).astype(np.float32)
LUMA_OUTER = np.outer(LUMA_AXIS, LUMA_AXIS)


def rotate3d_about_luma(theta):
    """AugmentPipe's rotate3d(v, theta): Rodrigues' rotation about the luma axis."""
    (vx, vy, vz, _), s, c = LUMA_AXIS, jnp.sin(theta), jnp.cos(theta)
    cc = 1 - c
    return _matrices([[vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s, 0],
                      [vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s, 0],
                      [vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c, 0],
                      [0, 0, 0, 1]])


def _matmul(a, b):
    """(B, n, n) @ (B, n, n) as elementwise products and a sum: exact float32 on every backend
    (no TF32 or bfloat16 passes), and XLA:CPU compiles it in a fraction of a batched dot's time."""
    return (a[..., :, :, None] * b[..., None, :, :]).sum(-2)


# cos and sin of k * 90 degrees, k = 0..3, exactly (see the module docstring)
QUARTER_COS = np.array([1.0, 0.0, -1.0, 0.0], np.float32)
QUARTER_SIN = np.array([0.0, 1.0, 0.0, -1.0], np.float32)


class _Firing:
    """Which operations fire for each image (numbers[name]["apply"] < p * multiplier) and their
    parameters where they do."""
    def __init__(self, numbers, pipe: Pipe, p):
        self.numbers, self.pipe, self.p = numbers, pipe, p

    def on(self, name: str) -> bool:
        """Whether the operation is in the pipeline at all (AugmentPipe's `if self.x > 0`)."""
        return self.pipe.multiplier(name) > 0

    def chosen(self, name: str):
        """(B,) booleans."""
        probability = self.pipe.multiplier(name) * self.p
        if name.endswith("_rotate"):  # twice 1 - sqrt(1 - p): P(pre or post) = p * rotate
            probability = 1 - jnp.sqrt(jnp.clip(1 - probability, 0.0, 1.0))
        return self.numbers[name]["apply"] < probability

    def where(self, name: str, parameter, identity):
        """`parameter` (B, ...) where the operation fires, `identity` elsewhere."""
        chosen = self.chosen(name).reshape(-1, *[1] * (parameter.ndim - 1))
        return jnp.where(chosen, parameter, identity)

    def values(self, name: str):
        return self.numbers[name]["value"]

    def uniform_index(self, name: str, count: int):
        """floor(u * count) where it fires, 0 elsewhere: (B,)."""
        return self.where(name, jnp.floor(self.values(name)[:, 0] * count), 0.0)

    def log_normal(self, name: str, std: float):
        """2^(n * std) where it fires, 1 elsewhere: (B,)."""
        return self.where(name, jnp.exp2(self.values(name)[:, 0] * std), 1.0)

    def angle(self, name: str, most: float):
        """(2u - 1) * pi * most where it fires, 0 elsewhere: (B,)."""
        return self.where(name, (self.values(name)[:, 0] * 2 - 1) * math.pi * most, 0.0)


def geometric_matrix(numbers, pipe: Pipe, p, height: int, width: int):
    """AugmentPipe's G_inv: (B, 3, 3), output pixel -> input pixel about the image centre, the
    product of each operation's inverse in AugmentPipe's order."""
    f = _Firing(numbers, pipe, p)
    batch = numbers["xflip"]["apply"].shape[0]
    g = jnp.broadcast_to(jnp.eye(3), (batch, 3, 3))
    if f.on("xflip"):  # scale2d_inv(1 - 2i, 1)
        i = f.uniform_index("xflip", 2)
        g = _matmul(g, scale2d(1 / (1 - 2 * i), 1))
    if f.on("rotate90"):  # rotate2d_inv(-pi/2 i) = rotate2d(pi/2 i)
        i = f.uniform_index("rotate90", 4).astype(jnp.int32)
        g = _matmul(g, rotate2d(jnp.asarray(QUARTER_COS)[i], jnp.asarray(QUARTER_SIN)[i]))
    if f.on("xint"):  # translate2d_inv(round(tx W), round(ty H))
        t = f.where("xint", (f.values("xint") * 2 - 1) * pipe.xint_max, 0.0)
        g = _matmul(g, translate2d(-jnp.round(t[:, 0] * width), -jnp.round(t[:, 1] * height)))
    if f.on("scale"):  # scale2d_inv(s, s)
        s = f.log_normal("scale", pipe.scale_std)
        g = _matmul(g, scale2d(1 / s, 1 / s))
    if f.on("pre_rotate"):  # rotate2d_inv(-theta) = rotate2d(theta), before the anisotropy
        theta = f.angle("pre_rotate", pipe.rotate_max)
        g = _matmul(g, rotate2d(jnp.cos(theta), jnp.sin(theta)))
    if f.on("aniso"):  # scale2d_inv(s, 1 / s)
        s = f.log_normal("aniso", pipe.aniso_std)
        g = _matmul(g, scale2d(1 / s, 1 / (1 / s)))
    if f.on("post_rotate"):  # and after it
        theta = f.angle("post_rotate", pipe.rotate_max)
        g = _matmul(g, rotate2d(jnp.cos(theta), jnp.sin(theta)))
    if f.on("xfrac"):  # translate2d_inv(tx W, ty H)
        t = f.where("xfrac", f.values("xfrac") * pipe.xfrac_std, 0.0)
        g = _matmul(g, translate2d(-(t[:, 0] * width), -(t[:, 1] * height)))
    return g


def colour_matrix(numbers, pipe: Pipe, p, channels: int):
    """AugmentPipe's C: (B, 4, 4) on (r, g, b, 1), each operation's matrix applied after the
    ones before it (C = M @ C)."""
    f = _Firing(numbers, pipe, p)
    batch = numbers["brightness"]["apply"].shape[0]
    eye = np.eye(4, dtype=np.float32)
    c = jnp.broadcast_to(eye, (batch, 4, 4))
    if f.on("brightness"):
        b = f.where("brightness", f.values("brightness")[:, 0] * pipe.brightness_std, 0.0)
        c = _matmul(translate3d(b), c)
    if f.on("contrast"):
        c = _matmul(scale3d(f.log_normal("contrast", pipe.contrast_std)), c)
    if f.on("lumaflip"):  # Householder reflection of the luma axis
        i = f.uniform_index("lumaflip", 2)
        c = _matmul(eye - 2 * LUMA_OUTER * i[:, None, None], c)
    if f.on("hue") and channels > 1:  # rotation about the luma axis
        c = _matmul(rotate3d_about_luma(f.angle("hue", pipe.hue_max)), c)
    if f.on("saturation") and channels > 1:
        s = f.log_normal("saturation", pipe.saturation_std)[:, None, None]
        c = _matmul(LUMA_OUTER + (eye - LUMA_OUTER) * s, c)
    return c


def apply_colour(x_BHWC, c_B44):
    """(r, g, b) -> C[:3, :3] (r, g, b) + C[:3, 3]; a 1-channel image, as AugmentPipe, by the
    mean of C's first three rows: x * (their sum over r, g, b) + their offset. Elementwise
    products and sums (exact float32 on every backend)."""
    if x_BHWC.shape[-1] not in (1, 3):
        raise ValueError(f"the colour operations take 1 or 3 channels, not {x_BHWC.shape[-1]}")
    if x_BHWC.shape[-1] == 3:
        linear = c_B44[:, None, None, :3, :3] * x_BHWC[:, :, :, None, :]
        return linear.sum(-1) + c_B44[:, None, None, :3, 3]
    grey = c_B44[:, :3, :].mean(axis=1)
    return x_BHWC * grey[:, None, None, :3].sum(-1, keepdims=True) + grey[:, None, None, 3:]


def cutout(x_BHWC, numbers, pipe: Pipe, p):
    """AugmentPipe's cutout: zero the pixels whose centres lie within cutout_size / 2 of a
    uniform centre (x, y) along both axes (size 0 where it does not fire)."""
    f = _Firing(numbers, pipe, p)
    _, height, width, _ = x_BHWC.shape
    size = f.where("cutout", jnp.full(f.chosen("cutout").shape, pipe.cutout_size), 0.0)
    centre = f.values("cutout")
    cols = (jnp.arange(width) + 0.5) / width
    rows = (jnp.arange(height) + 0.5) / height
    keep_x = jnp.abs(cols[None, :] - centre[:, 0:1]) >= size[:, None] / 2   # (B, W)
    keep_y = jnp.abs(rows[None, :] - centre[:, 1:2]) >= size[:, None] / 2   # (B, H)
    keep = keep_x[:, None, :] | keep_y[:, :, None]
    return x_BHWC * keep[..., None].astype(x_BHWC.dtype)


def _reflect(index, size: int):
    """numpy's 'reflect' index (the edge once) and whether it lies within side - 1 pixels of the
    image (AugmentPipe's reflect padding reaches no further)."""
    inside = (index >= -(size - 1)) & (index <= 2 * (size - 1))
    index = jnp.abs(index)
    index = jnp.where(index > size - 1, 2 * (size - 1) - index, index)
    return jnp.clip(index, 0, size - 1), inside


def sample_bilinear(x_BHWC, x_in_BHW, y_in_BHW):
    """x at the (column, row) points, bilinearly, read with _reflect: (B, H, W, C). The four
    neighbours are gathered from the flattened image (one gather per neighbour for the batch)."""
    batch, height, width, channels = x_BHWC.shape
    flat = x_BHWC.reshape(batch, height * width, channels)
    col0, row0 = jnp.floor(x_in_BHW), jnp.floor(y_in_BHW)
    fx, fy = x_in_BHW - col0, y_in_BHW - row0
    col0, row0 = col0.astype(jnp.int32), row0.astype(jnp.int32)
    out = jnp.zeros((batch, height * width, channels), x_BHWC.dtype)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        row, row_inside = _reflect(row0 + dy, height)
        for dx, wx in ((0, 1 - fx), (1, fx)):
            col, col_inside = _reflect(col0 + dx, width)
            weight = jnp.where(row_inside & col_inside, wy * wx, 0.0).reshape(batch, -1, 1)
            index = (row * width + col).reshape(batch, -1, 1)
            out = out + weight * jnp.take_along_axis(flat, index, axis=1)
    return out.reshape(batch, height, width, channels)


def apply_geometry(x_BHWC, g_B33):
    """Each image resampled through its G_inv (see the module docstring for what differs)."""
    _, height, width, _ = x_BHWC.shape
    cx, cy = (width - 1) / 2, (height - 1) / 2
    cols = (jnp.arange(width, dtype=jnp.float32) - cx)[None, None, :]
    rows = (jnp.arange(height, dtype=jnp.float32) - cy)[None, :, None]
    g = g_B33[:, :, :, None, None]  # (B, 3, 3, 1, 1) against (1, H, W)
    x_in = g[:, 0, 0] * cols + g[:, 0, 1] * rows + g[:, 0, 2] + cx
    y_in = g[:, 1, 0] * cols + g[:, 1, 1] * rows + g[:, 1, 2] + cy
    return sample_bilinear(x_BHWC, x_in, y_in)


def _any_fires(f: _Firing, names):
    fired = [f.chosen(name) for name in names if f.on(name)]
    return jnp.any(jnp.stack(fired), axis=0) if fired else None


def apply(x_BHWC, numbers, pipe: Pipe, p):
    """The pipeline on a batch (this device's part of `draw`'s numbers): geometry, colour,
    cutout, each stage only on the images where one of its operations fires (the others pass
    through bit-identical; p = 0: the batch itself)."""
    if isinstance(p, (int, float)) and p == 0:
        return x_BHWC
    f = _Firing(numbers, pipe, p)
    _, height, width, channels = x_BHWC.shape
    fires = _any_fires(f, GEOMETRIC)
    if fires is not None:
        moved = apply_geometry(x_BHWC, geometric_matrix(numbers, pipe, p, height, width))
        x_BHWC = jnp.where(fires[:, None, None, None], moved, x_BHWC)
    colours = [name for name in COLOUR if channels > 1 or name not in ("hue", "saturation")]
    fires = _any_fires(f, colours)
    if fires is not None:
        coloured = apply_colour(x_BHWC, colour_matrix(numbers, pipe, p, channels))
        x_BHWC = jnp.where(fires[:, None, None, None], coloured, x_BHWC)
    if f.on("cutout"):
        x_BHWC = cutout(x_BHWC, numbers, pipe, p)
    return x_BHWC
