"""A small CNN trained on the run's own real images: the feature space that needs no download.

- Conditional data: trained to predict the class; its penultimate layer gives the features
  (`fd_classifier` etc.) and its accuracy on generated images of a requested class is GAN-test.
- Unconditional data: trained to predict which of 4 rotations (0/90/180/270 degrees) an image was
  given (Gidaris et al. 2018), a label-free task whose features still separate image content.
- GAN-train / CAS: the same network trained on generated images, tested on held-out real ones.

A fixed 10% of the real images per class (chosen by the seed) is held out from every classifier,
so its real test accuracy is honest. Trained once per data set and cached (msgpack + JSON spec).
"""
from __future__ import annotations

import hashlib
import json
import os

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgan.evaluation.features import BatchedApply

ARCH_VERSION = 1            # bump when the network or its training changes: old caches retrain
MAX_INPUT_SIZE = 32          # larger images are shrunk (antialiased) to 32x32 first
FEATURE_DIM = 128
HELD_OUT_FRACTION = 0.1
TRAIN_STEPS, BATCH_SIZE, LEARNING_RATE = 600, 64, 2e-3
PER_DEVICE_BATCH = 256


class SmallCNN(nn.Module):
    """uint8 (B, H, W, C) -> (features (B, 128), logits (B, num_outputs)).

    Four 3x3 convolutions (three of stride 2), global average pool, a 128-unit layer: small
    enough to train in seconds on a CPU, good enough to tell digits or CIFAR classes apart.
    """
    num_outputs: int
    width: int = 16

    @nn.compact
    def __call__(self, images_BHWC):
        x = images_BHWC.astype(jnp.float32) / 127.5 - 1.0
        b, h, w, c = x.shape
        if max(h, w) > MAX_INPUT_SIZE:
            x = jax.image.resize(x, (b, MAX_INPUT_SIZE, MAX_INPUT_SIZE, c), "linear", antialias=True)
        for i, (features, stride) in enumerate(((self.width, 2), (self.width * 2, 2),
                                                (self.width * 4, 2), (self.width * 4, 1))):
            x = nn.relu(nn.Conv(features, (3, 3), strides=(stride, stride), name=f"conv{i}")(x))
        features = nn.relu(nn.Dense(FEATURE_DIM, name="penultimate")(jnp.mean(x, axis=(1, 2))))
        return features, nn.Dense(self.num_outputs, name="logits")(features)


