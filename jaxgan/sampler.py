"""Draw images from a trained generator: `load_sampler(workdir)` -> `Sampler`; the noise helpers.

Sampling rebuilds the generator from what the checkpoint holds (config + data facts) and restores
only the EMA generator's variables; it never imports TensorFlow. A core module (below the
evaluation, which scores a Sampler, and the apps in art/ and gallery/, which draw from one);
`jaxgan.load_sampler` is this module's.
"""
from __future__ import annotations

import functools
import re

import jax
from jax.sharding import PartitionSpec as P
import jax.numpy as jnp
import numpy as np

from jaxgan import mesh as mesh_lib
from jaxgan.errors import UserError
from jaxgan.fileio import printable
from jaxgan.models import build_models, generate_uint8
from jaxgan.training import checkpoint

PER_DEVICE_BATCH = 8  # fixed, so an image's pixels never depend on how a request is split
TRUNCATION_BOUND = 2.0  # psi < 1: noise from N(0, 1) truncated to [-2, 2], times psi (BigGAN)


def noise_from_key(key, num: int, latent_dim: int, truncation: float = 1.0):
    """(num, latent_dim) noise from one key. truncation=1.0 is exactly the training
    distribution, N(0, 1) (StyleGAN's `--trunc 1`); psi < 1 is BigGAN's truncation trick:
    psi * N(0, 1) truncated to [-2, 2]."""
    if truncation == 1.0:
        return jax.random.normal(key, (num, latent_dim), jnp.float32)
    return truncation * jax.random.truncated_normal(key, -TRUNCATION_BOUND, TRUNCATION_BOUND,
                                                    (num, latent_dim), jnp.float32)


def seed_noise(seeds, latent_dim: int, truncation: float = 1.0):
    """The noise of each seed, from that seed alone: `noise_from_key(key(seed), 1, ...)`."""
    return jax.vmap(lambda seed: noise_from_key(jax.random.key(seed), 1, latent_dim,
                                                truncation)[0])(seeds)


def slerp(a, b, t):
    """Spherical interpolation between noise vectors a and b at fractions t (T,) -> (T, Z)."""
    a_unit, b_unit = a / jnp.linalg.norm(a), b / jnp.linalg.norm(b)
    omega = jnp.arccos(jnp.clip(jnp.dot(a_unit, b_unit), -1.0, 1.0))
    t = t[:, None]
    sin = jnp.sin(omega)
    linear = (1 - t) * a + t * b
    spherical = (jnp.sin((1 - t) * omega) * a + jnp.sin(t * omega) * b) / jnp.where(sin == 0, 1, sin)
    return jnp.where(sin < 1e-6, linear, spherical)


