"""The training state: one immutable pytree, and its creation from a config."""
from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from jaxgan.models import build_models


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


def make_optimizers(train_config):
    """One Adam per network (optax), learning rates and betas from the config."""
    def adam(lr):
        return optax.adam(lr, b1=train_config.b1, b2=train_config.b2)
    return adam(train_config.g_lr), adam(train_config.d_lr)


def init_variables(config, image_shape, num_classes: int, key):
    """Fresh generator and discriminator variables ({'params', 'batch_stats'} each)."""
    generator, discriminator = build_models(config.model, image_shape, num_classes)
    g_key, d_key = jax.random.split(key)
    z = jnp.zeros((1, config.model.latent_dim), jnp.float32)
    labels = jnp.zeros((1,), jnp.int32)
    x = jnp.zeros((1, *image_shape), jnp.float32)
    g_vars = generator.init(g_key, z, labels, train=False)
    d_vars = discriminator.init(d_key, x, labels, train=False)
    return g_vars, d_vars


def create_state(config, image_shape, num_classes: int, key) -> GANState:
    g_vars, d_vars = init_variables(config, image_shape, num_classes, key)
    g_tx, d_tx = make_optimizers(config.train)
    g_stats = g_vars.get("batch_stats", {})
    return GANState(
        step=jnp.zeros((), jnp.int32),
        g_params=g_vars["params"], g_stats=g_stats,
        d_params=d_vars["params"], d_stats=d_vars.get("batch_stats", {}),
        g_opt_state=g_tx.init(g_vars["params"]), d_opt_state=d_tx.init(d_vars["params"]),
        # Copies: the state is donated to the step, and one buffer cannot be donated twice.
        ema_params=jax.tree.map(jnp.copy, g_vars["params"]), ema_stats=jax.tree.map(jnp.copy, g_stats))


def abstract_state(config, image_shape, num_classes: int) -> GANState:
    """Shapes and dtypes of the state, without allocating it (Orbax restore target)."""
    return jax.eval_shape(lambda: create_state(config, image_shape, num_classes,
                                               jax.random.key(0)))
