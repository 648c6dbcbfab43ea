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
from jaxgan.training import augment as augment_lib, losses, schedules
from jaxgan.training.state import GAN, GANState, aux_of


@dataclasses.dataclass(frozen=True)
class StepOptions:
    """The parts of `config.train` the per-device update needs (static under jit)."""
    loss: str
    ema_decay: float
    mode_seeking: float
    augment: tuple[str, ...] = ()   # DiffAugment policy
    augment_p: float = 1.0          # its probability per operation and image (the start if adaptive)
    ada_target: float = 0.0         # > 0: adaptive p (ADA)
    ada_kimg: float = 100.0
    r1_gamma: float = 0.0
    r2_gamma: float = 0.0
    r1_every: int = 1               # the lazy interval of both penalties
    lecam: float = 0.0
    batch_size: int = 0             # global batch (ADA and the schedules count images)
    decay_from: int = 0             # learning rates fall linearly to 0 from this step ...
    decay_until: int = 0            # ... to this one (train.num_steps); equal: constant
    schedule_images: float = 0.0    # > 0: R3GAN's cosine schedules over this many images ...
    final_lr_scale: float = 1.0     # ... to these ends
    final_gamma_scale: float = 1.0
    final_augment_p: float = -1.0   # -1: augment_p throughout
    ema_images: float = 0.0         # > 0: G's EMA half-life in images (R3GAN), not ema_decay
    n_critic: int = 1               # D updates per step

    @classmethod
    def from_config(cls, train) -> "StepOptions":
        return cls(
            loss=train.loss, ema_decay=train.ema_decay, mode_seeking=float(train.mode_seeking),
            augment=augment_lib.parse_policy(train.augment), augment_p=float(train.augment_p),
            ada_target=float(train.ada_target), ada_kimg=float(train.ada_kimg),
            r1_gamma=float(train.r1_gamma), r2_gamma=float(train.r2_gamma),
            r1_every=int(train.r1_every), lecam=float(train.lecam),
            batch_size=int(train.batch_size),
            decay_from=round(train.num_steps * (1.0 - train.lr_decay)),
            decay_until=int(train.num_steps), schedule_images=1000.0 * train.schedule_kimg,
            final_lr_scale=float(train.final_lr_scale),
            final_gamma_scale=float(train.final_gamma_scale),
            final_augment_p=float(train.final_augment_p), ema_images=1000.0 * train.ema_kimg,
            n_critic=int(train.n_critic))

    @property
    def adaptive(self) -> bool:
        return bool(self.augment) and self.ada_target > 0

    def seen(self, x_BHWC, numbers, p):
        """What D sees of a batch: DiffAugment-ed when a policy is set."""
        return augment_lib.apply(x_BHWC, numbers, self.augment, p) if self.augment else x_BHWC

    def images(self, step):
        """Images trained on before `step` (what R3GAN's schedules are functions of)."""
        return step.astype(jnp.float32) * self.batch_size

    def scheduled(self, step, final, start=1.0):
        """`start` ramped to `final` (schedules.cosine_ramp); a Python float where constant."""
        if not self.schedule_images or final == start:
            return start
        return schedules.cosine_ramp(self.images(step), self.schedule_images, start, final)

    def augment_probability(self, step, aux):
        if "augment_p" in aux:  # adaptive (ADA)
            return aux["augment_p"]
        if self.final_augment_p == -1.0:
            return self.augment_p
        return self.scheduled(step, self.final_augment_p, self.augment_p)

    def ema_decay_at(self, step):
        if not self.ema_images:
            return self.ema_decay
        half_life = (self.ema_images if not self.schedule_images else
                     schedules.cosine_ramp(self.images(step), self.schedule_images, 0.0,
                                           self.ema_images))
        return schedules.ema_beta(self.batch_size, half_life)

    def lr_scale(self, step):
        """The learning rates' factor at `step` (train.lr_decay, or R3GAN's cosine schedule).
        Adam's update is linear in its rate, so scaling the update is the schedule, with optax's
        state unchanged: a run trained with a constant rate resumes with a decay and the other
        way round."""
        if self.final_lr_scale != 1.0:
            return self.scheduled(step, self.final_lr_scale)
        if self.decay_until <= self.decay_from:
            return 1.0
        left = (self.decay_until - step) / (self.decay_until - self.decay_from)
        return jnp.clip(left, 0.0, 1.0).astype(jnp.float32)


