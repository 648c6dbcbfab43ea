"""The pure GAN train step and its data-parallel (shard_map) wrapper.

`train_step(state, batch, key) -> (state, metrics)` is a global-view function: it draws every
random number from `key` for the global batch (so a step gives the same result on 1 or N devices),
then runs the per-device update under `jax.shard_map` over the mesh axis "data": the batch is
split over devices, BatchNorm statistics are taken over the global batch (`axis_name="data"`),
and gradients are averaged with `lax.pmean` (pmap-style SPMD, `check_vma=False`).

One step, as in the PyTorch DCGAN example: n_critic discriminator updates, then one generator
update that reuses the last discriminator update's fake batch (its generator forward is kept as a
VJP, so G runs forward once per D update), then the EMA update of G.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax
from jax import lax
from jax.sharding import Mesh, PartitionSpec as P

from jaxgan.mesh import AXIS
from jaxgan.models import variables
from jaxgan.training import augment as augment_lib, losses
from jaxgan.training.state import GAN, GANState


@dataclasses.dataclass(frozen=True)
class StepOptions:
    """The parts of `config.train` the per-device update needs (static under jit)."""
    loss: str
    ema_decay: float
    mode_seeking: float
    augment: bool

    @classmethod
    def from_config(cls, train_config) -> "StepOptions":
        return cls(train_config.loss, train_config.ema_decay, float(train_config.mode_seeking),
                   train_config.augment == "translation")

    def seen(self, x_BHWC, shift_B2):
        """What D sees of a batch: DiffAugment-shifted when `augment`."""
        return augment_lib.translate(x_BHWC, shift_B2) if self.augment else x_BHWC


def all_finite(*trees):
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(trees)]
    return jnp.all(jnp.stack(leaves))


def ema_update(new, ema, step, decay):
    # Warm-up as in tf.train.ExponentialMovingAverage(num_updates=step): early on the average
    # follows the weights, so short runs do not sample from a blend with the random init.
    decay = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
    return optax.incremental_update(new, ema, step_size=1.0 - decay)


def discriminator_update(gan: GAN, opts: StepOptions, d_params, d_stats, d_opt, real_x, real_y,
                         fake, fake_y, shifts_3B2):
    """One D update on this device's part of the batch (gradients averaged over all devices).

    Returns (d_params, d_stats, d_opt, metrics); metrics are taken before the update.
    shifts_3B2: DiffAugment shifts for the real batch and the fake batch (the third is G's)."""
    def loss_fn(params):
        real_logits, upd = gan.discriminator.apply(variables(params, d_stats),
                                                   opts.seen(real_x, shifts_3B2[0]), real_y,
                                                   train=True, mutable=["batch_stats"])
        fake_logits, upd = gan.discriminator.apply(variables(params, upd.get("batch_stats")),
                                                   opts.seen(fake, shifts_3B2[1]), fake_y,
                                                   train=True, mutable=["batch_stats"])
        loss = losses.d_loss(opts.loss, real_logits, fake_logits)
        metrics = {"d_loss": loss, "d_real": real_logits.mean(), "d_fake": fake_logits.mean()}
        return loss, (upd.get("batch_stats", {}), metrics)
    (_, (d_stats, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(d_params)
    updates, d_opt = gan.d_tx.update(lax.pmean(grads, AXIS), d_opt, d_params)
    return optax.apply_updates(d_params, updates), d_stats, d_opt, metrics


def generator_forward(gan: GAN, g_stats, z_BZ, y_B):
    """params -> (fake images, new BatchNorm statistics), in training mode."""
    def forward(params):
        fake, upd = gan.generator.apply(variables(params, g_stats), z_BZ, y_B, train=True,
                                        mutable=["batch_stats"])
        return fake, upd.get("batch_stats", {})
    return forward


def generator_loss(gan: GAN, opts: StepOptions, d_params, d_stats, z_BZ, y_B, shift_B2, fake):
    """G's loss as a function of its fake batch: (loss, D's new BatchNorm statistics)."""
    logits, upd = gan.discriminator.apply(variables(d_params, d_stats), opts.seen(fake, shift_B2),
                                          y_B, train=True, mutable=["batch_stats"])
    loss = losses.g_loss(opts.loss, logits)
    if opts.mode_seeking:
        loss = loss + opts.mode_seeking * losses.mode_seeking(fake, z_BZ)
    return loss, upd.get("batch_stats", {})


def local_step(state: GANState, real_x, real_y, z_KBZ, fake_y_KB, shift_K3B2, *, gan: GAN,
               opts: StepOptions):
    """Per-device update; arrays hold this device's part of the batch. K = D updates per step.

    shift_K3B2: per D update, DiffAugment (dy, dx) shifts for the real batch, the fake batch
    in the D update and the fake batch in the G update (unused unless `opts.augment`)."""
    g_stats, d_params, d_stats, d_opt = state.g_stats, state.d_params, state.d_stats, state.d_opt_state
    d_update = functools.partial(discriminator_update, gan, opts)
    for k in range(z_KBZ.shape[0] - 1):
        fake, g_stats = generator_forward(gan, g_stats, z_KBZ[k], fake_y_KB[k])(state.g_params)
        d_params, d_stats, d_opt, _ = d_update(d_params, d_stats, d_opt, real_x, real_y,
                                               lax.stop_gradient(fake), fake_y_KB[k], shift_K3B2[k])

    # The G update reuses the last D update's fake batch; its forward pass is kept as a VJP.
    z, fake_y = z_KBZ[-1], fake_y_KB[-1]
    fake, g_vjp, g_stats = jax.vjp(generator_forward(gan, g_stats, z, fake_y), state.g_params,
                                   has_aux=True)
    d_params, d_stats, d_opt, d_metrics = d_update(d_params, d_stats, d_opt, real_x, real_y,
                                                   lax.stop_gradient(fake), fake_y, shift_K3B2[-1])
    g_loss_of_fake = functools.partial(generator_loss, gan, opts, d_params, d_stats, z, fake_y,
                                       shift_K3B2[-1, 2])
    (g_loss, d_stats), fake_grad = jax.value_and_grad(g_loss_of_fake, has_aux=True)(fake)
    (g_grads,) = g_vjp(fake_grad)
    g_updates, g_opt = gan.g_tx.update(lax.pmean(g_grads, AXIS), state.g_opt_state, state.g_params)
    g_params = optax.apply_updates(state.g_params, g_updates)

    new_state = state.replace(
        step=state.step + 1, g_params=g_params, g_stats=g_stats, d_params=d_params,
        d_stats=d_stats, g_opt_state=g_opt, d_opt_state=d_opt,
        ema_params=ema_update(g_params, state.ema_params, state.step, opts.ema_decay),
        ema_stats=ema_update(g_stats, state.ema_stats, state.step, opts.ema_decay))
    # D metrics are those of the last D update, taken before it applied its gradients.
    metrics = lax.pmean({**d_metrics, "g_loss": g_loss}, AXIS)
    metrics["finite"] = all_finite(metrics, g_params, d_params).astype(jnp.float32)
    return new_state, metrics


def make_train_step(gan: GAN, train_config, mesh: Mesh):
    """The global-view step `(state, batch, key) -> (state, metrics)` (not yet jitted).

    `batch` is {"image": float32 (B, H, W, C) in [-1, 1], "label": int32 (B,)} for the global
    batch B; `key` is this step's key. Labels are ignored when the model is unconditional.
    """
    opts = StepOptions.from_config(train_config)
    local = functools.partial(local_step, gan=gan, opts=opts)
    data, per_critic = P(AXIS), P(None, AXIS)
    sharded = jax.shard_map(local, mesh=mesh,
                            in_specs=(P(), data, data, per_critic, per_critic, P(None, None, AXIS)),
                            out_specs=(P(), P()), check_vma=False)
    n_critic, num_classes = train_config.n_critic, gan.num_classes

    def train_step(state, batch, key):
        batch_size = batch["image"].shape[0]
        z_key, y_key, shift_key = jax.random.split(key, 3)
        z = jax.random.normal(z_key, (n_critic, batch_size, gan.latent_dim), jnp.float32)
        fake_labels = jax.random.randint(y_key, (n_critic, batch_size), 0, max(num_classes, 1))
        if opts.mode_seeking:  # pairs (2k, 2k+1) share a label (pairs never straddle two devices)
            fake_labels = jnp.repeat(fake_labels[:, ::2], 2, axis=1)
        shifts = (augment_lib.draw_shifts(shift_key, (n_critic, 3, batch_size), gan.image_shape[0])
                  if opts.augment else jnp.zeros((n_critic, 3, batch_size, 2), jnp.int32))
        return sharded(state, batch["image"], batch["label"], z, fake_labels, shifts)
    return train_step
