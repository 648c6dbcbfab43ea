"""Adversarial losses on discriminator logits (never on probabilities).

Non-saturating (Goodfellow et al. 2014, the PyTorch DCGAN example's BCE written on logits):
  D minimises softplus(-D(x)) + softplus(D(G(z)));  G minimises softplus(-D(G(z))).
Hinge (Lim & Ye 2017; SNGAN, BigGAN):
  D minimises relu(1 - D(x)) + relu(1 + D(G(z)));   G minimises -D(G(z)).
Relativistic pairing, "rpgan" (Jolicoeur-Martineau 2019; R3GAN, Huang et al. 2024, as its
R3GAN/Trainer.py): real image i and fake image i of a batch are a pair,
  D minimises softplus(-(D(x_i) - D(G(z_i))));       G minimises softplus(-(D(G(z_i)) - D(x_i))).
Each function returns the mean over the (local) batch.
"""
import jax
import jax.numpy as jnp

from jaxgan.config import LOSSES


def check_loss(kind: str) -> None:
    if kind not in LOSSES:
        raise ValueError(f"train.loss must be one of {', '.join(LOSSES)}; got {kind!r}")


def d_loss(kind: str, real_logits, fake_logits):
    check_loss(kind)
    if kind == "rpgan":
        return jnp.mean(jax.nn.softplus(-(real_logits - fake_logits)))
    if kind == "hinge":
        return jnp.mean(jax.nn.relu(1.0 - real_logits)) + jnp.mean(jax.nn.relu(1.0 + fake_logits))
    return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def g_loss(kind: str, fake_logits, real_logits=None):
    """`real_logits`: D on this batch's real images, which only the relativistic loss uses."""
    check_loss(kind)
    if kind == "rpgan":
        return jnp.mean(jax.nn.softplus(-(fake_logits - real_logits)))
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


def zero_centred_gradient_penalty(logit_fn, x_BHWC):
    """The mean over the batch of |grad_x D(x)|^2: on real images R1 (Mescheder et al. 2018),
    on fake images R2 (R3GAN's ZeroCenteredGradientPenalty is either, per image).

    `logit_fn(x) -> (logits (B,), aux)`; returns (penalty, logits, aux), so that D's forward pass
    on the real batch is shared with the adversarial loss. (A per-image gradient because each
    logit depends on its own image only; with BatchNorm in D it is the gradient of their sum.)"""
    def logit_sum(x):
        logits, aux = logit_fn(x)
        return logits.sum(), (logits, aux)
    grad_BHWC, (logits, aux) = jax.grad(logit_sum, has_aux=True)(x_BHWC)
    penalty = jnp.mean(jnp.sum(jnp.square(grad_BHWC.astype(jnp.float32)), axis=(1, 2, 3)))
    return penalty, logits, aux


LECAM_DECAY = 0.99  # the paper's moving-average decay of D's mean outputs


def lecam_update(ema_real, ema_fake, real_mean, fake_mean, first):
    """Moving averages of D's mean outputs on real and fake images (copies at the first update)."""
    decay = jnp.where(first, 0.0, LECAM_DECAY)
    return (decay * ema_real + (1.0 - decay) * real_mean,
            decay * ema_fake + (1.0 - decay) * fake_mean)


def lecam(real_logits, fake_logits, ema_real, ema_fake):
    """LeCam regulariser (Tseng et al. 2021, the authors' code): keeps D's outputs on real images
    from rising above its average output on fakes and vice versa, bounding how far D can overfit:
    mean(relu(D(x) - ema_fake)^2) + mean(relu(ema_real - D(G(z)))^2)."""
    return (jnp.mean(jnp.square(jax.nn.relu(real_logits - ema_fake)))
            + jnp.mean(jnp.square(jax.nn.relu(ema_real - fake_logits))))

