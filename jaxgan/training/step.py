"""The pure GAN train step and its data-parallel (shard_map) wrapper.

`train_step(state, batch, key) -> (state, metrics)` is a global-view function: it draws every
random number from `key` for the global batch (so a step gives the same result on 1 or N devices),
then runs the per-device update under `jax.shard_map` over the mesh axis "data": the batch is
split over devices, BatchNorm statistics are taken over the global batch (`axis_name="data"`),
and gradients are averaged with `lax.pmean` (pmap-style SPMD, `check_vma=False`).

One step, as in the PyTorch DCGAN example: n_critic discriminator updates, then one generator
update that reuses the last discriminator update's fake batch (its generator forward is kept as a
VJP, so G runs forward once per D update), then the EMA update of G.

With R3GAN's relativistic loss (`train.loss="rpgan"`) the step is the official Trainer's instead:
the fakes carry the real batch's labels (the i-th fake is paired with the i-th real image), and
the generator update sees an independent real batch (`batch["g_image"]`, `batch["g_label"]`: the
official loop draws two real batches per iteration) and new fakes made with its labels.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax
from jax.sharding import Mesh, PartitionSpec as P

from jaxgan.errors import UserError
from jaxgan.mesh import AXIS
from jaxgan.models import aux_loss_name, draw_discriminator_numbers, variables
from jaxgan.training import augment as augment_lib, losses, schedules
from jaxgan.training.state import GAN, GANState, aux_of


@dataclasses.dataclass(frozen=True)
class StepOptions:
    """The parts of `config.train` the per-device update needs (static under jit)."""
    loss: str
    ema_decay: float
    mode_seeking: float
    n_critic: int = 1               # D updates per step
    augment: tuple[str, ...] = ()   # DiffAugment policy, or ("ada",): StyleGAN2-ADA's pipeline
    augment_p: float = 1.0          # its probability per operation and image (the start if adaptive)
    ada_target: float = 0.0         # > 0: adaptive p (ADA)
    ada_kimg: float = 100.0
    r1_gamma: float = 0.0
    r2_gamma: float = 0.0
    penalty_every: int = 1          # train.r1_every: the lazy interval of R1 and of R2
    lecam: float = 0.0
    class_loss: float = 0.0         # P2GAN's class loss on D's projection head (0: off)
    batch_size: int = 0             # global batch (ADA and the schedules count images)
    decay_from: int = 0             # learning rates fall linearly to 0 from this step ...
    decay_until: int = 0            # ... to this one (train.num_steps); equal: constant
    schedule_images: float = 0.0    # > 0: R3GAN's cosine schedules over this many images ...
    final_lr_scale: float = 1.0     # ... to these ends
    final_gamma_scale: float = 1.0
    final_augment_p: float = -1.0   # -1: augment_p throughout
    ema_images: float = 0.0         # > 0: G's EMA half-life in images (R3GAN), not ema_decay

    @classmethod
    def from_config(cls, train) -> "StepOptions":
        return cls(
            loss=train.loss, ema_decay=train.ema_decay, n_critic=int(train.n_critic),
            mode_seeking=float(train.mode_seeking),
            augment=augment_lib.parse_policy(train.augment), augment_p=float(train.augment_p),
            ada_target=float(train.ada_target), ada_kimg=float(train.ada_kimg),
            r1_gamma=float(train.r1_gamma), r2_gamma=float(train.r2_gamma),
            penalty_every=int(train.r1_every), lecam=float(train.lecam),
            class_loss=float(train.class_loss),
            batch_size=int(train.batch_size),
            decay_from=round(train.num_steps * (1.0 - train.lr_decay)),
            decay_until=int(train.num_steps), schedule_images=1000.0 * train.schedule_kimg,
            final_lr_scale=float(train.final_lr_scale),
            final_gamma_scale=float(train.final_gamma_scale),
            final_augment_p=float(train.final_augment_p), ema_images=1000.0 * train.ema_kimg)

    @property
    def relativistic(self) -> bool:
        """R3GAN's relativistic pairing: G's loss sees the real batch too (a fourth augmentation
        slot), and the penalties are taken through the augmentation."""
        return self.loss == "rpgan"

    @property
    def adaptive(self) -> bool:
        return bool(self.augment) and self.ada_target > 0

    def seen(self, x_BHWC, numbers, p):
        """What D sees of a batch: augmented when a policy is set."""
        return augment_lib.apply(x_BHWC, numbers, self.augment, p) if self.augment else x_BHWC

    def images_seen(self, step):
        """Images trained on before `step` (what R3GAN's schedules are functions of)."""
        return step.astype(jnp.float32) * self.batch_size

    def scheduled(self, step, final, start=1.0):
        """`start` ramped to `final` (schedules.cosine_ramp); a Python float where constant."""
        if not self.schedule_images or final == start:
            return start
        return schedules.cosine_ramp(self.images_seen(step), self.schedule_images, start, final)

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
                     schedules.cosine_ramp(self.images_seen(step), self.schedule_images, 0.0,
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


class AugmentSlots(NamedTuple):
    """The per-image random numbers of one D update and of the G update after it: augment.draw's,
    named by the batch they augment, and the discriminator's own. In the step they hold
    (n_critic, B, ...) arrays, in an update (B, ...) ones."""
    real: dict        # the real batch in the D update
    fake: dict        # the fake batch in the D update
    fake_in_g: dict   # the fake batch in the G update
    real_in_g: dict   # the real batch in the G update: the relativistic loss's pairs ({} else)
    discriminator: dict = {}  # D's own numbers for the real batch in the D update (its
    #                           draw_numbers, jaxgan.models; {} where it declares none)


class DiscriminatorState(NamedTuple):
    params: Any
    stats: Any        # BatchNorm statistics
    opt_state: Any
    aux: dict         # LeCam's moving averages (and ADA's augment_p, which the step updates)


class Batch(NamedTuple):
    """This device's part of the batch of one update."""
    real_x: Any       # (B, H, W, C)
    real_y: Any       # (B,)
    fake_x: Any       # (B, H, W, C) G's images (in a D update, with no gradient to G)
    fake_y: Any       # (B,)


class Scales(NamedTuple):
    """This step's scheduled factors (StepOptions' schedules): Python floats where constant."""
    augment_p: Any    # the augmentation probability
    lr: Any           # of both learning rates
    gamma: Any        # of both penalties' weights


def at(tree, index):
    """One update's (or one slot's) part of a tree of (K, ...) arrays."""
    return jax.tree.map(lambda x: x[index], tree)


def discriminator_update(gan: GAN, opts: StepOptions, d: DiscriminatorState, batch: Batch,
                         aug: AugmentSlots, scales: Scales, d_index):
    """One D update on this device's part of the batch (gradients averaged over all devices):
    (new DiscriminatorState, metrics taken before the update). `d_index`: how many D updates
    came before this one (the lazy penalties' interval, LeCam's first average)."""
    def loss_fn(params):
        outputs = discriminator_forward(gan, opts, params, d.stats, batch, aug,
                                        scales.augment_p, d_index)
        loss, metrics, aux = discriminator_loss(gan, opts, outputs, d.aux, scales.gamma,
                                                d_index)
        return loss, (outputs.stats, aux, metrics)
    (_, (stats, aux, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(d.params)
    updates, opt_state = gan.d_tx.update(lax.pmean(grads, AXIS), d.opt_state, d.params)
    params = optax.apply_updates(d.params, scaled(updates, scales.lr))
    return DiscriminatorState(params, stats, opt_state, aux), metrics


class DiscriminatorOutputs(NamedTuple):
    r1: Any                # R1: the zero-centred gradient penalty on the real images (0: not now)
    r2: Any                # R2: the same on the fake images
    real_logits: Any
    fake_logits: Any
    stats: Any             # BatchNorm statistics after both batches
    own_loss: Any          # D's own loss on both batches (0 where it has none)
    real_class_loss: Any   # cross-entropy of D's class scores on the real batch (0: class_loss off)


def discriminator_forward(gan, opts: StepOptions, params, stats, batch: Batch, aug: AugmentSlots,
                          p, d_index) -> DiscriminatorOutputs:
    """D on the real and the fake batch, with R1 and R2 on the updates that take them."""
    now = True if opts.penalty_every == 1 else d_index % opts.penalty_every == 0
    if opts.n_critic > 1 and now is not True:
        # Several D updates in one program, each with its own lax.cond holding BatchNorm's
        # all-reduces: on 8 CPU devices the program gave a different result run to run
        # (n_critic 2 + R1, jax 0.10.2; tests/test_families.py found it), as two conditionals in
        # one update did (below). So with several updates the penalties are computed on every
        # update and weighted 0 when not due: the same mathematics, without the lazy saving.
        weight = jnp.asarray(now, jnp.float32)
        outputs = _forward(gan, opts, params, stats, batch, aug, p, True)
        return outputs._replace(r1=outputs.r1 * weight, r2=outputs.r2 * weight)
    if opts.r2_gamma and now is not True:
        # One conditional for both penalties: with two, each holding BatchNorm's all-reduces,
        # 8 CPU devices gave a different result run to run (R1 + R2 + translation, jax 0.10.2).
        return lax.cond(now, lambda: _forward(gan, opts, params, stats, batch, aug, p, True),
                        lambda: _forward(gan, opts, params, stats, batch, aug, p, False))
    # R1 alone (or every update penalised): its conditional inside, around the real batch only,
    # as the program of the versions before R2 (the same numbers for their configs and workdirs).
    return _forward(gan, opts, params, stats, batch, aug, p, now)


def _forward(gan, opts, params, stats, batch: Batch, aug: AugmentSlots, p, now):
    def logits(labels, numbers, stats, x):
        """(logits, (new BatchNorm statistics, D's own loss, its class loss on `labels`))."""
        (out, own_loss), upd = apply_discriminator(gan, opts, variables(params, stats), x,
                                                   labels, **numbers)
        return out, (upd.get("batch_stats", {}), own_loss, class_loss_of(opts, upd, labels))

    numbers = {"numbers": aug.discriminator} if aug.discriminator else {}
    r1, real_out, (stats, real_own, real_class) = penalised(
        opts, functools.partial(logits, batch.real_y, numbers, stats), batch.real_x, aug.real, p,
        opts.r1_gamma, now)
    r2, fake_out, (stats, fake_own, _) = penalised(
        opts, functools.partial(logits, batch.fake_y, {}, stats), batch.fake_x, aug.fake, p,
        opts.r2_gamma, now)
    return DiscriminatorOutputs(r1, r2, real_out, fake_out, stats, real_own + fake_own,
                                real_class)


def apply_discriminator(gan, opts: StepOptions, d_variables, x, labels, **numbers):
    """D in training mode: ((logits, own loss), updated collections), with the class scores
    its projection head sows (`intermediates`) when train.class_loss asks for them."""
    mutable = ["batch_stats", "intermediates"] if opts.class_loss else ["batch_stats"]
    return gan.discriminator.apply(d_variables, x, labels, train=True, mutable=mutable,
                                   **numbers)


def class_loss_of(opts: StepOptions, updated: dict, labels):
    """The mean cross-entropy of D's class scores (sown by its projection head) against
    `labels`; 0 when train.class_loss is off."""
    if not opts.class_loss:
        return jnp.zeros((), jnp.float32)
    if "class_logits" not in updated.get("intermediates", {}):
        raise UserError("train.class_loss reads D's class scores, and this family's "
                        "discriminator sows none (jaxgan.models.norms.projection does it for a "
                        "projection head): set train.class_loss=0")
    (class_logits_BK,) = updated["intermediates"]["class_logits"]
    return optax.softmax_cross_entropy_with_integer_labels(class_logits_BK, labels).mean()


def penalised(opts: StepOptions, logits_fn, x, aug: dict, p, gamma, now):
    """(the zero-centred gradient penalty of `logits_fn` at x if `now` (a bool, or a traced one)
    and gamma > 0, else 0; logits; aux).

    With the relativistic loss (R3GAN, as StyleGAN2-ADA) the penalty is taken with respect to
    the images before augmentation, through it; the older losses take it at D's input, the
    augmented images, as their runs were trained: changing it would change their steps, resumed
    workdirs included. Without an augmentation policy the two are the same."""
    def of_x(x_):
        return logits_fn(opts.seen(x_, aug, p) if opts.relativistic else x_)
    if not opts.relativistic:
        x = opts.seen(x, aug, p)

    def without():
        return (jnp.zeros((), jnp.float32),) + of_x(x)
    if not gamma or now is False:
        return without()
    if now is True:
        return losses.zero_centred_gradient_penalty(of_x, x)
    return lax.cond(now, lambda: losses.zero_centred_gradient_penalty(of_x, x), without)


def discriminator_loss(gan: GAN, opts: StepOptions, out: DiscriminatorOutputs, aux: dict,
                       gamma_scale, d_index):
    """(D's loss, its metrics, the new aux): the adversarial loss, D's own loss (reported under
    its aux_loss_name), the penalties (lazy: every penalty_every-th update, penalty_every times
    the weight, as StyleGAN2), LeCam."""
    loss = losses.d_loss(opts.loss, out.real_logits, out.fake_logits)
    metrics = {"d_loss": loss, "d_real": out.real_logits.mean(),
               "d_fake": out.fake_logits.mean()}
    loss = loss + out.own_loss
    if aux_loss_name(gan.discriminator):
        metrics[aux_loss_name(gan.discriminator)] = out.own_loss
    if opts.class_loss:  # P2GAN: D's projection head also classifies the real images
        loss = loss + opts.class_loss * out.real_class_loss
        metrics["d_class"] = out.real_class_loss
    for name, gamma, penalty in (("r1", opts.r1_gamma, out.r1), ("r2", opts.r2_gamma, out.r2)):
        if gamma:
            loss = loss + 0.5 * (gamma * gamma_scale) * opts.penalty_every * penalty
            metrics[name] = penalty
    new_aux = dict(aux)
    if opts.lecam:
        means = lax.pmean(lax.stop_gradient((out.real_logits.mean(), out.fake_logits.mean())),
                          AXIS)
        new_aux["lecam_real"], new_aux["lecam_fake"] = losses.lecam_update(
            aux["lecam_real"], aux["lecam_fake"], *means, first=d_index == 0)
        regulariser = losses.lecam(out.real_logits, out.fake_logits, new_aux["lecam_real"],
                                   new_aux["lecam_fake"])
        loss = loss + opts.lecam * regulariser
        metrics["lecam"] = regulariser
    metrics["real_sign"] = jnp.mean(jnp.sign(out.real_logits))
    return loss, metrics, new_aux


def generator_forward(gan: GAN, g_stats, z_BZ, y_B):
    """params -> (fake images, new BatchNorm statistics), in training mode."""
    def forward(params):
        fake, upd = gan.generator.apply(variables(params, g_stats), z_BZ, y_B, train=True,
                                        mutable=["batch_stats"])
        return fake, upd.get("batch_stats", {})
    return forward


def generator_loss(gan: GAN, opts: StepOptions, d: DiscriminatorState, batch: Batch, z_BZ,
                   aug: AugmentSlots, p):
    """G's loss as a function of its fake batch (batch.fake_x): (loss, (D's new BatchNorm
    statistics, G's extra metrics)). The relativistic loss pairs the fakes with the real batch
    (D sees it, freshly augmented, after the fakes, as R3GAN)."""
    fake = batch.fake_x
    # (D's own loss is D's objective, not G's.)
    (logits, _), upd = apply_discriminator(gan, opts, variables(d.params, d.stats),
                                           opts.seen(fake, aug.fake_in_g, p), batch.fake_y)
    g_metrics = {}
    class_loss = class_loss_of(opts, upd, batch.fake_y)
    real_logits = None
    if opts.relativistic:
        (real_logits, _), upd = gan.discriminator.apply(
            variables(d.params, upd.get("batch_stats", {})),
            opts.seen(batch.real_x, aug.real_in_g, p), batch.real_y, train=True,
            mutable=["batch_stats"])
    loss = losses.g_loss(opts.loss, logits, real_logits)
    if opts.class_loss:  # P2GAN: images that D's projection head classifies as their labels
        loss = loss + opts.class_loss * class_loss
        g_metrics["g_class"] = class_loss
    if opts.mode_seeking:
        loss = loss + opts.mode_seeking * losses.mode_seeking(fake, z_BZ)
    return loss, (upd.get("batch_stats", {}), g_metrics)


class StepNumbers(NamedTuple):
    """A step's random numbers (draw_step_numbers), drawn for the global batch."""
    z: Any                # (K, B, Z) latents of the K = n_critic D updates
    fake_labels: Any      # (K, B) their labels (the real batch's with the relativistic loss)
    aug: AugmentSlots     # of (K, B, ...) arrays
    g_z: Any = {}         # (B, Z) the G update's own latents (relativistic only; {} else)


def local_step(state: GANState, real: dict, numbers: StepNumbers, *, gan: GAN,
               opts: StepOptions):
    """Per-device update; arrays hold this device's part of the batch. K = opts.n_critic D
    updates, then G's: it reuses the last D update's fake batch, its forward kept as a VJP, or
    (relativistic) makes its own from the independent real batch's labels."""
    aux = aux_of(state)
    scales = Scales(opts.augment_probability(state.step, aux), opts.lr_scale(state.step),
                    opts.scheduled(state.step, opts.final_gamma_scale))
    d = DiscriminatorState(state.d_params, state.d_stats, state.d_opt_state, aux)
    g_stats, k, z_KBZ, fake_y_KB = state.g_stats, opts.n_critic - 1, numbers.z, numbers.fake_labels
    for i in range(opts.n_critic):
        forward = generator_forward(gan, g_stats, z_KBZ[i], fake_y_KB[i])
        if i == k and not opts.relativistic:
            fake, g_vjp, g_stats = jax.vjp(forward, state.g_params, has_aux=True)
        else:
            fake, g_stats = forward(state.g_params)
        batch = Batch(real["image"], real["label"], lax.stop_gradient(fake), fake_y_KB[i])
        d, d_metrics = discriminator_update(gan, opts, d, batch, at(numbers.aug, i), scales,
                                            state.step * opts.n_critic + i)
    z_BZ, aug = z_KBZ[k], at(numbers.aug, k)
    if opts.relativistic:  # R3GAN's G phase: its own real batch, its own fakes with its labels
        z_BZ = numbers.g_z
        fake, g_vjp, g_stats = jax.vjp(generator_forward(gan, g_stats, z_BZ, real["g_label"]),
                                       state.g_params, has_aux=True)
        batch = Batch(real["g_image"], real["g_label"], lax.stop_gradient(fake),
                      real["g_label"])

    def g_loss_of(fake):
        return generator_loss(gan, opts, d, batch._replace(fake_x=fake), z_BZ, aug,
                              scales.augment_p)
    (g_loss, (d_stats, g_metrics)), fake_grad = jax.value_and_grad(g_loss_of, has_aux=True)(fake)
    (g_grads,) = g_vjp(fake_grad)
    g_updates, g_opt = gan.g_tx.update(lax.pmean(g_grads, AXIS), state.g_opt_state, state.g_params)
    g_params = optax.apply_updates(state.g_params, scaled(g_updates, scales.lr))
    # D metrics are those of the last D update, taken before it applied its gradients.
    metrics = lax.pmean({**d_metrics, "g_loss": g_loss, **g_metrics}, AXIS)
    d = d._replace(stats=d_stats, aux=adapt(opts, d.aux, metrics, scales.augment_p))
    return finish_step(opts, state, g_params, g_stats, g_opt, d, metrics)


def adapt(opts: StepOptions, aux: dict, metrics: dict, p) -> dict:
    """ADA's new probability into `aux` (and its numbers into `metrics`) when adaptive."""
    real_sign = metrics.pop("real_sign")
    if opts.adaptive:
        aux["augment_p"] = augment_lib.adapt_probability(
            p, real_sign, opts.ada_target, opts.n_critic * opts.batch_size, opts.ada_kimg)
        metrics.update(augment_p=p, real_sign=real_sign)
    return aux


def finish_step(opts: StepOptions, state: GANState, g_params, g_stats, g_opt,
                d: DiscriminatorState, metrics: dict):
    """The new state (with G's EMA) and the metrics (with whether every number is finite)."""
    ema_decay, warm_up = opts.ema_decay_at(state.step), not opts.ema_images
    new_state = state.replace(
        step=state.step + 1, g_params=g_params, g_stats=g_stats, d_params=d.params,
        d_stats=d.stats, g_opt_state=g_opt, d_opt_state=d.opt_state,
        ema_params=ema_update(g_params, state.ema_params, state.step, ema_decay, warm_up),
        ema_stats=ema_update(g_stats, state.ema_stats, state.step, ema_decay, warm_up),
        **({"aux": d.aux} if d.aux else {}))
    metrics["finite"] = all_finite(metrics, g_params, d.params).astype(jnp.float32)
    return new_state, metrics


def draw_step_numbers(key, opts: StepOptions, gan: GAN, batch_size: int) -> StepNumbers:
    """Every random number of a step, for the global batch (so that 1 device and N draw the
    same)."""
    n_critic = opts.n_critic
    z_key, y_key, augment_key = jax.random.split(key, 3)
    z = jax.random.normal(z_key, (n_critic, batch_size, gan.latent_dim), jnp.float32)
    fake_labels = jax.random.randint(y_key, (n_critic, batch_size), 0, max(gan.num_classes, 1))
    if opts.mode_seeking:  # pairs (2k, 2k+1) share a label (pairs never straddle two devices)
        fake_labels = jnp.repeat(fake_labels[:, ::2], 2, axis=1)
    # Drawn as (K, slot, B) arrays, the slots in AugmentSlots' order (the last one only with
    # the relativistic loss): the numbers of the versions before the slots had names.
    slots = 4 if opts.relativistic else 3
    numbers = augment_lib.draw(augment_key, opts.augment, (n_critic, slots, batch_size),
                               gan.image_shape[0])
    # D's own numbers from the augmentation key folded with 4 (after its slots): the numbers of
    # the versions before discriminators declared them.
    own = draw_discriminator_numbers(gan.discriminator, jax.random.fold_in(augment_key, 4),
                                     n_critic, batch_size)
    aug = AugmentSlots(*(at(numbers, (slice(None), i)) for i in range(slots)),
                       *([{}] if slots == 3 else []), discriminator=own)
    g_z = {}
    if opts.relativistic:  # G's own latents, from the latents' key folded with 1 (the
        # augmentation key's folds belong to augment.draw and D's numbers)
        g_z = jax.random.normal(jax.random.fold_in(z_key, 1), (batch_size, gan.latent_dim),
                                jnp.float32)
    return StepNumbers(z, fake_labels, aug, g_z)


def make_train_step(gan: GAN, train_config, mesh: Mesh):
    """The global-view step `(state, batch, key) -> (state, metrics)` (not yet jitted).

    `batch` is {"image": float32 (B, H, W, C) in [-1, 1], "label": int32 (B,)} for the global
    batch B, with the relativistic loss also {"g_image", "g_label"}: the generator update's
    independent real batch (`needs_generator_batch`); `key` is this step's key. Labels are
    ignored when the model is unconditional.
    """
    opts = StepOptions.from_config(train_config)
    if not gan.num_classes:  # no classes to learn: the class loss is off (the loop says so)
        opts = dataclasses.replace(opts, class_loss=0.0)
    local = functools.partial(local_step, gan=gan, opts=opts)
    data, per_critic = P(AXIS), P(None, AXIS)
    sharded = jax.shard_map(local, mesh=mesh,
                            in_specs=(P(), data, StepNumbers(per_critic, per_critic, per_critic,
                                                             data)),
                            out_specs=(P(), P()), check_vma=False)

    def train_step(state, batch, key):
        if opts.relativistic and "g_image" not in batch:
            raise ValueError("the relativistic (rpgan) step needs the generator's own real "
                             "batch: batch['g_image'] and batch['g_label']")
        numbers = draw_step_numbers(key, opts, gan, batch["image"].shape[0])
        if opts.relativistic:  # the fakes carry the real batch's labels (R3GAN's G(z, real_c))
            numbers = numbers._replace(fake_labels=jnp.broadcast_to(
                batch["label"], numbers.fake_labels.shape).astype(numbers.fake_labels.dtype))
        return sharded(state, batch, numbers)
    return train_step


def needs_generator_batch(train_config) -> bool:
    """Whether the step takes a second, independent real batch for G (R3GAN's relativistic
    loss): the data pipeline and anything else that builds batches asks this."""
    return StepOptions.from_config(train_config).relativistic
