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


def mode_seeking(fake_BHWC, z_BZ, eps: float = 1e-5):
    """Mode-seeking regulariser (Mao et al. 2019, MSGAN) for conditional generators that ignore
    their noise. Images come in pairs (2k, 2k+1) with the same label and different noise; the
    loss is the mean over pairs of 1 / (ratio + eps), ratio = mean|x_a - x_b| / mean|z_a - z_b|.
    (Per pair, so that it is a plain mean: the same on one device or split over many.)"""
    x = fake_BHWC.reshape(fake_BHWC.shape[0] // 2, 2, -1)
    z = z_BZ.reshape(z_BZ.shape[0] // 2, 2, -1)
    ratio = jnp.mean(jnp.abs(x[:, 0] - x[:, 1]), -1) / jnp.mean(jnp.abs(z[:, 0] - z[:, 1]), -1)
    return jnp.mean(1.0 / (ratio + eps))
