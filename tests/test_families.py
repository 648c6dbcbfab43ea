"""The promises every model family keeps, over the registry (jaxgan.families.FAMILIES): the
contract the rest of jaxgan relies on (shapes, conditioning, the abstract state a checkpoint is
restored into equals the created one, D's own loss, training, exact resume, sampling); one
training step computes the same mathematics on 1 device and on 8, for every loss the family
trains with, checked by tests/helpers.assert_steps_agree with tolerances derived there; that
check fails on a deliberately wrong step; and a new family is its module plus one registry line
(tests/toy_family.py)."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_config
from helpers import assert_steps_agree, assert_trains_resumes_exactly_and_samples, run_step, \
    run_unoptimised

from jaxgan import config as config_lib, families, models
from jaxgan.errors import UserError
from jaxgan.keys import integer
from jaxgan.training import step as step_lib
from jaxgan.training.state import GAN

# Each family, tiny, with the tools it trains with that keep state across devices. A family
# added to the registry must add its line here (test_every_family_is_checked says so).
FAMILIES = {
    # P2GAN's class loss on D's projection head (its class scores through the step)
    "dcgan": {"data.resolution": 16, "train.class_loss": 0.5},
    # spectral norm's vectors, an adaptive augmentation p (every augmentation), LeCam's averages
    "resnet": {"model.arch": "resnet", "model.d_norm": "spectral", "data.resolution": 16,
               "train.augment": "color,translation,cutout", "train.augment_p": 0.5,
               "train.ada_target": 0.6, "train.lecam": 0.3, "train.class_loss": 0.5},
    # D's reconstruction with its random quadrants, G's noise, both spectral norms, DiffAugment
    "fastgan": {"model.arch": "fastgan", "model.d_norm": "spectral", "model.g_spectral_norm": True,
                "data.resolution": 32, "train.augment": "color,translation"},
    # normalisation-free residual blocks with grouped 3x3 convolutions (groups of 4 channels)
    "r3gan": {"model.arch": "r3gan", "model.d_norm": "none", "model.blocks_per_stage": 1,
              "model.group_width": 4, "data.resolution": 8, "train.augment": "translation"},
}
LOSSES = {
    "non_saturating": {"train.loss": "non_saturating"},
    "hinge": {"train.loss": "hinge"},
    # R3GAN's objective with R1 and R2 through the augmentation, Adam's beta1 = 0, and every
    # schedule half-way at the step checked (start_step below: 16 of 32 images)
    "rpgan": {"train.loss": "rpgan", "train.b1": 0.0, "train.b2": 0.9, "train.r1_gamma": 0.05,
              "train.r2_gamma": 0.05, "train.schedule_kimg": 0.032, "train.final_lr_scale": 0.25,
              "train.final_gamma_scale": 0.1, "train.final_b2": 0.99, "train.ema_kimg": 0.016,
              "train.batch_size": 8, "train.mode_seeking": 0.0},
}
CLASSES = 10


def config_for(family, loss, **more):
    config = tiny_config(**{**FAMILIES[family], **LOSSES[loss], **more})
    return config, (config.data.resolution, config.data.resolution, 1)


def both_runs(config, shape, **kwargs):
    assert len(jax.devices()) == 8, "run with XLA_FLAGS=--xla_force_host_platform_device_count=8"
    return [run_step(config, devices, shape, CLASSES, **kwargs)
            for devices in (jax.devices()[:1], jax.devices())]


def test_every_family_is_checked():
    assert set(FAMILIES) == set(families.FAMILIES) == set(models.FAMILIES)


def perturbed(variables, key):
    """`variables` with every parameter moved at random: an untrained network may ignore its
    labels (conditional BatchNorm starts at gain 1 and bias 0 for every class)."""
    leaves, tree = jax.tree.flatten(variables["params"])
    keys = jax.random.split(key, len(leaves))
    moved = [x + 0.1 * jax.random.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys)]
    return {**variables, "params": jax.tree.unflatten(tree, moved)}


def assert_keeps_the_contract(config, shape, tmp_path):
    """What training, checkpoints and sampling rely on of a family (see the module docstring)."""
    gan = GAN.build(config_lib.resolve(config), shape, CLASSES)
    created, abstract = gan.create_state(jax.random.key(0)), gan.abstract_state()
    assert jax.tree.structure(created) == jax.tree.structure(abstract)
    assert [(x.shape, x.dtype) for x in jax.tree.leaves(created)] == [
        (x.shape, x.dtype) for x in jax.tree.leaves(abstract)]

    def run(g_vars, d_vars):
        z = jax.random.normal(jax.random.key(1), (4, config.model.latent_dim))
        labels, others = jnp.arange(4), jnp.arange(4) + 1
        images = gan.generator.apply(g_vars, z, labels)
        return (images, gan.generator.apply(g_vars, z, others),
                gan.discriminator.apply(d_vars, images, labels),
                gan.discriminator.apply(d_vars, images, others))
    g_vars = perturbed(models.variables(created.g_params, created.g_stats), jax.random.key(2))
    d_vars = perturbed(models.variables(created.d_params, created.d_stats), jax.random.key(3))
    images, other_images, (logits, own_loss), (other_logits, _) = run_unoptimised(
        run, g_vars, d_vars)
    assert images.shape == (4, *shape) and images.dtype == jnp.float32
    assert np.isfinite(images).all()  # (r3gan's G is unbounded by design: to_uint8 clips)
    assert logits.shape[0] == 4 and logits.ndim in (1, 2) and logits.dtype == jnp.float32
    assert own_loss.shape == () and float(own_loss) == 0.0  # without its numbers: none
    assert not np.allclose(images, other_images, atol=1e-4)  # G follows the labels
    assert not np.allclose(logits, other_logits, atol=1e-4)  # and D
    last, sampled = assert_trains_resumes_exactly_and_samples(config, tmp_path)
    assert last["step"] == config.train.num_steps
    assert np.isfinite([last["d_loss"], last["g_loss"]]).all()
    assert sampled.shape == (3, *shape)
    name = models.aux_loss_name(gan.discriminator)
    if name:  # D's own loss, reported under its name
        assert np.isfinite(last[name]) and last[name] > 0.0
    return last


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_keeps_the_contract(family, tmp_path):
    config, shape = config_for(family, "non_saturating", **{
        "train.num_steps": 4, "checkpoint.every_steps": 2})
    last = assert_keeps_the_contract(config, shape, tmp_path)
    if family == "fastgan":  # three mean squared errors of images in [-1, 1]: at most 3 * 4
        assert last["reconstruction"] < 12.0


# The toy family's own key, declared in its registry line.
TOY = families.Family("toy_family", {"toy_hidden": integer(0, "toy: hidden units (0: 16)", 0,
                                                           1024)})


def test_a_family_is_its_module_and_one_registry_line(tmp_path, monkeypatch):
    """tests/toy_family.py (a D with its own loss and its own random numbers per image) and the
    one line below: validated, trained, the same on 1 device and 8, resumed and sampled, with no
    other change anywhere."""
    monkeypatch.setitem(families.FAMILIES, "toy", TOY)
    with pytest.raises(UserError, match=r"^model.toy_hidden: the dcgan family has no such option "
                                        r"\(it is the toy family's: model.arch='toy'\)$"):
        config_lib.resolve(tiny_config(**{"model.toy_hidden": 8}))
    config = tiny_config(**{"model.arch": "toy", "model.toy_hidden": 8, "model.d_norm": "none",
                            "train.num_steps": 4, "checkpoint.every_steps": 2})
    shape = (16, 16, 1)
    one, eight = both_runs(config, shape)
    assert_steps_agree(one, eight, config)
    assert float(one.metrics["toy_penalty"]) > 0.0
    assert_keeps_the_contract(config, shape, tmp_path)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_projection_head_scores_every_class(family):
    """train.class_loss reads D's projection head as a classifier: the score D sows for class k
    is what the head adds to D(x, k), so D(x, k) - D(x, 0) = score_k - score_0 for every image
    (and every patch logit, fastgan). The bound: each of the C-term sums (the head's for one
    label, the scores' matmul) rounds by at most C eps sum_i |e_ki phi_i|, and adding the head
    to D's own logit by eps |D(x, k)|."""
    # resnet without spectral norm, so that the stored table is the one D uses
    more = {"model.d_norm": "none"} if family == "resnet" else {}
    config, shape = config_for(family, "hinge", **more)
    gan = GAN.build(config_lib.resolve(config), shape, CLASSES)
    _, d_vars = gan.init_variables(jax.random.key(0))
    d_vars = perturbed(d_vars, jax.random.key(1))
    x = jax.random.uniform(jax.random.key(2), (4, *shape), minval=-1.0, maxval=1.0)
    (_, _), sown = gan.discriminator.apply(d_vars, x, jnp.zeros((4,), jnp.int32), train=False,
                                           mutable=["intermediates"])
    features_BC = np.asarray(sown["intermediates"]["class_features"][0], np.float64)
    scores_BK = np.asarray(sown["intermediates"]["class_logits"][0], np.float64)
    table_KC = np.asarray(d_vars["params"]["projection"]["embedding"], np.float64)
    np.testing.assert_array_equal(scores_BK.shape, (4, CLASSES))
    eps, c = float(jnp.finfo(jnp.float32).eps), features_BC.shape[-1]
    magnitude_BK = np.abs(features_BC) @ np.abs(table_KC).T   # sum_i |e_ki phi_i|
    d_by_class = [np.asarray(gan.discriminator.apply(d_vars, x, jnp.full((4,), k), train=False)[0],
                             np.float64).reshape(4, -1) for k in range(CLASSES)]
    for k in range(1, CLASSES):
        bound_BP = (2 * c * eps * (magnitude_BK[:, [k]] + magnitude_BK[:, [0]])
                    + eps * (np.abs(d_by_class[k]) + np.abs(d_by_class[0])))
        error_BP = np.abs((d_by_class[k] - d_by_class[0])
                          - (scores_BK[:, [k]] - scores_BK[:, [0]]))
        assert np.all(error_BP <= bound_BP), (k, error_BP.max(), bound_BP.min())
    assert np.ptp(scores_BK, axis=1).min() > 0  # the classes score differently


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("family", FAMILIES)
def test_eight_devices_equal_one_device(family, loss):
    # Plain SGD: every quantity of the step is well conditioned (helpers.assert_steps_agree).
    config, shape = config_for(family, loss)
    start = 2 if loss == "rpgan" else 0
    one, eight = both_runs(config, shape, start_step=start)
    assert_steps_agree(one, eight, config, penalty=loss == "rpgan")


@pytest.mark.parametrize("loss", ["non_saturating", "rpgan"])
def test_eight_devices_equal_one_device_with_adam(loss):
    # The config's own Adam (beta1 0.5; rpgan's beta1 0 and its scheduled beta2): its update
    # held to Adam's formula where a gradient's sign is certain.
    config, shape = config_for("dcgan", loss)
    start = 2 if loss == "rpgan" else 0
    one, eight = both_runs(config, shape, start_step=start, optimizer="config")
    assert_steps_agree(one, eight, config, optimizer="config", penalty=loss == "rpgan")


def test_several_critic_updates():
    # Two D updates per step (with plain SGD, as the parametrized test), lazy R1 due on the
    # first of them only (r1_every 16: on 8 CPU devices this once gave other numbers run to run),
    # mode seeking's paired labels, DiffAugment's translation.
    config, shape = config_for("dcgan", "hinge", **{
        "train.n_critic": 2, "train.r1_gamma": 1.0, "train.mode_seeking": 1.0,
        "train.augment": "translation"})
    one, eight = both_runs(config, shape)
    assert_steps_agree(one, eight, config, penalty=True)


class LocalMeanLax:
    """jax.lax with pmean over nothing: each device keeps its own shard's gradient and metrics."""
    def __getattr__(self, name):
        return getattr(jax.lax, name)

    @staticmethod
    def pmean(x, axis_name):
        return x


def batch_norm_over_the_local_batch(gan):
    return dataclasses.replace(gan, generator=gan.generator.clone(axis_name=None),
                               discriminator=gan.discriminator.clone(axis_name=None))


@pytest.mark.parametrize("wrong", ["gradient over the local shard",
                                   "BatchNorm over the local batch"])
def test_the_check_fails_on_a_wrong_step(wrong, monkeypatch):
    config, shape = config_for("dcgan", "non_saturating")
    one = run_step(config, jax.devices()[:1], shape, CLASSES)
    if wrong == "gradient over the local shard":
        monkeypatch.setattr(step_lib, "lax", LocalMeanLax())
        eight = run_step(config, jax.devices(), shape, CLASSES)
        expected = r"gradient|metric"
    else:
        eight = run_step(config, jax.devices(), shape, CLASSES,
                         change_gan=batch_norm_over_the_local_batch)
        expected = r"metric|gradient|stats"
    with pytest.raises(AssertionError, match=expected):
        assert_steps_agree(one, eight, config)