def scaled(updates, scale):
    return updates if isinstance(scale, float) else jax.tree.map(lambda u: u * scale, updates)


def all_finite(*trees):
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(trees)]
    return jnp.all(jnp.stack(leaves))


def ema_update(new, ema, step, decay, warm_up=True):
    # Warm-up as in tf.train.ExponentialMovingAverage(num_updates=step): early on the average
    # follows the weights, so short runs do not sample from a blend with the random init.
    # (R3GAN's half-life schedule starts at 0 instead: no warm-up.)
    if warm_up:
        decay = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
    return optax.incremental_update(new, ema, step_size=1.0 - decay)


def take(numbers: dict, index):
    """The augmentation numbers of one batch out of a dict of (..., B, ...) arrays."""
    return jax.tree.map(lambda x: x[index], numbers)


def discriminator_update(gan: GAN, opts: StepOptions, d_params, d_stats, d_opt, aux, real_x,
                         real_y, fake, fake_y, aug_3, p, d_index, lr_scale=1.0, gamma_scale=1.0):
    """One D update on this device's part of the batch (gradients averaged over all devices).

    Returns (d_params, d_stats, d_opt, aux, metrics); metrics are taken before the update.
    aug_3: DiffAugment numbers for the real batch, the fake batch and (unused here) G's batch;
    p: the augmentation probability; d_index: how many D updates came before this one (for the
    lazy R1 interval and LeCam's first average); lr_scale, gamma_scale: the learning rate's and
    the penalties' factors (their schedules). `aux` holds LeCam's moving averages.

    The relativistic loss (R3GAN) takes R1 and R2 with respect to the images before augmentation,
    through it, as R3GAN (and StyleGAN2-ADA) do; the older losses keep R1 on the augmented real
    images, as their workdirs were trained."""
    reconstructs = reconstructs_reals(gan)
    through_augment = opts.loss == "rpgan"

    def real_logits_fn(params, x):
        """(logits, (new BatchNorm statistics, self-supervised reconstruction loss or 0))."""
        quadrant = {"quadrant_B": take(aug_3, 0)["quadrant"]} if reconstructs else {}
        out, upd = gan.discriminator.apply(variables(params, d_stats), x, real_y, train=True,
                                           mutable=["batch_stats"], **quadrant)
        logits, reconstruction = out if reconstructs else (out, jnp.zeros((), jnp.float32))
        return logits, (upd.get("batch_stats", {}), reconstruction)

    def fake_logits_fn(params, stats, x):
        out, upd = gan.discriminator.apply(variables(params, stats), x, fake_y, train=True,
                                           mutable=["batch_stats"])
        return out, upd.get("batch_stats", {})

    def penalised(logits_fn, x, aug, gamma, now):
        """(zero-centred gradient penalty on x if `now` (a bool, or a traced one) and gamma > 0,
        else 0; logits; aux)."""
        def of_x(x_):
            return logits_fn(opts.seen(x_, aug, p) if through_augment else x_)
        if not through_augment:
            x = opts.seen(x, aug, p)

        def without():
            return (jnp.zeros((), jnp.float32),) + of_x(x)
        if not gamma or now is False:
            return without()
        if now is True:
            return losses.r1_penalty(of_x, x)
        return lax.cond(now, lambda: losses.r1_penalty(of_x, x), without)

    def forward(params, now):
        """D on the real and the fake batch: (r1, r2, real logits, fake logits, statistics,
        reconstruction loss); the penalties only `now`."""
        r1, real_logits, (stats, reconstruction) = penalised(
            functools.partial(real_logits_fn, params), real_x, take(aug_3, 0), opts.r1_gamma,
            now)
        r2, fake_logits, stats = penalised(functools.partial(fake_logits_fn, params, stats), fake,
                                           take(aug_3, 1), opts.r2_gamma, now)
        return r1, r2, real_logits, fake_logits, stats, reconstruction

    def loss_fn(params):
        now = True if opts.r1_every == 1 else d_index % opts.r1_every == 0
        weight = 1.0
        if opts.n_critic > 1 and now is not True:
            # Several D updates in one program, each with its own lax.cond holding BatchNorm's
            # all-reduces: on 8 CPU devices the program gave a different result run to run
            # (n_critic 2 + R1, jax 0.10.2), as two conditionals did below. So with several
            # updates the penalties are computed on every update and weighted 0 when not due:
            # the same mathematics, without the lazy interval's saving.
            weight, now = jnp.asarray(now, jnp.float32), True
        if opts.r2_gamma:
            # One conditional for both penalties: with two, each holding BatchNorm's all-reduces,
            # 8 CPU devices gave a different result run to run (R1 + R2 + translation, jax 0.10.2).
            outputs = lax.cond(now, lambda: forward(params, True), lambda: forward(params, False))
        else:
            outputs = forward(params, now)  # R1 alone: the program of earlier jaxgan versions
        r1, r2, real_logits, fake_logits, stats, reconstruction = outputs
        if not isinstance(weight, float):
            r1, r2 = r1 * weight, r2 * weight
        loss = losses.d_loss(opts.loss, real_logits, fake_logits)
        metrics = {"d_loss": loss, "d_real": real_logits.mean(), "d_fake": fake_logits.mean()}
        if reconstructs:  # FastGAN's self-supervised decoders, on real images only
            loss = loss + reconstruction
            metrics["reconstruction"] = reconstruction
        new_aux = dict(aux)
        # Lazy regularisation (StyleGAN2): every r1_every-th update, r1_every times the weight.
        if opts.r1_gamma:
            loss = loss + 0.5 * (opts.r1_gamma * gamma_scale) * opts.r1_every * r1
            metrics["r1"] = r1
        if opts.r2_gamma:
            loss = loss + 0.5 * (opts.r2_gamma * gamma_scale) * opts.r1_every * r2
            metrics["r2"] = r2
        if opts.lecam:
            means = lax.pmean(lax.stop_gradient((real_logits.mean(), fake_logits.mean())), AXIS)
            new_aux["lecam_real"], new_aux["lecam_fake"] = losses.lecam_update(
                aux["lecam_real"], aux["lecam_fake"], *means, first=d_index == 0)
            regulariser = losses.lecam(real_logits, fake_logits, new_aux["lecam_real"],
                                       new_aux["lecam_fake"])
            loss = loss + opts.lecam * regulariser
            metrics["lecam"] = regulariser
        metrics["real_sign"] = jnp.mean(jnp.sign(real_logits))
        return loss, (stats, new_aux, metrics)
    (_, (d_stats, aux, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(d_params)
    updates, d_opt = gan.d_tx.update(lax.pmean(grads, AXIS), d_opt, d_params)
    return optax.apply_updates(d_params, scaled(updates, lr_scale)), d_stats, d_opt, aux, metrics


def reconstructs_reals(gan: GAN) -> bool:
    """Whether D is trained to reconstruct real images too (jaxgan.models: `reconstructs`)."""
    return getattr(gan.discriminator, "reconstructs", False)


def generator_forward(gan: GAN, g_stats, z_BZ, y_B):
    """params -> (fake images, new BatchNorm statistics), in training mode."""
    def forward(params):
        fake, upd = gan.generator.apply(variables(params, g_stats), z_BZ, y_B, train=True,
                                        mutable=["batch_stats"])
        return fake, upd.get("batch_stats", {})
    return forward


def generator_loss(gan: GAN, opts: StepOptions, d_params, d_stats, z_BZ, y_B, aug, p, real,
                   fake):
    """G's loss as a function of its fake batch: (loss, D's new BatchNorm statistics).
    `real`: (images, labels, augmentation numbers) of the real batch, which the relativistic
    loss pairs with the fakes (D sees them, freshly augmented, after the fakes, as R3GAN)."""
    logits, upd = gan.discriminator.apply(variables(d_params, d_stats), opts.seen(fake, aug, p),
                                          y_B, train=True, mutable=["batch_stats"])
    real_logits = None
    if opts.loss == "rpgan":
        real_x, real_y, real_aug = real
        real_logits, upd = gan.discriminator.apply(
            variables(d_params, upd.get("batch_stats", {})), opts.seen(real_x, real_aug, p),
            real_y, train=True, mutable=["batch_stats"])
    loss = losses.g_loss(opts.loss, logits, real_logits)
    if opts.mode_seeking:
        loss = loss + opts.mode_seeking * losses.mode_seeking(fake, z_BZ)
    return loss, upd.get("batch_stats", {})


def local_step(state: GANState, real_x, real_y, z_KBZ, fake_y_KB, aug_K3B, *, gan: GAN,
               opts: StepOptions):
    """Per-device update; arrays hold this device's part of the batch. K = D updates per step.

    aug_K3B: per D update, DiffAugment numbers (augment.draw) for the real batch, the fake batch
    in the D update and the fake batch in the G update (unused without a policy)."""
    g_stats, d_params, d_stats, d_opt = state.g_stats, state.d_params, state.d_stats, state.d_opt_state
    aux = aux_of(state)
    p = opts.augment_probability(state.step, aux)
    num_critic = z_KBZ.shape[0]
    d_update = functools.partial(discriminator_update, gan, opts,
                                 lr_scale=opts.lr_scale(state.step),
                                 gamma_scale=opts.scheduled(state.step, opts.final_gamma_scale))
    for k in range(num_critic - 1):
        fake, g_stats = generator_forward(gan, g_stats, z_KBZ[k], fake_y_KB[k])(state.g_params)
        d_params, d_stats, d_opt, aux, _ = d_update(
            d_params, d_stats, d_opt, aux, real_x, real_y, lax.stop_gradient(fake), fake_y_KB[k],
            take(aug_K3B, k), p, state.step * num_critic + k)

    # The G update reuses the last D update's fake batch; its forward pass is kept as a VJP.
    z, fake_y, aug_3 = z_KBZ[-1], fake_y_KB[-1], take(aug_K3B, -1)
    fake, g_vjp, g_stats = jax.vjp(generator_forward(gan, g_stats, z, fake_y), state.g_params,
                                   has_aux=True)
    d_params, d_stats, d_opt, aux, d_metrics = d_update(
        d_params, d_stats, d_opt, aux, real_x, real_y, lax.stop_gradient(fake), fake_y, aug_3, p,
        state.step * num_critic + num_critic - 1)
    # (slot 3: the real batch's augmentation in the G update, drawn only for rpgan)
    real = (real_x, real_y, take(aug_3, 3) if opts.loss == "rpgan" else None)
    g_loss_of_fake = functools.partial(generator_loss, gan, opts, d_params, d_stats, z, fake_y,
                                       take(aug_3, 2), p, real)
    (g_loss, d_stats), fake_grad = jax.value_and_grad(g_loss_of_fake, has_aux=True)(fake)
    (g_grads,) = g_vjp(fake_grad)
    g_updates, g_opt = gan.g_tx.update(lax.pmean(g_grads, AXIS), state.g_opt_state, state.g_params)
    g_params = optax.apply_updates(state.g_params, scaled(g_updates, opts.lr_scale(state.step)))

    # D metrics are those of the last D update, taken before it applied its gradients.
    metrics = lax.pmean({**d_metrics, "g_loss": g_loss}, AXIS)
    real_sign = metrics.pop("real_sign")
    if opts.adaptive:
        aux["augment_p"] = augment_lib.adapt_probability(
            p, real_sign, opts.ada_target, num_critic * opts.batch_size, opts.ada_kimg)
        metrics.update(augment_p=p, real_sign=real_sign)
    ema_decay, warm_up = opts.ema_decay_at(state.step), not opts.ema_images
    new_state = state.replace(
        step=state.step + 1, g_params=g_params, g_stats=g_stats, d_params=d_params,
        d_stats=d_stats, g_opt_state=g_opt, d_opt_state=d_opt,
        ema_params=ema_update(g_params, state.ema_params, state.step, ema_decay, warm_up),
        ema_stats=ema_update(g_stats, state.ema_stats, state.step, ema_decay, warm_up),
        **({"aux": aux} if aux else {}))
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
        z_key, y_key, augment_key = jax.random.split(key, 3)
        z = jax.random.normal(z_key, (n_critic, batch_size, gan.latent_dim), jnp.float32)
        fake_labels = jax.random.randint(y_key, (n_critic, batch_size), 0, max(num_classes, 1))
        if opts.mode_seeking:  # pairs (2k, 2k+1) share a label (pairs never straddle two devices)
            fake_labels = jnp.repeat(fake_labels[:, ::2], 2, axis=1)
        # For the global batch, so that 1 device and N devices augment the same way.
        slots = 4 if opts.loss == "rpgan" else 3  # see local_step
        numbers = augment_lib.draw(augment_key, opts.augment, (n_critic, slots, batch_size),
                                   gan.image_shape[0])
        if reconstructs_reals(gan):  # which quadrant of each real image D reconstructs
            numbers["quadrant"] = jax.random.randint(jax.random.fold_in(augment_key, 4),
                                                     (n_critic, 3, batch_size), 0, 4)
        return sharded(state, batch["image"], batch["label"], z, fake_labels, numbers)
    return train_step
