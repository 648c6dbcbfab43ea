"""The training state (one immutable pytree) and the networks and optimisers it belongs to."""
from __future__ import annotations

import dataclasses
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from jaxgan.mesh import AXIS
from jaxgan.models import build_models
from jaxgan.training import schedules


def compile_to_run_once(function, *args):
    """`function` as one program for `args`' shapes, built for a single run.

    One program: run op by op, a flax init is ~200 separate compilations (4-18 s on a laptop
    CPU). On CPU without LLVM's optimisations: the optimised build of the initialisers' many
    random-number kernels took 10-12 s for a 16-px DCGAN, 1.8 s unoptimised.
    """
    lowered = jax.jit(function).lower(*args)
    return lowered.compile({"xla_backend_optimization_level": 0}
                           if jax.default_backend() == "cpu" else {})


@flax.struct.dataclass
class GANState:
    step: jax.Array          # int32 scalar: number of completed training steps
    g_params: Any
    g_stats: Any             # generator BatchNorm running statistics
    d_params: Any
    d_stats: Any             # discriminator BatchNorm running statistics ({} without BatchNorm)
    g_opt_state: Any
    d_opt_state: Any
    ema_params: Any          # exponential moving average of g_params: what sampling uses
    ema_stats: Any           # moving average of g_stats, matching ema_params


@flax.struct.dataclass
class GANStateWithAux(GANState):
    """A GANState with the scalars some training tools carry from step to step (ADA's augment_p,
    LeCam's averages of D's outputs). A separate class, used only with those tools, so that every
    other state keeps exactly the tree (and checkpoints) of earlier jaxgan versions."""
    aux: Any                 # {name: float32 scalar}


def aux_of(state) -> dict:
    return dict(getattr(state, "aux", {}))


@dataclasses.dataclass(frozen=True)
class GAN:
    """What a config builds once and every part of training shares: both networks (BatchNorm
    averaging over the mesh axis "data" in training mode), both optimisers, the data's shape."""
    generator: Any
    discriminator: Any
    g_tx: optax.GradientTransformation
    d_tx: optax.GradientTransformation
    image_shape: tuple[int, int, int]
    num_classes: int
    latent_dim: int
    aux_init: tuple = ()  # (name, initial value) of GANState.aux

    @classmethod
    def build(cls, config, image_shape, num_classes: int) -> "GAN":
        generator, discriminator = build_models(config.model, image_shape, num_classes,
                                                axis_name=AXIS)
        g_tx, d_tx = make_optimizers(config.train)
        return cls(generator, discriminator, g_tx, d_tx, tuple(image_shape), num_classes,
                   config.model.latent_dim, tuple(aux_init(config.train).items()))

    def init_variables(self, key):
        """Fresh generator and discriminator variables ({'params', 'batch_stats'} each)."""
        g_key, d_key = jax.random.split(key)
        z = jnp.zeros((1, self.latent_dim), jnp.float32)
        labels = jnp.zeros((1,), jnp.int32)
        x = jnp.zeros((1, *self.image_shape), jnp.float32)
        return (self.generator.init(g_key, z, labels, train=False),
                self.discriminator.init(d_key, x, labels, train=False))

    def create_state(self, key) -> GANState:
        return compile_to_run_once(self._fresh_state, key)(key)

    def _fresh_state(self, key) -> GANState:
        g_vars, d_vars = self.init_variables(key)
        g_stats = g_vars.get("batch_stats", {})  # absent for a family without BatchNorm
        aux = {name: jnp.asarray(value, jnp.float32) for name, value in self.aux_init}
        return (GANStateWithAux if aux else GANState)(
            **({"aux": aux} if aux else {}),
            step=jnp.zeros((), jnp.int32),
            g_params=g_vars["params"], g_stats=g_stats,
            d_params=d_vars["params"], d_stats=d_vars.get("batch_stats", {}),
            g_opt_state=self.g_tx.init(g_vars["params"]),
            d_opt_state=self.d_tx.init(d_vars["params"]),
            # Copies: the state is donated to the step, and one buffer cannot be donated twice.
            ema_params=jax.tree.map(jnp.copy, g_vars["params"]),
            ema_stats=jax.tree.map(jnp.copy, g_stats))

    def abstract_state(self) -> GANState:
        """Shapes and dtypes of the state, without allocating it (Orbax restore target)."""
        return jax.eval_shape(self._fresh_state, jax.random.key(0))


def aux_init(train_config) -> dict:
    """The extra scalars (GANState.aux) this config trains with, and their start values; {} for
    plain training, so that such states keep the tree of older checkpoints."""
    aux = {}
    if train_config.augment and train_config.ada_target > 0:
        aux["augment_p"] = float(train_config.augment_p)  # ADA's adaptive probability
    if train_config.lecam:
        aux.update(lecam_real=0.0, lecam_fake=0.0)  # LeCam's averages of D's outputs
    return aux


def make_optimizers(train_config):
    """One Adam per network (optax), learning rates and betas from the config."""
    def adam(lr, updates_per_step):
        if not (train_config.schedule_kimg and train_config.final_b2 != -1.0):
            return optax.adam(lr, b1=train_config.b1, b2=train_config.b2)

        def b2(count):  # Adam's own update count -> the images trained on before this update
            images = (count // updates_per_step).astype(jnp.float32) * train_config.batch_size
            return schedules.cosine_ramp(images, 1000.0 * train_config.schedule_kimg,
                                         train_config.b2, train_config.final_b2)
        # A scheduled beta2 (R3GAN) is optax's injected hyper-parameter; only such configs have
        # its state, so every other checkpoint keeps its tree.
        return optax.inject_hyperparams(optax.adam)(lr, b1=train_config.b1, b2=b2)
    return adam(train_config.g_lr, 1), adam(train_config.d_lr, train_config.n_critic)
