"""R3GAN's hyper-parameter schedules, as functions of the images trained on (so of the step:
a resumed run follows them exactly, with no state of their own)."""
import jax.numpy as jnp


def cosine_ramp(images_seen, total_images: float, start, final):
    """R3GAN's training_loop `cosine_decay_with_warmup` without warm-up: from `start` at 0 images
    to `final` at `total_images` along half a cosine, `final` after that."""
    progress = jnp.clip(images_seen / total_images, 0.0, 1.0)
    return start + 0.5 * (1.0 - jnp.cos(jnp.pi * progress)) * (final - start)


def ema_beta(batch_size: int, half_life_images):
    """R3GAN's (and StyleGAN's) EMA decay per step for a half-life counted in images."""
    return 0.5 ** (batch_size / jnp.maximum(half_life_images, 1e-8))
