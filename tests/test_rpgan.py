"""R3GAN's objective in the step: relativistic pairing, R1 and R2, its schedules; resumable
(1 = 8 devices: tests/test_families.py)."""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P
from conftest import tiny_config
from helpers import assert_trains_resumes_exactly_and_samples, run_step

from jaxgan import config as config_lib
from jaxgan.errors import UserError
from jaxgan.mesh import make_mesh
from jaxgan.training.state import GAN, make_optimizers
from jaxgan.training.step import (AugmentSlots, Batch, DiscriminatorState, Scales, StepOptions,
                                  discriminator_update, generator_loss)


def softplus(x):
    return math.log(1.0 + math.exp(x))


class Quadratic(nn.Module):
    """D(x) = sum_j w_j x_j^2 over 2 pixels, w = (1, 2): grad_x D = 2 w x."""
    @nn.compact
    def __call__(self, x, labels, train=False):
        w = self.param("w", lambda key: jnp.array([1.0, 2.0]).reshape(1, 1, 2))
        return jnp.sum(w * x ** 2, axis=(1, 2, 3)), jnp.zeros(())  # (logits, its own loss: none)


REAL = jnp.array([[1.0, 2.0], [3.0, -1.0]]).reshape(2, 1, 1, 2)  # D: 9, 11
FAKE = jnp.array([[0.0, 1.0], [2.0, 0.0]]).reshape(2, 1, 1, 2)   # D: 2, 4
LABELS = jnp.zeros((2,), jnp.int32)


def d_update(opts, d_index=0):
    gan = GAN(None, Quadratic(), None, optax.sgd(1.0), (1, 2, 1), 0, 1)
    params = {"w": jnp.array([1.0, 2.0]).reshape(1, 1, 2)}

    def run(params, real, fake):
        d, metrics = discriminator_update(
            gan, opts, DiscriminatorState(params, {}, gan.d_tx.init(params), {}),
            Batch(real, LABELS, fake, LABELS), AugmentSlots({}, {}, {}, {}),
            Scales(augment_p=1.0, lr=1.0, gamma=1.0), d_index)
        return d.params, metrics
    sharded = jax.shard_map(run, mesh=make_mesh(jax.devices()[:1]), in_specs=(P(), P(), P()),
                            out_specs=P(), check_vma=False)
    return params, jax.jit(sharded)(params, REAL, FAKE)


def test_d_update_hand_computed_rpgan_r1_r2():
    opts = StepOptions(loss="rpgan", ema_decay=0.0, mode_seeking=0.0, r1_gamma=2.0,
                       r2_gamma=0.5, penalty_every=1)
    params, (new_params, metrics) = d_update(opts)
    # |grad|^2 = 4 x_0^2 + 16 x_1^2: real 4 + 64 = 68 and 36 + 16 = 52, fake 16 and 16.
    assert float(metrics["r1"]) == pytest.approx(60.0)
    assert float(metrics["r2"]) == pytest.approx(16.0)
    assert float(metrics["d_loss"]) == pytest.approx((softplus(-7.0) + softplus(-7.0)) / 2)

    def total(w):  # R3GAN's D loss by hand: the penalties in closed form, gamma / 2 each
        def d(x):
            return jnp.sum(w * x ** 2, axis=(1, 2, 3))

        def penalty(x):
            return jnp.mean(jnp.sum((2 * w * x) ** 2, axis=(1, 2, 3)))
        return (jnp.mean(jax.nn.softplus(-(d(REAL) - d(FAKE))))
                + 2.0 / 2 * penalty(REAL) + 0.5 / 2 * penalty(FAKE))
    expected = params["w"] - jax.grad(total)(params["w"])  # SGD with rate 1
    np.testing.assert_allclose(new_params["w"], expected, rtol=1e-6)


def test_lazy_penalties_skip_the_updates_between():
    opts = StepOptions(loss="rpgan", ema_decay=0.0, mode_seeking=0.0, r1_gamma=2.0,
                       r2_gamma=0.5, penalty_every=2)
    _, (_, metrics) = d_update(opts, d_index=1)
    assert float(metrics["r1"]) == 0.0 and float(metrics["r2"]) == 0.0


def test_generator_loss_pairs_each_fake_with_its_real():
    opts = StepOptions(loss="rpgan", ema_decay=0.0, mode_seeking=0.0)
    gan = GAN(None, Quadratic(), None, None, (1, 2, 1), 0, 1)
    params = {"w": jnp.array([1.0, 2.0]).reshape(1, 1, 2)}
    loss, _ = generator_loss(gan, opts, DiscriminatorState(params, {}, None, {}),
                             Batch(REAL, LABELS, FAKE, LABELS), None, AugmentSlots({}, {}, {}, {}),
                             1.0)
    assert float(loss) == pytest.approx(softplus(7.0))


class LabelRecordingGenerator(nn.Module):
    """The family's generator, reporting the labels of every batch it makes (host callback)."""
    inner: nn.Module
    report: object  # called with each batch's labels

    def __getattr__(self, name):  # latent_dim etc. as the wrapped generator's
        return getattr(self.inner, name) if name not in ("inner", "report") else super().__getattr__(name)

    @nn.compact
    def __call__(self, z, labels, train=False):
        jax.debug.callback(lambda y: self.report(np.asarray(y)), labels)
        return self.inner(z, labels, train=train)


