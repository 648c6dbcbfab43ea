"""train.class_loss (P2GAN, Han et al. 2021): D's projection head read as a classifier of the
real images, and G's images pushed to be classified as their labels; hand-computed on a toy D,
off without classes. (The head's scores in every family: tests/test_families.py, which also
runs the class loss through the 1 = 8 devices check.)"""
import json
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
import pytest
from jax.sharding import PartitionSpec as P
from conftest import tiny_config

import jaxgan
from jaxgan.errors import UserError
from jaxgan.mesh import make_mesh
from jaxgan.models.norms import projection
from jaxgan.training.state import GAN
from jaxgan.training.step import (AugmentSlots, Batch, DiscriminatorState, Scales, StepOptions,
                                  discriminator_update, generator_loss)


def softplus(x):
    return math.log(1.0 + math.exp(x))


class Toy(nn.Module):
    """Two pixels are the features phi; the projection table is the identity (2 classes), so
    class k's score is phi_k and D(x, y) = phi_0 + phi_1 + phi_y."""

    @nn.compact
    def __call__(self, x, labels, train=False):
        features_BC = x.reshape(x.shape[0], 2)
        embed = nn.Embed(2, 2, embedding_init=lambda *_: jnp.eye(2), name="projection")
        return features_BC.sum(-1) + projection(self, embed, labels, features_BC), jnp.zeros(())


REAL = jnp.array([[1.0, 2.0], [3.0, -1.0]]).reshape(2, 1, 1, 2)
FAKE = jnp.array([[0.0, 1.0], [2.0, 0.0]]).reshape(2, 1, 1, 2)
REAL_Y = jnp.array([1, 0])
FAKE_Y = jnp.array([1, 1])
PARAMS = {"projection": {"embedding": jnp.eye(2)}}


def test_d_learns_to_classify_the_real_images():
    opts = StepOptions(loss="hinge", ema_decay=0.0, mode_seeking=0.0, class_loss=0.5)
    gan = GAN(None, Toy(), None, optax.sgd(1.0), (1, 2, 1), 2, 1)

    def run(params):
        return discriminator_update(
            gan, opts, DiscriminatorState(params, {}, gan.d_tx.init(params), {}),
            Batch(REAL, REAL_Y, FAKE, FAKE_Y), AugmentSlots({}, {}, {}, {}),
            Scales(augment_p=1.0, lr=1.0, gamma=1.0), 0)[1]
    metrics = jax.jit(jax.shard_map(run, mesh=make_mesh(jax.devices()[:1]), in_specs=P(),
                                    out_specs=P(), check_vma=False))(PARAMS)
    # cross-entropy of scores (1, 2) for class 1 and (3, -1) for class 0, the real labels
    # (the fake ones would give softplus(1) for the first)
    assert float(metrics["d_class"]) == pytest.approx((softplus(-1.0) + softplus(-4.0)) / 2,
                                                      rel=1e-6)
    # D's adversarial loss is unchanged by it: hinge on D(real) = 5, 5 and D(fake) = 2, 2
    assert float(metrics["d_loss"]) == pytest.approx(0.0 + (3.0 + 3.0) / 2, rel=1e-6)


@pytest.mark.parametrize("weight", [0.0, 0.5])
def test_g_makes_images_classified_as_their_labels(weight):
    opts = StepOptions(loss="non_saturating", ema_decay=0.0, mode_seeking=0.0, class_loss=weight)
    gan = GAN(None, Toy(), None, None, (1, 2, 1), 2, 1)
    loss, (_, metrics) = generator_loss(gan, opts, DiscriminatorState(PARAMS, {}, None, {}),
                                        Batch(REAL, REAL_Y, FAKE, FAKE_Y), None,
                                        AugmentSlots({}, {}, {}, {}), 1.0)
    # D(fake, 1) = 2 for both; class-1 cross-entropy of scores (0, 1) and (2, 0)
    cross_entropy = (softplus(-1.0) + softplus(2.0)) / 2
    assert float(loss) == pytest.approx(softplus(-2.0) + weight * cross_entropy, rel=1e-6)
    assert set(metrics) == ({"g_class"} if weight else set())


class Unprojected(nn.Module):
    """A conditional D whose head sows no class scores."""

    @nn.compact
    def __call__(self, x, labels, train=False):
        embed = nn.Embed(2, 2, embedding_init=lambda *_: jnp.eye(2), name="projection")
        features_BC = x.reshape(x.shape[0], 2)
        return features_BC.sum(-1) + jnp.sum(embed(labels) * features_BC, -1), jnp.zeros(())


def test_a_discriminator_without_class_scores_is_one_line():
    opts = StepOptions(loss="hinge", ema_decay=0.0, mode_seeking=0.0, class_loss=0.3)
    gan = GAN(None, Unprojected(), None, None, (1, 2, 1), 2, 1)
    with pytest.raises(UserError, match="^train.class_loss reads D's class scores, and this "
                       "family's discriminator sows none .*: set train.class_loss=0$"):
        generator_loss(gan, opts, DiscriminatorState(PARAMS, {}, None, {}),
                       Batch(REAL, REAL_Y, FAKE, FAKE_Y), None, AugmentSlots({}, {}, {}, {}), 1.0)


def test_off_without_classes(tmp_path, capsys):
    # The digits default sets it; an unconditional run of that config trains without it and
    # says so (labels are dropped the same way), rather than refusing the default config.
    config = tiny_config(**{"train.class_loss": 0.3, "data.conditional": False,
                            "train.num_steps": 2, "train.log_every_steps": 1})
    jaxgan.train_and_evaluate(config, str(tmp_path))
    out = capsys.readouterr().out
    assert "Note: train.class_loss=0.3 is off: the data has no classes for D to learn." in out
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert logged and not any("d_class" in row or "g_class" in row for row in logged)