def held_out_split(labels_N, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, held-out indices): HELD_OUT_FRACTION of each class, at least one per class
    with two or more images, chosen by `seed` alone."""
    labels = np.asarray(labels_N)
    rng = np.random.default_rng([seed, 0xC1A55])
    train, held = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_held = int(round(len(members) * HELD_OUT_FRACTION)) or (1 if len(members) > 1 else 0)
        held.append(members[:n_held])
        train.append(members[n_held:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(held))


def _rotate_batch(images_BHWC, k_B):
    """Each image turned by k_B[i] * 90 degrees (square images)."""
    rotations = jnp.stack([jnp.rot90(images_BHWC, k, axes=(1, 2)) for k in range(4)])
    return jnp.take_along_axis(rotations, k_B[None, :, None, None, None], axis=0)[0]


def _shift_batch(images_BHWC, key, max_shift: int = 2):
    """Random translations by up to max_shift pixels (edge padding): light augmentation."""
    b, h, w, _ = images_BHWC.shape
    padded = jnp.pad(images_BHWC, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)),
                     mode="edge")
    offsets = jax.random.randint(key, (b, 2), 0, 2 * max_shift + 1)
    crop = lambda image, o: jax.lax.dynamic_slice(image, (o[0], o[1], 0), (h, w, image.shape[-1]))
    return jax.vmap(crop)(padded, offsets)


def train_classifier(images_NHWC, labels_N, num_classes: int, seed: int,
                     steps: int | None = None, progress: bool = False, desc: str = "classifier") -> dict:
    """Parameters of a SmallCNN trained on the images (class labels, or rotations when
    num_classes == 0). The data sit on one device; the network is small enough that one
    device trains it in seconds at digits/CIFAR sizes."""
    from tqdm import tqdm
    steps = steps or TRAIN_STEPS
    rotation_task = num_classes == 0
    model = SmallCNN(4 if rotation_task else num_classes)
    images = jnp.asarray(images_NHWC)
    labels = jnp.asarray(np.asarray(labels_N, np.int32))
    key = jax.random.key(seed)
    params = jax.jit(model.init)(jax.random.fold_in(key, 0), images[:1])["params"]
    optimizer = optax.adam(LEARNING_RATE)
    batch = min(BATCH_SIZE, len(images))

    @jax.jit  # the data are arguments, not closed-over constants (XLA would fold them slowly)
    def step(params, opt_state, images, labels, step_key):
        draw_key, shift_key, rotate_key = jax.random.split(step_key, 3)
        index = jax.random.randint(draw_key, (batch,), 0, images.shape[0])
        x, y = _shift_batch(images[index], shift_key), labels[index]
        if rotation_task:
            y = jax.random.randint(rotate_key, (batch,), 0, 4)
            x = _rotate_batch(x, y)

        def loss_fn(p):
            _, logits = model.apply({"params": p}, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        grads = jax.grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    opt_state = optimizer.init(params)
    train_key = jax.random.fold_in(key, 1)
    for i in tqdm(range(steps), desc=f"training the {desc}", disable=not progress, leave=False):
        params, opt_state = step(params, opt_state, images, labels, jax.random.fold_in(train_key, i))
    return jax.device_get(params)


class ClassifierExtractor:
    """Features (penultimate layer) and logits of a trained SmallCNN, batched over devices."""
    name = "classifier"

    def __init__(self, params, num_outputs: int, spec: dict, devices=None):
        self.model = SmallCNN(num_outputs)
        self.params, self.spec = params, spec
        self.conditional = spec["num_classes"] > 0
        digest = hashlib.sha256(flax.serialization.to_bytes(params)).hexdigest()
        self.id = f"classifier-{digest[:12]}"
        model = self.model
        self._apply = BatchedApply(
            lambda p, x: dict(zip(("features", "logits"), model.apply({"params": p}, x))),
            params, PER_DEVICE_BATCH, devices, desc="classifier features")

    def __call__(self, images_NHWC, progress: bool = False) -> dict:
        out = self._apply(images_NHWC, progress)
        if not self.conditional:  # rotation logits say nothing about classes
            out["logits"] = None
        return out

    def accuracy(self, images_NHWC, labels_N) -> float:
        logits = self._apply(images_NHWC)["logits"]
        return float(np.mean(np.argmax(logits, axis=1) == np.asarray(labels_N)))

    def protocol(self) -> dict:
        return {"extractor": "classifier", "extractor_id": self.id,
                "classifier": {k: v for k, v in self.spec.items() if k != "key"},
                "resize": f"none up to {MAX_INPUT_SIZE} px, else antialiased to {MAX_INPUT_SIZE}x{MAX_INPUT_SIZE}",
                "features": f"{FEATURE_DIM}-d penultimate layer"}


def classifier_spec(data_key: dict, image_shape, num_classes: int, num_images: int, seed: int) -> dict:
    spec = {"data": data_key, "image_shape": list(map(int, image_shape)), "num_classes": int(num_classes),
            "num_images": int(num_images), "seed": int(seed), "steps": TRAIN_STEPS,
            "arch_version": ARCH_VERSION,
            "task": "class" if num_classes else "rotation (self-supervised, 4 ways)"}
    spec["key"] = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    return spec


def real_classifier(images_NHWC, labels_N, num_classes: int, seed: int, cache_dir: str,
                    data_key: dict, devices=None, progress: bool = False
                    ) -> tuple[ClassifierExtractor, dict]:
    """The classifier of the real training images (trained once, then read from `cache_dir`)
    and {"held_out_accuracy", "num_train", "num_held_out"}."""
    spec = classifier_spec(data_key, np.shape(images_NHWC)[1:], num_classes, len(labels_N), seed)
    train_index, held_index = held_out_split(labels_N, seed)
    path = os.path.join(cache_dir, f"classifier-{spec['key']}.msgpack")
    num_outputs = num_classes or 4
    template = jax.eval_shape(SmallCNN(num_outputs).init, jax.random.key(0),
                              jax.ShapeDtypeStruct((1, *np.shape(images_NHWC)[1:]), jnp.uint8))["params"]
    if os.path.isfile(path):
        with open(path, "rb") as f:
            params = flax.serialization.from_bytes(template, f.read())
    else:
        images = np.asarray(images_NHWC)
        params = train_classifier(images[train_index], np.asarray(labels_N)[train_index],
                                  num_classes, seed, progress=progress,
                                  desc="real-data classifier (once; cached)")
        _write_atomic(path, flax.serialization.to_bytes(params))
        _write_atomic(path[:-len(".msgpack")] + ".json", json.dumps(spec, indent=1).encode())
    extractor = ClassifierExtractor(params, num_outputs, spec, devices)
    info = {"num_train": int(len(train_index)), "num_held_out": int(len(held_index))}
    if num_classes and len(held_index):
        images = np.asarray(images_NHWC)
        info["held_out_accuracy"] = extractor.accuracy(images[held_index],
                                                       np.asarray(labels_N)[held_index])
    return extractor, info


def gan_train_accuracy(fake_NHWC, fake_labels_N, num_classes: int, held_images_NHWC,
                       held_labels_N, seed: int, progress: bool = False) -> float:
    """GAN-train / CAS: train on generated images with their requested labels, test on real ones."""
    params = train_classifier(fake_NHWC, fake_labels_N, num_classes, seed, progress=progress,
                              desc="GAN-train classifier on generated images")
    logits = BatchedApply(lambda p, x: SmallCNN(num_classes).apply({"params": p}, x)[1], params,
                          PER_DEVICE_BATCH)(held_images_NHWC)
    return float(np.mean(np.argmax(logits, axis=1) == np.asarray(held_labels_N)))


def _write_atomic(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
