"""The resnet family (SNGAN / BigGAN): shapes, options, spectral norm, StudioGAN's sizes."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import load_config, tiny_config
from helpers import run_unoptimised

from jaxgan.errors import UserError
from jaxgan.models import build_models
from jaxgan.models.resnet import Layers

BIGGAN = {"model.attention_resolution": 8, "model.shared_embedding_dim": 16,
          "model.hierarchical_latent": True, "model.g_spectral_norm": True,
          "model.latent_dim": 20}


def resnet_config(**overrides):
    return tiny_config(**{"model.arch": "resnet", "model.d_norm": "spectral", **overrides})


def count(tree):
    return sum(x.size for x in jax.tree.leaves(tree))


def abstract_variables(config, shape, num_classes):
    generator, discriminator = build_models(config.model, shape, num_classes)
    z = jnp.zeros((2, config.model.latent_dim))
    labels = jnp.zeros((2,), jnp.int32)
    return (jax.eval_shape(lambda: generator.init(jax.random.key(0), z, labels)),
            jax.eval_shape(lambda: discriminator.init(jax.random.key(0), jnp.zeros((2, *shape)),
                                                      labels)))


@pytest.mark.parametrize("name, g_count, d_count", [
    # Counted layer by layer from StudioGAN's src/models/resnet.py, big_resnet.py and
    # utils/ops.py with the CIFAR10 SNGAN.yaml / BigGAN.json settings (see the configs' docstrings).
    ("cifar10_sngan", 4_304_387, 1_055_105),
    ("cifar10_biggan", 9_416_196, 2_415_170)])
def test_cifar10_recipes_have_studiogans_parameter_counts(name, g_count, d_count):
    g_vars, d_vars = abstract_variables(load_config(name), (32, 32, 3), 10)
    assert (count(g_vars["params"]), count(d_vars["params"])) == (g_count, d_count)
    # Spectral norm keeps its power-iteration vectors as state, not parameters.
    assert any("/u" in jax.tree_util.keystr(p) for p, _ in
               jax.tree_util.tree_leaves_with_path(d_vars["batch_stats"]))


@pytest.mark.parametrize("resolution, channels, num_classes, options", [
    (16, 1, 10, {}), (32, 3, 0, {}), (32, 3, 10, BIGGAN), (64, 1, 0, BIGGAN), (256, 3, 5, {})])
def test_shapes_and_options(resolution, channels, num_classes, options):
    config = resnet_config(**options)
    shape = (resolution, resolution, channels)
    g_vars, d_vars = abstract_variables(config, shape, num_classes)
    paths = " ".join(jax.tree_util.keystr(p) for p, _ in
                     jax.tree_util.tree_leaves_with_path((g_vars, d_vars)))
    assert ("attention" in paths) == bool(options)
    assert ("shared_embedding" in paths) == bool(options and num_classes)
    assert ("projection" in paths) == bool(num_classes)
    generator, discriminator = build_models(config.model, shape, num_classes)
    images = jax.eval_shape(generator.apply, g_vars, jnp.zeros((3, config.model.latent_dim)),
                            jnp.zeros((3,), jnp.int32))
    assert images.shape == (3, *shape)
    logits, own_loss = jax.eval_shape(discriminator.apply, d_vars, images,
                                     jnp.zeros((3,), jnp.int32))
    assert logits.shape == (3,) and own_loss.shape == ()


def test_generator_runs_conditional_and_blends_classes():
    config = resnet_config(**BIGGAN)
    generator, discriminator = build_models(config.model, (32, 32, 3), 10)
    labels = jnp.array([3, 7])
    z = jnp.ones((2, config.model.latent_dim))

    def run(key):
        g_vars = generator.init(key, z, labels)
        images = generator.apply(g_vars, z, labels)
        blended = generator.apply(g_vars, z, jax.nn.one_hot(labels, 10))
        d_vars = discriminator.init(key, images, labels)
        (logits, _), updates = discriminator.apply(d_vars, images, labels, train=True,
                                                   mutable=["batch_stats"])
        return images, blended, logits, d_vars["batch_stats"], updates["batch_stats"]
    images, blended, logits, stats, new_stats = run_unoptimised(run, jax.random.key(0))
    assert float(jnp.abs(images).max()) <= 1.0 and not np.allclose(images[0], images[1])
    # Class weights (morphing) at a one-hot vector give that class's image.
    np.testing.assert_allclose(blended, images, atol=1e-5)
    assert logits.shape == (2,) and np.all(np.isfinite(logits))
    # A training call moves the power-iteration vectors.
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(stats),
                                                          jax.tree.leaves(new_stats)))


@pytest.mark.parametrize("bad, message", [
    ({"model.d_norm": "batch"}, "model.d_norm='batch': the resnet family's discriminator takes "
                                "'spectral'"),
    ({"model.attention_resolution": 32}, "model.attention_resolution=32: at 32 px it must be 0 "
                                         r"\(none\) or one of 8, 16"),
    ({"model.hierarchical_latent": True, "model.latent_dim": 30},
     "model.latent_dim=30: a hierarchical latent at 32 px is split into 4 equal chunks")])
def test_unsupported_settings_are_refused(bad, message):
    with pytest.raises(UserError, match=message):
        build_models(resnet_config(**bad).model, (32, 32, 3), 10)
    with pytest.raises(UserError, match="data.resolution: the resnet family supports powers of "
                                        "two from 16 to 256, got 8"):
        build_models(resnet_config().model, (8, 8, 3), 10)


def test_dcgan_refuses_spectral_norm_in_d():
    with pytest.raises(UserError, match="model.d_norm='spectral': the dcgan family"):
        build_models(tiny_config(**{"model.d_norm": "spectral"}).model, (16, 16, 1), 10)


class SpectralConv(nn.Module):
    @nn.compact
    def __call__(self, x, train):
        return Layers(spectral=True, train=train, dtype=jnp.float32).conv(x, 6, name="conv")


def test_spectral_norm_matches_numpy_svd():
    x = jnp.ones((1, 4, 4, 5))
    module = SpectralConv()
    variables = module.init(jax.random.key(0), x, train=False)
    # A kernel with a clear gap between its two largest singular values.
    kernel = jax.random.normal(jax.random.key(1), (3, 3, 5, 6)) * jnp.array([3., 1, 1, 1, 1, 1])
    variables = {"params": {"conv": {**variables["params"]["conv"], "kernel": kernel}},
                 "batch_stats": variables["batch_stats"]}

    @jax.jit
    def iterate(stats):
        def body(_, stats):
            _, updates = module.apply({"params": variables["params"], "batch_stats": stats}, x,
                                      train=True, mutable=["batch_stats"])
            return updates["batch_stats"]
        return jax.lax.fori_loop(0, 50, body, stats)
    stats = iterate(variables["batch_stats"])
    sigma = float(jax.tree.leaves({k: v for k, v in stats["SpectralNorm_0"].items()
                                   if k.endswith("sigma")})[0])
    expected = np.linalg.svd(np.asarray(kernel).reshape(-1, 6), compute_uv=False)[0]
    assert abs(sigma - expected) / expected < 1e-3
    # The layer then computes with the kernel divided by it: an output whose largest singular
    # value is 1, so the conv of a unit impulse is the normalised kernel.
    impulse = jnp.zeros((1, 3, 3, 5)).at[0, 1, 1, 0].set(1.0)
    out = module.apply({"params": variables["params"], "batch_stats": stats}, impulse, train=False)
    bias = variables["params"]["conv"]["bias"]
    np.testing.assert_allclose(out[0, 1, 1] - bias, kernel[1, 1, 0] / expected, rtol=2e-3, atol=1e-5)
