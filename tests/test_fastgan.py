"""The fastgan family (Liu et al. 2021): the official sizes, SLE, noise, self-supervised
reconstruction, exact resume and sampling (1 = 8 devices: tests/test_families.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_config, tiny_config
from helpers import abstract_variables, count, run_unoptimised

from jaxgan.errors import UserError
from jaxgan.models import build_models, fastgan

TINY = {"model.arch": "fastgan", "model.d_norm": "spectral", "model.g_spectral_norm": True,
        "train.loss": "hinge", "data.resolution": 32, "train.augment": "color,translation"}


def conv(c_in, c_out, k):
    return c_in * c_out * k * k


def bn(c):
    return 2 * c


def official_counts_256():
    """Parameters of the official models.py at 256 px, ngf = ndf = 64, nz = 256, nc = 3, counted
    layer by layer from its Generator / Discriminator / SimpleDecoder (spectral norm's u vectors
    are buffers there, state here)."""
    up = lambda i, o: conv(i, 2 * o, 3) + bn(2 * o)                       # UpBlock
    up_comp = lambda i, o: up(i, o) + 1 + conv(o, 2 * o, 3) + bn(2 * o) + 1  # + noise weights
    se = lambda i, o: conv(i, o, 4) + conv(o, o, 1)
    g = (conv(256, 2048, 4) + bn(2048) + up_comp(1024, 512) + up(512, 256) + up_comp(256, 128)
         + up(128, 128) + up_comp(128, 64) + up(64, 32) + se(1024, 128) + se(512, 64)
         + se(256, 32) + conv(64, 3, 1) + conv(32, 3, 3))                # to_128, to_big
    down = lambda i, o: conv(i, o, 4) + bn(o)
    down_comp = lambda i, o: down(i, o) + conv(o, o, 3) + bn(o) + conv(i, o, 1) + bn(o)
    decoder = lambda i: (up(i, 128) + up(128, 64) + up(64, 64) + up(64, 32) + conv(32, 3, 3))
    d = (conv(3, 16, 3) + down_comp(16, 32) + down_comp(32, 64) + down_comp(64, 128)
         + down_comp(128, 256) + down_comp(256, 512)
         + conv(512, 1024, 1) + bn(1024) + conv(1024, 1, 4)                # rf_big
         + se(16, 128) + se(32, 256) + se(64, 512)
         + conv(3, 32, 4) + down(32, 64) + down(64, 128) + down(128, 256)  # down_from_small
         + conv(256, 1, 4) + decoder(512) + decoder(256) + decoder(256))   # rf_small, decoders
    return g, d


def test_the_official_256px_model_has_the_official_parameter_counts():
    config = load_config("fastgan")
    g_vars, d_vars = abstract_variables(config, (256, 256, 3), 0)
    g_official, d_official = official_counts_256()
    assert (g_official, d_official) == (29_127_846, 11_526_160)  # as configs/fastgan.py says
    # G has one output: the official 1x1 `to_128` head (64 * 3 weights) is not built.
    assert (count(g_vars["params"]), count(d_vars["params"])) == (g_official - 64 * 3, d_official)
    assert any("/u" in jax.tree_util.keystr(p) for p, _ in
               jax.tree_util.tree_leaves_with_path((g_vars["batch_stats"], d_vars["batch_stats"])))


@pytest.mark.parametrize("resolution, excitations", [
    (32, {32: 4}), (64, {64: 4}), (128, {64: 4, 128: 8}), (256, {64: 4, 128: 8, 256: 16}),
    (1024, {64: 4, 128: 8, 256: 16, 512: 32})])
def test_skip_layer_excitations_are_the_papers(resolution, excitations):
    assert fastgan.generator_excitations(resolution) == excitations


@pytest.mark.parametrize("resolution, channels, num_classes", [(32, 1, 3), (64, 3, 0),
                                                               (512, 3, 2)])
def test_shapes_at_every_size(resolution, channels, num_classes):
    config = tiny_config(**{**TINY, "model.g_width": 8, "model.d_width": 8})
    g_vars, d_vars = abstract_variables(config, (resolution, resolution, channels), num_classes)
    generator, discriminator = build_models(config.model, (resolution,) * 2 + (channels,),
                                            num_classes)
    z, labels = jnp.zeros((2, 16)), jnp.zeros((2,), jnp.int32)
    images = jax.eval_shape(lambda v: generator.apply(v, z, labels), g_vars)
    assert images.shape == (2, resolution, resolution, channels)
    logits, _ = jax.eval_shape(lambda v, x: discriminator.apply(v, x, labels), d_vars, images)
    assert logits.shape == (2, 50)  # two 5x5 patch maps
    names = {jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(d_vars)}
    assert any("decoder_part" in n for n in names) and any("projection" in n for n in names) == (
        num_classes > 0)


def test_quadrants_are_the_official_crops():
    x = jnp.arange(2 * 4 * 4).reshape(2, 4, 4, 1)
    got = fastgan.quadrant(x, jnp.array([1, 2]))
    np.testing.assert_array_equal(got[0, ..., 0], x[0, :2, 2:, 0])  # 1: top right
    np.testing.assert_array_equal(got[1, ..., 0], x[1, 2:, :2, 0])  # 2: bottom left
    np.testing.assert_array_equal(fastgan.nearest_downsample(x, 2)[0, ..., 0],
                                  x[0, ::2, ::2, 0])


@pytest.fixture(scope="module")
def small_models():
    config = tiny_config(**{**TINY, "model.g_width": 8, "model.d_width": 8})
    generator, discriminator = build_models(config.model, (32, 32, 3), 3)
    z = jax.random.normal(jax.random.key(1), (4, 16))
    labels = jnp.array([0, 1, 2, 0])
    g_vars = generator.init(jax.random.key(0), z, labels)
    # Noise injection starts at weight 0: give it a weight, or the noise could not show.
    g_vars = jax.tree_util.tree_map_with_path(
        lambda p, v: v + 0.5 if "noise" in jax.tree_util.keystr(p) else v, g_vars)
    d_vars = discriminator.init(jax.random.key(0), jnp.zeros((4, 32, 32, 3)), labels)
    return generator, discriminator, g_vars, d_vars, z, labels


def test_generator_noise_is_a_function_of_z_and_labels_matter(small_models):
    generator, _, g_vars, _, z, labels = small_models

    def images(z, labels):
        return np.asarray(run_unoptimised(lambda v, z, y: generator.apply(v, z, y), g_vars, z,
                                          labels))
    a = images(z, labels)
    assert np.all(np.abs(a) <= 1.0)
    np.testing.assert_array_equal(a, images(z, labels))  # the same z: the same noise, image
    # The image of z does not depend on the batch it is drawn in (per-image noise keys).
    np.testing.assert_allclose(a[:2], images(z[:2], labels[:2]), atol=1e-6)
    assert not np.allclose(a, images(z, (labels + 1) % 3), atol=1e-3)  # conditional BatchNorm
    without_noise = jax.tree_util.tree_map_with_path(
        lambda p, v: v * 0 if "noise" in jax.tree_util.keystr(p) else v, g_vars)
    quiet = np.asarray(run_unoptimised(lambda v, z, y: generator.apply(v, z, y), without_noise,
                                       z, labels))
    assert not np.allclose(a, quiet, atol=1e-3)


def test_discriminator_reconstructs_real_images_only_when_asked(small_models):
    _, discriminator, _, d_vars, _, labels = small_models
    x = jax.random.uniform(jax.random.key(2), (4, 32, 32, 3), minval=-1, maxval=1)

    def forward(quadrant):
        (logits, loss), _ = discriminator.apply(d_vars, x, labels, train=True,
                                                numbers={"quadrant": quadrant},
                                                mutable=["batch_stats"])
        return logits, loss
    logits_a, loss_a = run_unoptimised(forward, jnp.array([0, 1, 2, 3]))
    logits_b, loss_b = run_unoptimised(forward, jnp.array([3, 3, 3, 3]))
    np.testing.assert_array_equal(logits_a, logits_b)  # the quadrant only changes the decoders
    assert float(loss_a) != float(loss_b)
    # Three mean squared errors of tanh outputs against images in [-1, 1]: between 0 and 3 * 4.
    assert 0.0 < float(loss_a) < 12.0 and logits_a.shape == (4, 50)
    plain, no_loss = run_unoptimised(lambda v, x: discriminator.apply(v, x, labels), d_vars, x)
    assert plain.shape == (4, 50) and float(no_loss) == 0.0
    # The quadrants it declares: one of 0-3 per image and D update, as the step draws them.
    drawn = discriminator.draw_numbers(jax.random.key(0), 2, 64)["quadrant"]
    assert drawn.shape == (2, 64) and set(np.unique(drawn)) == {0, 1, 2, 3}


@pytest.mark.parametrize("overrides, message", [
    ({"data.resolution": 16}, "data.resolution: the fastgan family supports powers of two from "
                              "32 to 1024, got 16"),
    ({"model.d_norm": "batch"}, "model.d_norm='batch': the fastgan family's discriminator takes "
                                "'spectral' (the official) or 'none'"),
    ({"model.g_width": 4, "data.resolution": 1024}, "model.g_width=4, model.d_width=8: at 1024 "
                                                    "px the fastgan family's narrowest layer "
                                                    "would have no channels; raise them")])
def test_unsupported_settings_are_one_line_errors(overrides, message):
    config = tiny_config(**{**TINY, **overrides})
    resolution = config.data.resolution
    with pytest.raises(UserError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        build_models(config.model, (resolution, resolution, 1), 0)