class Sampler:
    """A trained generator. `sampler(key, labels=...)` (conditional) or `sampler(key, num=N)`.

    Returns uint8 images (N, H, W, C); every path runs the same jitted generator over fixed-size
    chunks spread over all devices, so the same noise gives the same pixels whichever path drew it. Attributes: `num_classes`,
    `class_names`, `image_shape`, `step`, `config`.
    """

    def __init__(self, config, data_facts: dict, variables, step: int, devices=None,
                 generator=None):
        self.config = config
        self.class_names = tuple(data_facts["class_names"])
        self.num_classes = int(data_facts["num_classes"])
        self.image_shape = tuple(int(d) for d in data_facts["image_shape"])
        self.step = step
        self.latent_dim = config.model.latent_dim
        if generator is None:  # (load_sampler passes the one it restored the variables with)
            generator, _ = build_models(config.model, self.image_shape, self.num_classes)
        self.generator = generator
        mesh = mesh_lib.make_mesh(devices)
        self.variables = jax.device_put(variables, mesh_lib.replicated(mesh))
        self._chunk = PER_DEVICE_BATCH * mesh.size
        data = P(mesh_lib.AXIS)
        self._from_noise = jax.jit(jax.shard_map(
            functools.partial(generate_uint8, self.generator), mesh=mesh,
            in_specs=(P(), data, data), out_specs=data))

    def check_labels(self, labels) -> np.ndarray:
        labels = np.asarray(labels)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise UserError(f"labels must be a 1-D array of class indices, got {labels!r}")
        bad = labels[(labels < 0) | (labels >= self.num_classes)]
        if bad.size:
            raise UserError(f"label {int(bad[0])} is out of range: this model has "
                            f"{self.num_classes} classes (0-{self.num_classes - 1})")
        return labels.astype(np.int32)

    def label_index(self, label) -> int:
        """A class given by index (an int, or 'index:N'), by name ('name:X'), or by a string that
        is either. A string that could mean two classes (class '1' at index 0, or index 1 = class
        '10'; or '0' where the classes are named by numbers) is refused: say name: or index:."""
        if isinstance(label, (int, np.integer)):
            return self._index(int(label))
        text = str(label)
        if text.startswith("name:"):
            return self._by_name(text[len("name:"):])
        if text.startswith("index:"):
            try:
                return self._index(int(text[len("index:"):]))
            except ValueError:
                raise UserError(f"index: takes a class index, got '{printable(text)}'") from None
        number = int(text) if _DECIMAL.fullmatch(text) else None
        numbered = any(_DECIMAL.fullmatch(n) for n in self.class_names)
        if text in self.class_names:
            index = self.class_names.index(text)
            if number is None or number == index or number >= self.num_classes:
                return index
        elif number is None:
            return self._by_name(text)  # unknown: the error lists the classes
        elif not numbered:
            return self._index(number)
        raise UserError(f"--label {printable(text)} is ambiguous: the classes are named by numbers; "
                        f"write name:{printable(text)} for the class of that name or "
                        f"index:{printable(text)} for the class at that position (0-based)")

    def _by_name(self, name: str) -> int:
        if name in self.class_names:
            return self.class_names.index(name)
        raise UserError(f"unknown class '{printable(name)}'; classes: "
                        f"{', '.join(printable(n) for n in self.class_names)}")

    def _index(self, index: int) -> int:
        return int(self.check_labels(np.array([index]))[0])

    def _generate_batched(self, z_NZ, labels_N) -> np.ndarray:
        """Run the generator over fixed-size chunks spread over all devices."""
        n = z_NZ.shape[0]
        pad = -n % self._chunk
        z = np.concatenate([np.asarray(z_NZ), np.zeros((pad, *z_NZ.shape[1:]), np.float32)])
        labels = np.asarray(labels_N)
        labels = np.concatenate([labels, np.zeros((pad, *labels.shape[1:]), labels.dtype)])
        chunks = [self._from_noise(self.variables, z[i:i + self._chunk], labels[i:i + self._chunk])
                  for i in range(0, n + pad, self._chunk)]
        return np.concatenate([np.asarray(c) for c in chunks])[:n]

    def generate(self, seeds, labels=None, truncation: float = 1.0) -> np.ndarray:
        """uint8 images (N, H, W, C), image i from seed i (and label i) alone.

        The same (seed, label, truncation) gives the same pixels in any request, on any number
        of devices. `labels`: class indices or names (one, or one per seed); None when
        unconditional. `truncation`: see `noise_from_key` (1.0: the training distribution).
        """
        seeds = check_seeds(seeds)
        _check_truncation(truncation)
        labels = self._labels_for(labels, len(seeds))
        z = seed_noise(jnp.asarray(seeds), self.latent_dim, truncation)
        return self._generate_batched(np.asarray(z), labels)

    def _labels_for(self, labels, n: int) -> np.ndarray:
        if not self.num_classes:
            if labels is not None:
                raise UserError("this model is unconditional: it takes no labels")
            return np.zeros(n, np.int32)
        if labels is None:
            raise UserError(f"this model is class-conditional: give a label "
                            f"({', '.join(self.class_names)})")
        labels = [labels] if np.ndim(labels) == 0 else list(labels)
        indices = np.array([self.label_index(label) for label in labels], np.int32)
        if len(indices) == 1:
            return np.repeat(indices, n)
        if len(indices) != n:
            raise UserError(f"{len(indices)} labels for {n} seeds: give one label, or one per seed")
        return indices

    def interpolate(self, seed_a: int, seed_b: int, frames: int = 16, label_a=None,
                    label_b=None, truncation: float = 1.0) -> np.ndarray:
        """uint8 frames (T, H, W, C): a spherical walk from seed_a's noise to seed_b's; for
        conditional models the class embedding morphs linearly from label_a to label_b."""
        if frames < 2:
            raise UserError(f"frames must be at least 2, got {frames}")
        _check_truncation(truncation)
        z_ab = seed_noise(jnp.asarray(check_seeds([seed_a, seed_b])), self.latent_dim, truncation)
        t = jnp.linspace(0.0, 1.0, frames)
        z = slerp(z_ab[0], z_ab[1], t)
        if self.num_classes:
            a, b = self._labels_for(label_a, 1)[0], self._labels_for(
                label_a if label_b is None else label_b, 1)[0]
            one_hot = np.eye(self.num_classes, dtype=np.float32)
            labels = (1 - np.asarray(t))[:, None] * one_hot[a] + np.asarray(t)[:, None] * one_hot[b]
        else:
            labels = np.zeros(frames, np.int32)
        return self._generate_batched(np.asarray(z), labels)

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
        z = noise_from_key(key, len(labels), self.latent_dim)
        return self._generate_batched(np.asarray(z), labels)


