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

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxgan import augment as augment_lib, losses
from jaxgan.models import build_models
from jaxgan.state import GANState, make_optimizers

AXIS = "data"


def make_mesh(devices=None) -> Mesh:
    """A 1-D mesh over `devices` (default: every device of every host) on the axis "data"."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (AXIS,))


def _variables(params, stats):
    return {"params": params, "batch_stats": stats} if stats else {"params": params}


def _all_finite(*trees):
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(trees)]
    return jnp.all(jnp.stack(leaves))


def _ema_update(new, ema, step, decay):
    # Warm-up as in tf.train.ExponentialMovingAverage(num_updates=step): early on the average
    # follows the weights, so short runs do not sample from a blend with the random init.
    decay = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
    return optax.incremental_update(new, ema, step_size=1.0 - decay)


def _local_step(state: GANState, real_x, real_y, z_CBZ, fake_y_CB, shift_C3B2, *, generator,
                discriminator, g_tx, d_tx, loss_kind, ema_decay, mode_seeking, augment):
    """Per-device update; arrays hold this device's part of the batch.

    shift_C3B2: per critic step, DiffAugment shifts for the real batch, the fake batch in the D
    update and the fake batch in the G update (unused unless `augment`).
    """
    seen = (lambda x, shift: augment_lib.translate(x, shift)) if augment else (lambda x, _: x)

    def d_update(d_params, d_stats, d_opt, fake, fake_y, shifts):
        def loss_fn(params):
            real_logits, upd = discriminator.apply(_variables(params, d_stats),
                                                   seen(real_x, shifts[0]), real_y,
                                                   train=True, mutable=["batch_stats"])
            fake_logits, upd = discriminator.apply(_variables(params, upd.get("batch_stats")),
                                                   seen(fake, shifts[1]), fake_y, train=True,
                                                   mutable=["batch_stats"])
            loss = losses.d_loss(loss_kind, real_logits, fake_logits)
            metrics = {"d_loss": loss, "d_real": real_logits.mean(), "d_fake": fake_logits.mean()}
            return loss, (upd.get("batch_stats", {}), metrics)
        (_, (d_stats, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(d_params)
        updates, d_opt = d_tx.update(lax.pmean(grads, AXIS), d_opt, d_params)
        return optax.apply_updates(d_params, updates), d_stats, d_opt, metrics

    def g_forward(g_stats, z, y):
        def fn(params):
            fake, upd = generator.apply(_variables(params, g_stats), z, y, train=True,
                                        mutable=["batch_stats"])
            return fake, upd.get("batch_stats", {})
        return fn

    g_stats, d_params, d_stats, d_opt = state.g_stats, state.d_params, state.d_stats, state.d_opt_state
    n_critic = z_CBZ.shape[0]
    for i in range(n_critic - 1):
        fake, g_stats = g_forward(g_stats, z_CBZ[i], fake_y_CB[i])(state.g_params)
        d_params, d_stats, d_opt, _ = d_update(d_params, d_stats, d_opt,
                                               lax.stop_gradient(fake), fake_y_CB[i],
                                               shift_C3B2[i])

    z, fake_y = z_CBZ[-1], fake_y_CB[-1]
    fake, g_vjp, g_stats = jax.vjp(g_forward(g_stats, z, fake_y), state.g_params, has_aux=True)
    d_params, d_stats, d_opt, d_metrics = d_update(
        d_params, d_stats, d_opt, lax.stop_gradient(fake), fake_y, shift_C3B2[-1])

    def g_loss_of_fake(fake):
        logits, upd = discriminator.apply(_variables(d_params, d_stats),
                                          seen(fake, shift_C3B2[-1, 2]), fake_y, train=True,
                                          mutable=["batch_stats"])
        loss = losses.g_loss(loss_kind, logits)
        if mode_seeking:
            loss = loss + mode_seeking * losses.mode_seeking(fake, z)
        return loss, upd.get("batch_stats", {})
    (g_loss, d_stats), fake_grad = jax.value_and_grad(g_loss_of_fake, has_aux=True)(fake)
    (g_grads,) = g_vjp(fake_grad)
    g_updates, g_opt = g_tx.update(lax.pmean(g_grads, AXIS), state.g_opt_state, state.g_params)
    g_params = optax.apply_updates(state.g_params, g_updates)

    new_state = state.replace(
        step=state.step + 1, g_params=g_params, g_stats=g_stats, d_params=d_params,
        d_stats=d_stats, g_opt_state=g_opt, d_opt_state=d_opt,
        ema_params=_ema_update(g_params, state.ema_params, state.step, ema_decay),
        ema_stats=_ema_update(g_stats, state.ema_stats, state.step, ema_decay))
    # D metrics are those of the last D update, taken before it applied its gradients.
    metrics = lax.pmean({**d_metrics, "g_loss": g_loss}, AXIS)
    metrics["finite"] = _all_finite(metrics, g_params, d_params).astype(jnp.float32)
    return new_state, metrics


def make_train_step(config, mesh: Mesh, image_shape, num_classes: int):
    """The global-view step `(state, batch, key) -> (state, metrics)` (not yet jitted).

    `batch` is {"image": float32 (B, H, W, C) in [-1, 1], "label": int32 (B,)} for the global
    batch B; `key` is this step's key. Labels are ignored when `num_classes == 0`.
    """
    generator, discriminator = build_models(config.model, image_shape, num_classes, axis_name=AXIS)
    g_tx, d_tx = make_optimizers(config.train)
    losses.check_loss(config.train.loss)
    mode_seeking = float(config.train.get("mode_seeking", 0.0))
    augment = config.train.get("augment", "")
    if augment not in ("", "translation"):
        raise ValueError(f"train.augment must be '' or 'translation', got {augment!r}")
    local = functools.partial(_local_step, generator=generator, discriminator=discriminator,
                              g_tx=g_tx, d_tx=d_tx, loss_kind=config.train.loss,
                              ema_decay=config.train.ema_decay, mode_seeking=mode_seeking,
                              augment=augment)
    data, per_critic = P(AXIS), P(None, AXIS)
    sharded = jax.shard_map(local, mesh=mesh,
                            in_specs=(P(), data, data, per_critic, per_critic, P(None, None, AXIS)),
                            out_specs=(P(), P()), check_vma=False)
    n_critic, latent_dim = config.train.n_critic, config.model.latent_dim

    def train_step(state, batch, key):
        batch_size = batch["image"].shape[0]
        z_key, y_key, shift_key = jax.random.split(key, 3)
        z = jax.random.normal(z_key, (n_critic, batch_size, latent_dim), jnp.float32)
        fake_labels = jax.random.randint(y_key, (n_critic, batch_size), 0, max(num_classes, 1))
        if mode_seeking:  # pairs (2k, 2k+1) share a label (pairs never straddle two devices)
            fake_labels = jnp.repeat(fake_labels[:, ::2], 2, axis=1)
        shifts = (augment_lib.draw_shifts(shift_key, (n_critic, 3, batch_size), image_shape[0])
                  if augment else jnp.zeros((n_critic, 3, batch_size, 2), jnp.int32))
        return sharded(state, batch["image"], batch["label"], z, fake_labels, shifts)
    return train_step


def draw_batch(data, key, batch_size: int, mesh: Mesh, random_flip: bool = False):
    """A batch drawn (with replacement) from a device-resident data set, inside the jitted step.

    `data` is {"image": uint8 (N, H, W, C), "label": int32 (N,)}, replicated on every device.
    """
    index_key, flip_key = jax.random.split(key)
    index = jax.random.randint(index_key, (batch_size,), 0, data["label"].shape[0])
    index = lax.with_sharding_constraint(index, NamedSharding(mesh, P(AXIS)))
    images = (data["image"][index].astype(jnp.float32) - 127.5) / 127.5  # exactly [-1, 1]
    if random_flip:
        flip = jax.random.bernoulli(flip_key, 0.5, (batch_size, 1, 1, 1))
        images = jnp.where(flip, images[:, :, ::-1], images)
    return {"image": images, "label": data["label"][index]}


def make_device_data_runner(config, mesh: Mesh, image_shape, num_classes: int):
    """`run(state, data, base_key, num_steps) -> (state, mean metrics)`, state donated.

    Each step uses the key `fold_in(base_key, state.step)` and a batch drawn on the device: no
    host round-trip between steps. With `train.steps_per_call > 1` the steps run as a `fori_loop`
    inside one dispatch (a traced count: one compilation serves every count), which saves dispatch
    overhead on accelerators; with 1, each step is its own jitted call (dispatched ahead, without
    waiting). On a 2-core CPU a step inside the loop measured 16-45x slower than the same step
    alone (XLA:CPU leaves the loop's gradient convolutions in slow layouts; jax-ml/jax#12868), so
    the configs use 1 and training warns about more on a CPU.
    """
    train_step = make_train_step(config, mesh, image_shape, num_classes)
    batch_size, random_flip = config.train.batch_size, config.data.random_flip

    def one_step(state, data, base_key):
        data_key, step_key = jax.random.split(jax.random.fold_in(base_key, state.step))
        return train_step(state, draw_batch(data, data_key, batch_size, mesh, random_flip),
                          step_key)

    def many_steps(state, data, base_key, num_steps):
        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                             jax.eval_shape(one_step, state, data, base_key)[1])

        def body(_, carry):
            state, sums = carry
            state, metrics = one_step(state, data, base_key)
            return state, jax.tree.map(jnp.add, sums, metrics)
        state, sums = lax.fori_loop(0, num_steps, body, (state, zeros))
        return state, jax.tree.map(lambda s: s / num_steps, sums)

    if config.train.steps_per_call > 1:
        multi = jax.jit(many_steps, donate_argnums=0)
        return lambda state, data, base_key, num_steps: multi(state, data, base_key,
                                                              jnp.int32(num_steps))
    # One path or the other for every step of a run, never both: a step inside the loop and the
    # same step alone need not agree to the last bit, and resumes must be bit-exact.
    single = jax.jit(one_step, donate_argnums=0)
    return lambda state, data, base_key, num_steps: run_one_by_one(
        lambda state, _: single(state, data, base_key), state, int(num_steps))


def run_one_by_one(step_fn, state, num_steps: int):
    """`step_fn(state, i) -> (state, metrics)` for i in range(num_steps), each dispatched without
    waiting; returns the final state and the metrics averaged over the steps (on the device)."""
    total = None
    for i in range(num_steps):
        state, metrics = step_fn(state, i)
        total = metrics if total is None else jax.tree.map(jnp.add, total, metrics)
    return state, jax.tree.map(lambda v: v / num_steps, total)
