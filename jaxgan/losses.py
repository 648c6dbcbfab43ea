"""Adversarial losses on discriminator logits (never on probabilities).

Non-saturating (Goodfellow et al. 2014, the PyTorch DCGAN example's BCE written on logits):
  D minimises softplus(-D(x)) + softplus(D(G(z)));  G minimises softplus(-D(G(z))).
Hinge (Lim & Ye 2017; SNGAN, BigGAN):
  D minimises relu(1 - D(x)) + relu(1 + D(G(z)));   G minimises -D(G(z)).
Each function returns the mean over the (local) batch.
"""
import jax
import jax.numpy as jnp

LOSSES = ("non_saturating", "hinge")


def check_loss(kind: str) -> None:
    if kind not in LOSSES:
        raise ValueError(f"train.loss must be one of {', '.join(LOSSES)}; got {kind!r}")


def d_loss(kind: str, real_logits, fake_logits):
    check_loss(kind)
    if kind == "hinge":
        return jnp.mean(jax.nn.relu(1.0 - real_logits)) + jnp.mean(jax.nn.relu(1.0 + fake_logits))
    return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def g_loss(kind: str, fake_logits):
    check_loss(kind)
    if kind == "hinge":
        return -jnp.mean(fake_logits)
    return jnp.mean(jax.nn.softplus(-fake_logits))