@pytest.mark.parametrize("loss", ["rpgan", "hinge"])
def test_relativistic_fakes_carry_the_real_labels_and_g_sees_its_own_batch(loss):
    """R3GAN's Trainer: D's fakes are G(z, real_c), and G's update makes new fakes with the
    labels of an independent real batch; the other losses draw random fake labels, once."""
    import dataclasses
    seen, batches = [], []

    def record(gan):
        return dataclasses.replace(gan, generator=LabelRecordingGenerator(gan.generator, seen.append))

    def keep(state, batch):
        batches.append(batch)
        return state, batch
    config = tiny_config(**{"train.loss": loss, "train.mode_seeking": 0.0,
                            "train.batch_size": 8})
    run_step(config, jax.devices()[:1], (16, 16, 1), 10, change_gan=record, prepare=keep)
    (batch,) = batches
    seen = [labels for labels in seen if len(labels) == 8]  # (not init's one-image call)
    if loss == "rpgan":  # the D update's fakes, then G's own (the order of callbacks is free)
        assert len(seen) == 2
        assert sorted(map(tuple, seen)) == sorted([tuple(batch["label"]),
                                                   tuple(batch["g_label"])])
    else:  # one forward, kept for G's update; labels drawn at random
        assert len(seen) == 1 and "g_label" not in batch
        assert tuple(seen[0]) != tuple(batch["label"])


def test_relativistic_d_update_never_sees_the_generator_batch():
    """Changing G's real batch changes G's update and leaves D's bit for bit."""
    config = tiny_config(**{"train.loss": "rpgan", "train.mode_seeking": 0.0,
                            "train.batch_size": 8})
    flipped = lambda state, batch: (state, dict(batch, g_image=-batch["g_image"]))
    runs = [run_step(config, jax.devices()[:1], (16, 16, 1), 10, prepare=prepare)
            for prepare in (None, flipped)]
    for a, b in zip(jax.tree.leaves(runs[0].after.d_params), jax.tree.leaves(runs[1].after.d_params)):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(runs[0].after.g_params),
                                                         jax.tree.leaves(runs[1].after.g_params)))


R3GAN_SCHEDULES = {"train.loss": "rpgan", "train.b1": 0.0, "train.b2": 0.9,
                   "train.r1_gamma": 0.05, "train.r2_gamma": 0.05, "train.r1_every": 1,
                   "train.schedule_kimg": 0.032, "train.final_lr_scale": 0.25,
                   "train.final_gamma_scale": 0.1, "train.final_b2": 0.99,
                   "train.ema_kimg": 0.016, "train.augment": "translation",
                   "train.augment_p": 0.0, "train.final_augment_p": 0.5,
                   "train.mode_seeking": 0.0, "train.batch_size": 8}


def test_schedules_follow_the_step():
    config = config_lib.resolve(tiny_config(**R3GAN_SCHEDULES))
    opts = StepOptions.from_config(config.train)
    half = jnp.asarray(2, jnp.int32)  # 16 of the 32 images: halfway
    assert float(opts.lr_scale(half)) == pytest.approx((1 + 0.25) / 2)
    assert float(opts.scheduled(half, opts.final_gamma_scale)) == pytest.approx((1 + 0.1) / 2)
    assert float(opts.augment_probability(half, {})) == pytest.approx(0.25)
    assert float(opts.ema_decay_at(jnp.asarray(0))) == 0.0  # half-life 0: the EMA is G
    assert float(opts.ema_decay_at(jnp.asarray(4))) == pytest.approx(0.5 ** (8 / 16))
    assert float(opts.lr_scale(jnp.asarray(100))) == pytest.approx(0.25)
    # Adam's beta2 from optax's injected hyper-parameters, one update per 8 images.
    g_tx, _ = make_optimizers(config.train)
    params = {"w": jnp.ones(3)}
    state = g_tx.init(params)
    for _ in range(3):
        _, state = g_tx.update({"w": jnp.ones(3)}, state, params)
    assert float(state.hyperparams["b2"]) == pytest.approx(0.9 + (1 - math.cos(math.pi * 16 / 32))
                                                           / 2 * (0.99 - 0.9), rel=1e-6)


@pytest.mark.parametrize("overrides, message", [
    ({"train.final_lr_scale": 0.25}, "train.final_lr_scale=0.25 is where a schedule ends: set "
                                     "train.schedule_kimg > 0 too"),
    ({"train.schedule_kimg": 10.0, "train.final_lr_scale": 0.5, "train.lr_decay": 0.5},
     "train.lr_decay and train.final_lr_scale both schedule the learning rates: set one"),
    ({"train.final_b2": 1.0}, "config key train.final_b2=1.0 is not allowed: it must be -1 or a "
                              "number >= 0 and < 1")])
def test_bad_schedules_are_one_line_errors(overrides, message):
    with pytest.raises(UserError, match="^" + message.replace(".", r"\.") + "$"):
        config_lib.resolve(tiny_config(**overrides))


def test_trains_resumes_exactly_and_samples(tmp_path):
    config = tiny_config(**{**R3GAN_SCHEDULES, "train.num_steps": 4,
                            "checkpoint.every_steps": 2})
    _, images = assert_trains_resumes_exactly_and_samples(config, tmp_path, labels=3)
    assert images.shape == (3, 16, 16, 1)
