"""Draw images from a trained generator: `load_sampler(workdir)` and the grid helpers.

Sampling rebuilds the generator from what the checkpoint holds (config + data facts) and restores
only the EMA generator's variables; it never imports TensorFlow.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import checkpoint
from jaxgan.errors import UserError
from jaxgan.images import auto_upscale, make_grid, save_png
from jaxgan.models import build_models

GRID_COLUMNS = 8


def to_uint8(images):
    """[-1, 1] floats -> uint8 [0, 255], rounded."""
    return jnp.clip(jnp.round((images + 1.0) * 127.5), 0, 255).astype(jnp.uint8)


def generate_from_noise(generator, variables, z_NZ, labels_N):
    """uint8 images (N, H, W, C) from noise, BatchNorm in inference mode (no batch dependence)."""
    return to_uint8(generator.apply(variables, z_NZ, labels_N, train=False))


def grid_labels(num_classes: int, per_class: int = GRID_COLUMNS) -> np.ndarray:
    """Labels for a grid with one row per class (64 zeros for an unconditional model)."""
    if num_classes == 0:
        return np.zeros(GRID_COLUMNS * GRID_COLUMNS, np.int32)
    return np.repeat(np.arange(num_classes, dtype=np.int32), per_class)


def grid_image(images_NHWC, upscale: int | None = None) -> np.ndarray:
    images = np.asarray(images_NHWC)
    return make_grid(images, GRID_COLUMNS, upscale or auto_upscale(images.shape[1]))


class Sampler:
    """A trained generator. `sampler(key, labels=...)` (conditional) or `sampler(key, num=N)`.

    Returns uint8 images (N, H, W, C) from a jitted function. Attributes: `num_classes`,
    `class_names`, `image_shape`, `step`, `config`.
    """

    def __init__(self, config, data_facts: dict, variables, step: int):
        self.config = config
        self.class_names = tuple(data_facts["class_names"])
        self.num_classes = int(data_facts["num_classes"])
        self.image_shape = tuple(int(d) for d in data_facts["image_shape"])
        self.step = step
        self.latent_dim = config.model.latent_dim
        self.generator, _ = build_models(config.model, self.image_shape, self.num_classes)
        self.variables = variables
        self._sample = jax.jit(functools.partial(self._sample_fn, self.generator, self.latent_dim))

    @staticmethod
    def _sample_fn(generator, latent_dim, variables, key, labels):
        z = jax.random.normal(key, (labels.shape[0], latent_dim), jnp.float32)
        return generate_from_noise(generator, variables, z, labels)

    def check_labels(self, labels) -> np.ndarray:
        labels = np.asarray(labels)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise UserError(f"labels must be a 1-D array of class indices, got {labels!r}")
        bad = labels[(labels < 0) | (labels >= self.num_classes)]
        if bad.size:
            raise UserError(f"label {int(bad[0])} is out of range: this model has "
                            f"{self.num_classes} classes (0-{self.num_classes - 1})")
        return labels.astype(np.int32)

    def __call__(self, key, labels=None, num: int | None = None):
        if self.num_classes:
            if labels is None:
                raise UserError("this model is class-conditional: pass labels=[class indices]")
            labels = self.check_labels(labels)
        else:
            if labels is not None:
                raise UserError("this model is unconditional: pass num=N, not labels")
            if num is None or num < 1:
                raise UserError("pass num=N (a positive number of images)")
            labels = np.zeros(num, np.int32)
        return self._sample(self.variables, key, jnp.asarray(labels))


def write_class_grid(sampler: Sampler, path, seed: int = 0, upscale: int | None = None) -> None:
    """A grid PNG: one row of 8 per class (8x8 for unconditional models)."""
    labels = grid_labels(sampler.num_classes)
    key = jax.random.key(seed)
    images = (sampler(key, labels=labels) if sampler.num_classes
              else sampler(key, num=labels.shape[0]))
    save_png(path, grid_image(np.asarray(images), upscale),
             {"Software": "jaxgan", "Step": sampler.step, "Comment": "AI-generated"})


def load_sampler(workdir, step: int | None = None) -> Sampler:
    """The EMA generator of the checkpoint at `step` (default: the latest) in `workdir`."""
    manager = checkpoint.make_manager(workdir, read_only=True)
    steps = manager.all_steps()
    if not steps:
        raise UserError(f"no checkpoint found in {checkpoint.checkpoint_dir(workdir)}")
    if step is None:
        step = max(steps)
    elif step not in steps:
        raise UserError(f"no checkpoint for step {step} in {checkpoint.checkpoint_dir(workdir)}; "
                        f"available: {', '.join(map(str, sorted(steps)))}")
    config, facts = checkpoint.restore_meta(manager, step)
    generator, _ = build_models(config.model, tuple(facts["image_shape"]), facts["num_classes"])
    z = jnp.zeros((1, config.model.latent_dim), jnp.float32)
    abstract = jax.eval_shape(lambda: generator.init(jax.random.key(0), z, jnp.zeros(1, jnp.int32)))
    variables = checkpoint.restore_item(manager, step, "generator", abstract)
    manager.close()
    return Sampler(config, facts, variables, step)
