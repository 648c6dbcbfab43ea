"""The r3gan family (Huang et al. 2024): the official parameter counts, block, initialisation,
resampling filter and conditioning; its configs train, resume exactly and sample."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_config, tiny_config
from helpers import (abstract_variables, assert_trains_resumes_exactly_and_samples, count,
                     run_unoptimised)

from jaxgan.config import resolve
from jaxgan.errors import UserError
from jaxgan.models import build_models, r3gan

TINY = {"model.arch": "r3gan", "model.d_norm": "none", "model.blocks_per_stage": 1,
        "model.group_width": 4, "train.loss": "rpgan", "train.mode_seeking": 0.0}
EPS = float(jnp.finfo(jnp.float32).eps)


def ffhq(resolution):
    """The official FFHQ-64 / FFHQ-256 presets: unconditional, 768 channels to 32 px, then half
    per doubling (cardinality 48, 24, 12: still 16 channels per group)."""
    config = load_config("cifar10_r3gan")
    config.data.resolution = resolution
    return config


@pytest.mark.parametrize("config, shape, num_classes, g_count, d_count", [
    # From the official Networks.py with train.py's presets (../shared/R3GAN.md section 3:
    # closed form and the unmodified code on a stub, which agree); FFHQ-256's are the paper's
    # Table 1 (23.058M / 23.010M).
    ("cifar10_r3gan", 32, 10, 20_781_952, 21_280_512),
    ("cifar10_r3gan", 32, 0, 20_732_160, 20_683_776),
    ("imagenet32_r3gan", 32, 1000, 82_914_304, 86_548_992),
    ("r3gan_cpu", 32, 2, 239_528, 235_480),  # as its docstring says (not an official preset)
    (64, 64, 0, 22_429_824, 22_381_440),
    (256, 256, 0, 23_057_952, 23_009_568)])
def test_official_presets_have_the_official_parameter_counts(config, shape, num_classes,
                                                             g_count, d_count):
    config = load_config(config) if isinstance(config, str) else ffhq(config)
    config.data.source = "digits"  # r3gan_cpu.py's folder is the user's to set
    g_vars, d_vars = abstract_variables(resolve(config), (shape, shape, 3), num_classes)
    assert (count(g_vars["params"]), count(d_vars["params"])) == (g_count, d_count)
    assert set(g_vars) == set(d_vars) == {"params"}  # no normalisation statistics, no buffers


def test_the_block_computes_the_official_sums_and_starts_as_the_identity():
    block = r3gan.ResidualBlock(groups=2, gain=r3gan.block_gain(8))
    x = jax.random.normal(jax.random.key(1), (2, 5, 5, 4))
    variables = block.init(jax.random.key(0), x)
    params = jax.tree.map(np.asarray, variables["params"])
    np.testing.assert_array_equal(block.apply(variables, x), x)  # the last 1x1 starts at zero
    # Non-zero weights everywhere, then a NumPy evaluation of the official forward pass.
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda p: rng.normal(size=p.shape).astype(np.float32), params)
    got = np.asarray(block.apply({"params": params}, x))

    def lrelu(v):
        return np.where(v > 0, v, 0.2 * v)
    xs = np.asarray(x, np.float64)
    y = lrelu(xs @ params["expand"]["kernel"] + params["act1"]["bias"])  # 4 -> 8
    kernel = params["grouped"]["kernel"]  # (3, 3, 4 inputs per group, 8 outputs)
    padded = np.pad(y, ((0, 0), (1, 1), (1, 1), (0, 0)))
    conv = np.zeros_like(y)
    for o in range(8):
        g = o // 4  # output channel o belongs to group o // 4, which reads inputs 4g .. 4g + 3
        for i in range(3):
            for j in range(3):
                conv[..., o] += padded[:, i:i + 5, j:j + 5, 4 * g:4 * g + 4] @ kernel[i, j, :, o]
    y = lrelu(conv + params["act2"]["bias"])
    expected = xs + y @ params["project"]["kernel"]
    # Sums of at most 36 products of O(1) numbers: float32 rounding is ~1e-5 of their size.
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_initialisation_is_the_official_fixup_at_cifar10_widths():
    # One block of the CIFAR-10 preset (C = 768, 96 groups, L = 8 blocks): stds 0.029754 and
    # 0.068714 (../shared/R3GAN.md, checked there against the official code), the last layer 0.
    gain = r3gan.block_gain(8)
    assert gain == pytest.approx(math.sqrt(2 / 1.04) * 8 ** -0.25) == pytest.approx(0.8245668)
    block = r3gan.ResidualBlock(groups=96, gain=gain)
    params = jax.jit(block.init)(jax.random.key(0), jnp.zeros((1, 4, 4, 768)))["params"]
    for name, std in (("expand", 0.029754), ("grouped", 0.068714)):
        kernel = np.asarray(params[name]["kernel"], np.float64)
        # The sample std of n normals is within 5 / sqrt(2n) of the true one (relative).
        assert abs(kernel.std() / std - 1) < 5 / math.sqrt(2 * kernel.size) + 1e-4, name
        assert abs(kernel.mean()) < 5 * std / math.sqrt(kernel.size), name
    assert params["grouped"]["kernel"].shape == (3, 3, 16, 1536)
    assert not np.any(params["project"]["kernel"])
    assert not np.any(params["act1"]["bias"]) and not np.any(params["act2"]["bias"])


def test_stems_and_heads_have_the_official_initialisation():
    config = tiny_config(**{**TINY, "model.g_width": 64, "model.d_width": 64,
                            "model.latent_dim": 64, "model.group_width": 16})
    generator, discriminator = build_models(config.model, (8, 8, 3), 10)
    labels = jnp.zeros((1,), jnp.int32)
    g = jax.jit(generator.init)(jax.random.key(0), jnp.zeros((1, 64)), labels)["params"]
    d = jax.jit(discriminator.init)(jax.random.key(1), jnp.zeros((1, 8, 8, 3)), labels)["params"]
    expected = {  # (parameters, std): basis N(0, 1); every other weight N(0, gain / sqrt(fan_in))
        "G basis": (g["basis"], 1.0), "G basis_scale": (g["basis_scale"]["kernel"], 1 / 128**.5),
        "G embedding": (g["embedding"]["embedding"], 1 / 10**.5),
        "G aggregation": (g["aggregation"]["kernel"], 1 / 8.0),
        "D extraction": (d["extraction"]["kernel"], 1 / 3**.5), "D basis": (d["basis"], 0.25),
        "D head": (d["head"]["kernel"], 1 / 8.0),
        "D projection": (d["projection"]["embedding"], 1 / 8.0 / 10**.5)}
    assert g["basis"].shape == (4, 4, 64) and d["head"]["kernel"].shape == (64, 64)
    for name, (values, std) in expected.items():
        values = np.asarray(values, np.float64)
        assert abs(values.std() / std - 1) < 5 / math.sqrt(2 * values.size), name


# ------------------------------------------------------------------------------- resampling

def up_1d(x):
    """Hand-written: upfirdn2d.upsample2d per axis, [1, 3, 3, 1] / 4 taps with zero borders."""
    x = np.pad(np.asarray(x, np.float64), 1)
    return np.stack([x[:-2] / 4 + 3 * x[1:-1] / 4, 3 * x[1:-1] / 4 + x[2:] / 4], 1).reshape(-1)


def test_resampling_a_hand_computed_case():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    up_a = [0.75, 1.25, 1.75, 2.25, 2.75, 3.25, 3.75, 3.0]  # by hand: y[2m] = x[m-1]/4 + 3x[m]/4
    np.testing.assert_allclose(up_1d(a), up_a)
    image = np.outer(a, a)[None, :, :, None].astype(np.float32)
    np.testing.assert_allclose(r3gan.interpolative_upsample2x(image)[0, :, :, 0], np.outer(up_a, up_a),
                               rtol=4 * EPS)  # separable: the outer product of the 1-D results
    b = np.arange(1.0, 9.0)
    down_b = [1.5, 3.5, 5.5, 6.375]  # (x[2j-1] + 3x[2j] + 3x[2j+1] + x[2j+2]) / 8, zero outside
    image = np.outer(b, b)[None, :, :, None].astype(np.float32)
    np.testing.assert_allclose(r3gan.interpolative_downsample2x(image)[0, :, :, 0], np.outer(down_b, down_b),
                               rtol=8 * EPS)


def test_resampling_keeps_constants_inside_and_fades_at_the_zero_border():
    ones = jnp.ones((1, 4, 4, 2))
    up = np.asarray(r3gan.interpolative_upsample2x(ones))[0, :, :, 0]
    edge = np.array([0.75, 1, 1, 1, 1, 1, 1, 0.75])
    np.testing.assert_array_equal(up, np.outer(edge, edge))
    down = np.asarray(r3gan.interpolative_downsample2x(jnp.ones((1, 8, 8, 2))))[0, :, :, 1]
    edge = np.array([7, 8, 8, 7]) / 8
    np.testing.assert_array_equal(down, np.outer(edge, edge))
    # Up then down: the filter passes the constant (gain 1); the border loses (1 - 0.78125).
    both = np.asarray(r3gan.interpolative_downsample2x(r3gan.interpolative_upsample2x(ones)))[0, :, :, 0]
    edge = np.array([0.78125, 1, 1, 0.78125])  # (3 * 0.75 + 3 + 1) / 8
    np.testing.assert_array_equal(both, np.outer(edge, edge))


def test_resampling_equals_the_official_reference_convolutions():
    # Resamplers.py's reference forms, depthwise: up = conv_transpose2d(stride 2, padding 1,
    # 4K), i.e. a convolution of the 2x-dilated input padded by 2; down = conv2d(stride 2,
    # padding 1, K); K = [1,3,3,1]^T [1,3,3,1] / 64.
    k1 = np.array([1.0, 3.0, 3.0, 1.0])
    kernel = np.outer(k1, k1) / 64
    x = jax.random.uniform(jax.random.key(0), (2, 6, 6, 3), minval=-1, maxval=1)
    depthwise = jnp.tile(jnp.asarray(kernel, jnp.float32)[:, :, None, None], (1, 1, 1, 3))
    conv = lambda x, k, **kw: jax.lax.conv_general_dilated(
        x, k, dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=3,
        precision="highest", **kw)
    up = conv(x, 4 * depthwise, window_strides=(1, 1), padding=((2, 2), (2, 2)),
              lhs_dilation=(2, 2))
    down = conv(x, depthwise, window_strides=(2, 2), padding=((1, 1), (1, 1)))
    # Each output is a sum of at most 16 products with weights summing to at most 4 (up) and
    # inputs within [-1, 1]: float32 rounding stays below 16 ulps of 4.
    np.testing.assert_allclose(r3gan.interpolative_upsample2x(x), up, atol=16 * 4 * EPS)
    np.testing.assert_allclose(r3gan.interpolative_downsample2x(x), down, atol=16 * EPS)


def test_grouped_convolution_forms_agree():
    x = jax.random.normal(jax.random.key(0), (2, 6, 6, 8))
    kernel = jax.random.normal(jax.random.key(1), (3, 3, 2, 8))
    xla = r3gan.grouped_conv3x3_xla(x, kernel, 4)
    taps = r3gan.grouped_conv3x3_taps(x, kernel, 4)
    per_group = r3gan.grouped_conv3x3_per_group(x, kernel, 4)
    # 18 products of normals per output: rounding well below 1e-5 of the outputs' scale.
    np.testing.assert_allclose(taps, xla, atol=1e-5 * float(jnp.abs(xla).max()))
    np.testing.assert_allclose(per_group, xla, atol=1e-5 * float(jnp.abs(xla).max()))


# ------------------------------------------------------------------------------ conditioning

@pytest.fixture(scope="module")
def small_models():
    config = tiny_config(**{**TINY, "model.g_width": 8, "model.d_width": 8})
    generator, discriminator = build_models(config.model, (16, 16, 3), 3)
    z = jax.random.normal(jax.random.key(1), (4, 16))
    labels = jnp.array([0, 1, 2, 0])

    def init(key):
        g_key, d_key = jax.random.split(key)
        return (generator.init(g_key, z, labels),
                discriminator.init(d_key, jnp.zeros((4, 16, 16, 3)), labels))
    g_vars, d_vars = run_unoptimised(init, jax.random.key(0))
    # Every block starts as the identity: give the last layers weights so the blocks act.
    nonzero = lambda tree: jax.tree_util.tree_map_with_path(
        lambda p, v: v + 0.1 if "project" in jax.tree_util.keystr(p) else v, tree)
    return generator, discriminator, nonzero(g_vars), nonzero(d_vars), z, labels


def test_labels_condition_both_networks(small_models):
    generator, discriminator, g_vars, d_vars, z, labels = small_models

    def run(g_vars, d_vars, labels):
        images = generator.apply(g_vars, z, labels)
        blended = generator.apply(g_vars, z, jax.nn.one_hot(labels, 3))
        return (images, blended, discriminator.apply(d_vars, images, labels)[0],
                discriminator.apply(d_vars, images, (labels + 1) % 3)[0])
    images, blended, logits, other_logits = run_unoptimised(run, g_vars, d_vars, labels)
    shifted, *_ = run_unoptimised(run, g_vars, d_vars, (labels + 1) % 3)
    assert images.shape == (4, 16, 16, 3) and images.dtype == jnp.float32
    assert not np.allclose(images, shifted, atol=1e-3)    # G's label embedding
    assert not np.allclose(logits, other_logits, atol=1e-4)  # D's projection
    # The one-hot label through the bias-free linear embedding is the table lookup.
    np.testing.assert_allclose(blended, images, atol=1e-5 * float(np.abs(images).max()))
    assert logits.shape == (4,) and np.all(np.isfinite(logits))


def test_unconditional_models_have_no_label_parameters():
    config = tiny_config(**{**TINY, "model.g_width": 8, "model.d_width": 8})
    g_vars, d_vars = abstract_variables(config, (16, 16, 1), 0)
    names = {jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(
        (g_vars, d_vars))}
    assert not any("embedding" in n or "projection" in n for n in names)
    assert d_vars["params"]["head"]["kernel"].shape == (8, 1)
    assert g_vars["params"]["basis_scale"]["kernel"].shape == (16, 8)  # z alone


@pytest.mark.parametrize("overrides, message", [
    ({"data.resolution": 16, "model.d_norm": "batch"},
     "model.d_norm='batch': the r3gan family has no normalisation: set 'none'"),
    ({"model.group_width": 6}, "model.g_width=8: at 16 px the r3gan family's 4x4 stage would "
                               "have 8 channels, whose 16 expanded ones are not a multiple of "
                               "model.group_width=6; change either"),
    ({"model.g_width": 16, "model.d_width": 1, "model.group_width": 1, "data.resolution": 64},
     "model.d_width=1: at 64 px the r3gan family's 64x64 stage would have no channels")])
def test_unsupported_settings_are_one_line_errors(overrides, message):
    config = tiny_config(**{**TINY, **overrides})
    resolution = config.data.resolution
    with pytest.raises(UserError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        build_models(config.model, (resolution, resolution, 1), 0)


# ------------------------------------------------------------------------- train, resume, sample

def test_cifar10_recipe_trains_resumes_exactly_and_samples(tmp_path):
    # The CIFAR-10 config itself (rpgan, R1 + R2, every cosine schedule, Adam's scheduled beta2,
    # the EMA half-life, StyleGAN2-ADA's augmentation pipeline "ada" on its schedule of p), on
    # the digits at tiny widths and a 4-step schedule.
    config = tiny_config("cifar10_r3gan", **{
        **TINY, "data.source": "digits", "data.resolution": 8, "data.channels": 1,
        "data.random_flip": False, "model.g_width": 8, "model.d_width": 8,
        "train.num_steps": 4, "checkpoint.every_steps": 2, "train.schedule_kimg": 0.064,
        "train.ema_kimg": 0.032})
    last, images = assert_trains_resumes_exactly_and_samples(config, tmp_path)
    assert config.train.augment == "ada"
    assert last["step"] == 4 and math.isfinite(last["r1"]) and math.isfinite(last["r2"])
    assert images.shape == (3, 8, 8, 1)
