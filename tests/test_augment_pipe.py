"""StyleGAN2-ADA's augmentation pipeline (jaxgan.training.augment_pipe, train.augment='ada'):
each operation against the transform it is, the matrices composed in AugmentPipe's order, p = 0
and untouched images bit-identical, gradients through it, the policy's validation, and training
with it: one step on 1 device and on 8, and an exact resume.

Tolerances are rounding bounds from float32's unit roundoff u = 2^-24: a float operation's
result is within u (relative) of the exact one, so a value computed with n roundings on terms at
most M in size is within n * u * M of it (Higham, eq. 3.5)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_config
from helpers import assert_steps_agree, run_step

from jaxgan import config as config_lib
from jaxgan.errors import UserError
from jaxgan.training import augment, augment_pipe
from jaxgan.training.augment_pipe import PIPES

U = float(np.finfo(np.float32).eps) / 2
ADA = PIPES["ada"]
SIDE = 16


def numbers_for(batch=1, **values):
    """Numbers that fire exactly the operations named (apply 0 < p * multiplier for any p > 0),
    with these values; every other operation is off (apply 1 >= p * multiplier for p <= 1)."""
    numbers = {}
    for name, _, count in augment_pipe.DRAWS:
        value = np.broadcast_to(np.asarray(values.get(name, 0.0), np.float32), (batch, count))
        numbers[name] = {"apply": jnp.full((batch,), 0.0 if name in values else 1.0),
                         "value": jnp.asarray(value)}
    return numbers


def images(channels=3, batch=1, seed=0):
    return jax.random.uniform(jax.random.key(seed), (batch, SIDE, SIDE, channels), minval=-1,
                              maxval=1)


# one program per image shape, pipeline and p: the numbers (which operations fire, their values)
# are its inputs, so the tests share it instead of running op by op
_apply = jax.jit(augment_pipe.apply, static_argnums=(2, 3))


def run(x, pipe=ADA, p=1.0, **values):
    return _apply(x, numbers_for(x.shape[0], **values), pipe, p)


# --- the pixel blits: exact permutations of the pixels ---

def test_xflip_mirrors_the_columns():
    x = images()
    np.testing.assert_array_equal(run(x, xflip=0.75), x[:, :, ::-1])  # floor(0.75 * 2) = 1
    np.testing.assert_array_equal(run(x, xflip=0.25), x)               # i = 0: no flip


@pytest.mark.parametrize("k", range(4))
def test_rotate90_is_rot90(k):
    x = images()
    np.testing.assert_array_equal(run(x, rotate90=(k + 0.5) / 4), jnp.rot90(x, k, axes=(1, 2)))


def shifted(x, dx, dy):
    """x moved right by dx, down by dy, the uncovered pixels read reflected (numpy 'reflect')."""
    m = 4
    padded = np.pad(np.asarray(x), ((0, 0), (m, m), (m, m), (0, 0)), mode="reflect")
    return padded[:, m - dy:m - dy + SIDE, m - dx:m - dx + SIDE]


def test_integer_translation_is_a_shift_with_reflect_fill():
    # t = (2u - 1) * 0.125: u = 0.75 -> 1/16 of the side (1 pixel right), u = 0 -> -2 pixels.
    x = images()
    np.testing.assert_array_equal(run(x, xint=[0.75, 0.0]), shifted(x, 1, -2))
    # u = 1 (the largest): 2 pixels, AugmentPipe's xint_max of 1/8
    np.testing.assert_array_equal(run(x, xint=[1.0, 1.0]), shifted(x, 2, 2))


def test_blits_compose_in_augment_pipes_order():
    # G_inv = flip @ translate_inv: the image is flipped, then the flipped image shifted (the
    # other order would shift it the other way).
    x = images()
    np.testing.assert_array_equal(run(x, xflip=0.75, xint=[0.75, 0.5]),
                                  shifted(x[:, :, ::-1], 1, 0))


# --- the general geometric transformations: bilinear sampling of the inverse map ---

def rotation_bound(x, theta32):
    """How far the general rotation by theta32 (float32, near pi/2) may land from rot90.
    Its sampling point is off the exact one by |cos theta32| |x| + |1 - sin theta32| |y| plus
    the roundings of cos and sin (u each) and of the point's three products and three sums (u
    each, on terms at most the side): delta <= (|cos| + |1 - sin| + 2u) side / 2 + 6 u side.
    Bilinear interpolation moves by at most delta times the largest difference of neighbouring
    pixels along each axis, and rounds its four products and four sums (u each, terms at most
    max|x|)."""
    theta = np.float64(theta32)
    delta = (abs(np.cos(theta)) + abs(1 - np.sin(theta)) + 2 * U) * SIDE / 2 + 6 * U * SIDE
    step = 2 * float(jnp.abs(x).max())
    return 2 * delta * step + 8 * U * float(jnp.abs(x).max())


def test_rotation_by_a_quarter_turn_through_the_general_path_is_rot90():
    x = images()
    # theta = (2u - 1) pi: u = 0.75 -> pi / 2 (in float32)
    theta32 = np.float32(0.5) * np.float32(np.pi)
    bound = rotation_bound(x, theta32)
    assert bound < 1e-4  # a real check: the pixels differ by up to 2
    for name in ("pre_rotate", "post_rotate"):
        np.testing.assert_allclose(run(x, **{name: 0.75}), jnp.rot90(x, 1, axes=(1, 2)),
                                   rtol=0, atol=bound)


def test_isotropic_scale_of_one_is_the_identity():
    x = images()
    np.testing.assert_array_equal(run(x, scale=0.0), x)  # 2^(0 * 0.2) = 1
    np.testing.assert_array_equal(run(x, aniso=0.0), x)
    np.testing.assert_array_equal(run(x, xfrac=[0.0, 0.0]), x)


def ramp(a=0.05, b=-0.03, c=0.1):
    """An image affine in (column, row): bilinear interpolation reproduces it exactly."""
    rows, cols = np.meshgrid(np.arange(SIDE), np.arange(SIDE), indexing="ij")
    return (a * cols + b * rows + c)[None, :, :, None].astype(np.float32), (a, b, c)


def inverse_map(name, value):
    """The operation's G_inv from AugmentPipe's formulas, in float64 from the float32 value."""
    v = np.atleast_1d(np.asarray(value, np.float32))
    if name == "scale":
        s = float(np.exp2(v[0] * np.float32(0.2)))
        return np.diag([1 / s, 1 / s, 1.0])
    if name == "aniso":
        s = float(np.exp2(v[0] * np.float32(0.2)))
        return np.diag([1 / s, s, 1.0])
    if name == "xfrac":
        t = v * np.float32(0.125)
        return np.array([[1, 0, -t[0] * SIDE], [0, 1, -t[1] * SIDE], [0, 0, 1.0]])
    theta = float((v[0] * 2 - 1) * np.float32(np.pi))
    return np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0],
                     [0, 0, 1]])


@pytest.mark.parametrize("name, value", [("scale", 5.0), ("scale", -2.0), ("aniso", 1.5),
                                         ("xfrac", [0.3, -0.7]), ("pre_rotate", 0.6),
                                         ("post_rotate", 0.1)])
def test_general_transforms_resample_an_affine_image_exactly(name, value):
    """Where the sampled point lies inside the image, the output is the affine image at the
    point G_inv maps each pixel to (bilinear interpolation is exact on affine images)."""
    x, (a, b, c) = ramp()
    out = np.asarray(run(jnp.asarray(x), **{name: value}))[0, :, :, 0]
    g = inverse_map(name, value)
    centre = (SIDE - 1) / 2
    rows, cols = np.meshgrid(np.arange(SIDE) - centre, np.arange(SIDE) - centre, indexing="ij")
    x_in = g[0, 0] * cols + g[0, 1] * rows + g[0, 2] + centre
    y_in = g[1, 0] * cols + g[1, 1] * rows + g[1, 2] + centre
    inside = (x_in >= 0) & (x_in <= SIDE - 1) & (y_in >= 0) & (y_in <= SIDE - 1)
    assert inside.sum() >= SIDE * SIDE // 4
    # The point: at most 16 roundings (the parameter's exp2, cos or sin 2u, 1/s and the entry's
    # products 3u, the matrix product 3u, the point's two products and three sums 5u, the
    # reference's own 3u) on terms up to 4 * side (entries at most 2^0.4, coordinates at most
    # side / 2, the centre); times the image's slope, plus the interpolation's roundings (its
    # weights 2u, four products and sums 4u; 8u) on values up to max|x|.
    slope = abs(a) + abs(b)
    bound = 16 * U * 4 * SIDE * slope + 8 * U * float(np.abs(x).max())
    np.testing.assert_allclose(out[inside], (a * x_in + b * y_in + c)[inside], rtol=0,
                               atol=bound)


def test_the_geometric_matrix_is_augment_pipes_product():
    """G_inv = xflip @ rotate90 @ xint @ scale @ rotate @ aniso @ rotate @ xfrac (inverses), each
    as AugmentPipe builds it, against float64 from the same float32 numbers."""
    values = {"xflip": 0.75, "rotate90": 0.3, "xint": [0.8, 0.1], "scale": 0.7,
              "pre_rotate": 0.2, "aniso": -1.1, "post_rotate": 0.9, "xfrac": [0.4, -0.2]}
    g = np.asarray(augment_pipe.geometric_matrix(numbers_for(**values), ADA, 1.0, SIDE,
                                                 SIDE))[0]
    xint = (np.asarray(values["xint"], np.float32) * 2 - 1) * np.float32(0.125)
    factors = [np.diag([-1.0, 1, 1]), np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]]),
               np.array([[1, 0, -np.round(xint[0] * SIDE)], [0, 1, -np.round(xint[1] * SIDE)],
                         [0, 0, 1]])]
    factors += [inverse_map(name, values[name])
                for name in ("scale", "pre_rotate", "aniso", "post_rotate", "xfrac")]
    expected, sizes = np.eye(3), np.eye(3)
    for factor in factors:
        expected, sizes = expected @ factor, sizes @ np.abs(factor)
    # Each factor's float32 entries are within 5u of their size (the parameter: exp2, cos or
    # sin, 2u; 1/s and the products building the entry, 3u more); each of the eight products
    # rounds its 3-term sums (3u). Errors add along the chain, relative to the product of the
    # factors' sizes: 8 * (5 + 3) u |M1| ... |M8| elementwise.
    np.testing.assert_array_less(np.abs(g - expected), 64 * U * sizes + 1e-30)


# --- colour: one 4x4 matrix on (r, g, b, 1) in [-1, 1] ---

def colour_bound(x, matrices=1):
    """A colour result's rounding against a reference computed in float32 from x: each of the
    `matrices` composed 4x4 matrices' entries (at most 2 in size) carries at most 8 roundings
    (the float32 luma axis and its products 3u, cos or exp2 2u, the entry's own arithmetic 3u);
    applying the matrix to (r, g, b, 1) rounds three products and three sums, and the reference
    a few more (6u each side), on terms at most 3 max|x| + 1."""
    return (8 * matrices + 12) * U * (3 * float(jnp.abs(x).max()) + 1)


def test_brightness_adds_b_and_contrast_scales_about_mid_grey():
    x = images()
    b = np.float32(1.5) * np.float32(0.2)  # b = n * brightness_std
    # exactly: the identity's 1 x and zeros, then + b (one rounding, as x + b's)
    np.testing.assert_array_equal(run(x, brightness=1.5), x + b)
    # contrast c = 2^(n * 0.5): n = 2 -> 2, AugmentPipe's scale3d (about 0, mid-grey in [-1, 1])
    np.testing.assert_array_equal(run(x, contrast=2.0), 2 * x)
    # composed as AugmentPipe: C = contrast @ brightness, so c (x + b), not c x + b
    np.testing.assert_array_equal(run(x, brightness=1.5, contrast=2.0), 2 * (x + b))


def test_luma_flip_reflects_the_grey_axis_and_twice_is_the_identity():
    x = images()
    flipped = run(x, lumaflip=0.75)
    mean = x.mean(axis=-1, keepdims=True)  # (v . x) v = the grey mean in every channel
    np.testing.assert_allclose(flipped, x - 2 * mean, rtol=0, atol=colour_bound(x))
    # the second flip's own rounding, and the first's carried through the reflection (its rows'
    # absolute sums are 1/3 + 2 * 2/3 = 5/3)
    np.testing.assert_allclose(run(flipped, lumaflip=0.75), x, rtol=0,
                               atol=colour_bound(flipped) + 5 / 3 * colour_bound(x))
    np.testing.assert_array_equal(run(x, lumaflip=0.25), x)  # i = 0: no flip


def hue_angle(u):
    return float((np.float32(u) * 2 - 1) * np.float32(np.pi))


def test_hue_rotation_a_third_of_a_turn_cycles_the_channels_and_a_full_turn_is_identity():
    x = images()
    # theta = (2u - 1) pi: u = 5/6 -> 2 pi / 3, the rotation about (1, 1, 1) taking red to green
    third = run(x, hue=5 / 6)
    # the float32 angle is off 2 pi / 3 by |theta - 2 pi / 3|: the rotation moves by that much
    # (its derivative has norm 1) times |x| (at most sqrt(3) max|x|)
    slack = abs(hue_angle(5 / 6) - 2 * np.pi / 3) * np.sqrt(3) * float(jnp.abs(x).max())
    np.testing.assert_allclose(third, jnp.roll(x, 1, axis=-1), rtol=0,
                               atol=colour_bound(x) + slack)
    # u = 1 (pi), twice: a full turn
    half = run(x, hue=1.0)
    slack = 2 * abs(hue_angle(1.0) - np.pi) * np.sqrt(3) * float(jnp.abs(x).max())
    # (the half turn is 2 v v^T - I: rows' absolute sums 5/3 carry the first one's error)
    np.testing.assert_allclose(run(half, hue=1.0), x, rtol=0,
                               atol=colour_bound(half) + 5 / 3 * colour_bound(x) + slack)


def test_saturation_zero_is_the_grey_mean_and_colour_keeps_grey_images_grey():
    x = images()
    grey = run(x, saturation=-np.inf)  # 2^(-inf) = 0: only the luma component stays
    np.testing.assert_allclose(grey, jnp.broadcast_to(x.mean(-1, keepdims=True), x.shape),
                               rtol=0, atol=colour_bound(x))
    # s = 2: the chroma doubles about the grey mean
    mean = x.mean(-1, keepdims=True)
    np.testing.assert_allclose(run(x, saturation=1.0), mean + 2 * (x - mean), rtol=0,
                               atol=colour_bound(x) * 2)


def test_one_channel_images_take_brightness_contrast_and_the_luma_flip_only():
    x = images(channels=1)
    b = np.float32(1.5) * np.float32(0.2)
    np.testing.assert_allclose(run(x, brightness=1.5), x + b, rtol=0, atol=colour_bound(x))
    np.testing.assert_allclose(run(x, lumaflip=0.75), -x, rtol=0, atol=colour_bound(x))
    # hue and saturation are AugmentPipe's no-ops on 1 channel: bit-identical
    np.testing.assert_array_equal(run(x, hue=0.9, saturation=2.0), x)


# --- cutout ---

def test_cutout_zeroes_exactly_the_rectangle():
    x = images()
    # centre (x 0.25, y 0.5), half the side: pixel centres (i + 0.5) / 16 within 0.25 of it ->
    # columns 0..7, rows 4..11
    out = np.asarray(run(x, cutout=[0.25, 0.5]))
    expected = np.asarray(x).copy()
    expected[:, 4:12, 0:8] = 0
    np.testing.assert_array_equal(out, expected)
    # at a corner: columns with (i + 0.5) / 16 < 0.25 -> 0..3, rows > 0.75 -> 12..15
    out = np.asarray(run(x, cutout=[0.0, 1.0]))
    expected = np.asarray(x).copy()
    expected[:, 12:, :4] = 0
    np.testing.assert_array_equal(out, expected)


# --- the pipeline as a whole ---

def test_p_zero_and_untouched_images_are_bit_identical():
    policy = augment.parse_policy("ada")
    numbers = augment.draw(jax.random.key(0), policy, (256,), SIDE)
    x = images(batch=256)
    np.testing.assert_array_equal(augment.apply(x, numbers, policy, 0.0), x)
    traced = jax.jit(lambda x, p: augment.apply(x, numbers, policy, p))
    np.testing.assert_array_equal(traced(x, jnp.float32(0.0)), x)
    # p = 0.1: the images where no operation fired (rotation: 1 - sqrt(1 - p) each side)
    p = 0.1
    pipe = numbers["pipe"]
    fired = np.zeros(256, bool)
    for name, _, _ in augment_pipe.DRAWS:
        probability = ADA.multiplier(name) * p
        if name.endswith("_rotate"):
            probability = 1 - np.sqrt(1 - probability)
        fired |= np.asarray(pipe[name]["apply"]) < probability
    out = np.asarray(traced(x, jnp.float32(p)))
    assert 0 < fired.sum() < 256
    np.testing.assert_array_equal(out[~fired], np.asarray(x)[~fired])
    # (an operation may fire and change nothing: a flip index of 0, a shift that rounds to 0)
    assert np.any(out[fired] != np.asarray(x)[fired])


def test_numbers_follow_augment_pipes_distributions():
    numbers = augment_pipe.draw(jax.random.key(3), (2, 5, 64))
    assert numbers["xint"]["value"].shape == (2, 5, 64, 2)
    assert numbers["scale"]["apply"].shape == (2, 5, 64)
    for name, distribution, _ in augment_pipe.DRAWS:
        value = np.asarray(numbers[name]["value"])
        if distribution == "uniform":
            assert value.min() >= 0 and value.max() < 1
        else:
            assert value.min() < 0 < value.max()
    # each operation its own numbers
    assert not np.array_equal(numbers["scale"]["value"], numbers["aniso"]["value"])


def test_gradients_are_the_pipelines_transpose_and_second_order_works():
    """For fixed numbers the pipeline is affine in the image, f(x) = A x + f(0): its gradient
    is A^T w, so <w, f(x) - f(0)> = <A^T w, x>. R1 through it needs a second derivative."""
    x, w = images(batch=8), images(batch=8, seed=1)
    # a blit's gradient is the inverse blit, exactly
    np.testing.assert_array_equal(jax.grad(lambda x: jnp.vdot(w, run(x, xflip=0.75)))(x),
                                  w[:, :, ::-1])
    policy = augment.parse_policy("ada")
    numbers = augment.draw(jax.random.key(4), policy, (8,), SIDE)
    p = 0.9

    def f(x):
        return augment.apply(x, numbers, policy, p)

    offset = f(jnp.zeros_like(x))
    w = f(x) - offset  # = A x: <w, A x> = |A x|^2, a sum without cancellation
    grad = jax.grad(lambda x: jnp.vdot(w, f(x)))(x)
    lhs, rhs = float(jnp.vdot(w, f(x) - offset)), float(jnp.vdot(grad, x))
    # Sizes: A's rows are bilinear weights (>= 0, summing to <= 1) through the colour matrix
    # (rows' absolute sums <= k) and cutout's 0 or 1, so |A| |x| <= k max|x| elementwise and
    # both sides sum n terms of at most that times |w| (plus |w| |f(0)| on the left). Each sum
    # of n terms rounds within n u of their size (twice: two sides); the terms' own errors (the
    # colour bound's 32u, the sampling's 8u; 64u allowed) add to it.
    colour = augment_pipe.colour_matrix(numbers["pipe"], PIPES["ada"], p, 3)
    k = float(jnp.abs(colour[:, :3, :3]).sum(-1).max())
    size = float(jnp.abs(w).sum()) * k * float(jnp.abs(x).max()) + float(
        jnp.vdot(jnp.abs(w), jnp.abs(offset)))
    assert abs(lhs - rhs) <= (2 * x.size + 64) * U * size
    assert (2 * x.size + 64) * U * size < 0.01 * lhs  # the check is 100 times finer than lhs
    penalty = jax.grad(lambda x: jnp.sum(jax.grad(lambda y: jnp.sum(jnp.tanh(f(y)) ** 2))(x)
                                         ** 2))(x)
    assert np.isfinite(penalty).all() and float(jnp.abs(penalty).sum()) > 0


def test_the_policy_is_the_pipeline_alone():
    assert augment.parse_policy("ada") == ("ada",)
    assert augment.parse_policy("bgc") == ("bgc",)
    assert config_lib.resolve(tiny_config(**{"train.augment": "ada"})).train.augment == "ada"
    with pytest.raises(UserError, match=r"^config key train.augment='ada,translation' is not "
                                        r"allowed: .*, or 'ada' or 'bgc' alone$"):
        config_lib.resolve(tiny_config(**{"train.augment": "ada,translation"}))
    with pytest.raises(ValueError, match="takes no other augmentation"):
        augment.parse_policy("translation,ada")


# --- training with it ---

def test_eight_devices_equal_one_device_with_ada():
    # RGB (every operation) with the cosine schedule of p half-way (step 2 of 4 of the
    # schedule's 32 images), plain SGD: the pipeline's numbers are drawn for the global batch.
    # (Training and exact resume with it: test_r3gan's CIFAR-10 recipe, which augments with
    # "ada" under R1 + R2; the double backward through it: the gradient test above.)
    config = tiny_config(**{
        "train.augment": "ada", "train.augment_p": 0.2, "train.final_augment_p": 0.9,
        "train.schedule_kimg": 0.032, "train.batch_size": 8, "train.mode_seeking": 0.0,
        "data.channels": 3})
    shape = (SIDE, SIDE, 3)
    one, eight = (run_step(config, devices, shape, 10, start_step=2)
                  for devices in (jax.devices()[:1], jax.devices()))
    assert_steps_agree(one, eight, config)
