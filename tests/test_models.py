import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_config
from helpers import run_unoptimised

from jaxgan.errors import UserError
from jaxgan.models import build_models
from jaxgan.training.state import GAN


def init_variables(config, shape, num_classes, key):
    return run_unoptimised(GAN.build(config, shape, num_classes).init_variables, key)


@pytest.mark.parametrize("resolution", [16, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("num_classes", [0, 10])
def test_output_shapes(resolution, channels, num_classes):
    config = tiny_config()
    shape = (resolution, resolution, channels)
    generator, discriminator = build_models(config.model, shape, num_classes)
    z = jax.random.normal(jax.random.key(1), (3, config.model.latent_dim))
    labels = jnp.array([0, 1, 2]) if num_classes else None

    def run(key):
        g_vars, d_vars = GAN.build(config, shape, num_classes).init_variables(key)
        images = generator.apply(g_vars, z, labels)
        return g_vars, d_vars, images, discriminator.apply(d_vars, images, labels)[0]
    g_vars, d_vars, images, logits = run_unoptimised(run, jax.random.key(0))
    assert images.shape == (3, *shape)
    assert images.dtype == jnp.float32
    assert not np.array_equal(images[0], images[1])  # each image follows its own noise
    assert logits.shape == (3,) and logits.dtype == jnp.float32
    assert not np.array_equal(logits[0], logits[1])  # one logit per image
    # Conditional models have per-class parameters; unconditional ones have none.
    has_class_params = any("gain" in jax.tree_util.keystr(path) or "projection" in
                           jax.tree_util.keystr(path)
                           for path, _ in jax.tree_util.tree_leaves_with_path((g_vars, d_vars)))
    assert has_class_params == bool(num_classes)


def test_labels_change_the_conditional_generator():
    config = tiny_config()
    generator, _ = build_models(config.model, (16, 16, 1), 10)
    g_vars, _ = init_variables(config, (16, 16, 1), 10, jax.random.key(0))
    # Perturb the class gains so that classes differ (they start equal, at one).
    g_vars = jax.tree_util.tree_map_with_path(
        lambda p, x: x + jax.random.normal(jax.random.key(5), x.shape) if "gain" in
        jax.tree_util.keystr(p) else x, g_vars)
    z = jnp.ones((2, config.model.latent_dim))
    images = run_unoptimised(lambda v: generator.apply(v, z, jnp.array([3, 7])), g_vars)
    assert not np.allclose(images[0], images[1])


def test_dcgan64_parameter_count_matches_pytorch_example():
    # pytorch/examples dcgan: netG 3,576,704 and netD 2,765,568 parameters (nz=100, ngf=ndf=64).
    config = tiny_config(**{"model.g_width": 64, "model.d_width": 64, "model.latent_dim": 100})
    g_vars, d_vars = jax.eval_shape(GAN.build(config, (64, 64, 3), 0).init_variables,
                                    jax.random.key(0))
    count = lambda tree: sum(x.size for x in jax.tree.leaves(tree))
    assert count(g_vars["params"]) == 3_576_704
    assert count(d_vars["params"]) == 2_765_568


@pytest.mark.parametrize("bad", [8, 256])
def test_resolution_outside_the_family_is_refused(bad):
    with pytest.raises(UserError, match=f"data.resolution: the dcgan family supports powers of two "
                                        f"from 16 to 128, got {bad}"):
        build_models(tiny_config().model, (bad, bad, 1), 0)