_DECIMAL = re.compile(r"[0-9]+")


def check_seeds(seeds) -> np.ndarray:
    """Seeds as uint32 (N,), or a UserError naming the first outside 0..2^32-1."""
    values = np.atleast_1d(np.asarray(seeds, dtype=object))
    for seed in values:
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or not 0 <= seed < 2**32:
            raise UserError(f"seeds must be in 0..2^32-1, got {seed!r}")
    return values.astype(np.uint32)


def _check_truncation(truncation) -> None:
    if not 0.0 < truncation <= 1.0:  # also refuses NaN
        raise UserError(f"truncation must be in (0, 1], got {truncation}")


def load_sampler(workdir, step: int | str | None = None, devices=None) -> Sampler:
    """The EMA generator of the checkpoint at `step` (default: the latest; "best": the kept
    checkpoint with the best evaluation result, see jaxgan.training.checkpoint.best_step) in
    `workdir`.

    `generate` and `interpolate` spread their work over `devices` (default: all devices).
    """
    manager = checkpoint.make_manager(workdir, read_only=True)
    steps = manager.all_steps()
    if not steps:
        raise UserError(f"no checkpoint found in {checkpoint.checkpoint_dir(workdir)}")
    if step is None:
        step = max(steps)
    elif step == "best":
        config, _ = checkpoint.restore_meta(manager, max(steps))
        step = checkpoint.best_step(workdir, steps,
                                    config.get("checkpoint", {}).get("best_metric") or None)
    elif step not in steps:
        raise UserError(f"no checkpoint for step {step} in {checkpoint.checkpoint_dir(workdir)}; "
                        f"available: {', '.join(map(str, sorted(steps)))}")
    try:
        config, facts = checkpoint.restore_meta(manager, step)
        generator, _ = build_models(config.model, facts["image_shape"], facts["num_classes"])
        z = jnp.zeros((1, config.model.latent_dim), jnp.float32)
        abstract = jax.eval_shape(lambda: generator.init(jax.random.key(0), z,
                                                         jnp.zeros(1, jnp.int32)))
        variables = checkpoint.restore_item(manager, step, "generator", abstract)
        checkpoint.check_restored(manager, step, "generator", variables, facts)
    except UserError:
        raise
    except Exception as error:  # damaged files, or this machine (memory, I/O): one line
        others = sorted(set(steps) - {step})
        what = "is damaged" if checkpoint.is_damage(error) else "cannot be read"
        raise UserError(f"checkpoint of step {step} in {checkpoint.checkpoint_dir(workdir)} {what}: "
                        f"{checkpoint.error_reason(error)}"
                        + (f"; other steps: {', '.join(map(str, others))} (the newest: --step "
                           f"{others[-1]})" if others else "; no other checkpoint to use")
                        ) from None
    finally:
        manager.close()
    return Sampler(config, facts, variables, step, devices, generator)
