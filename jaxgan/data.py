"""Data sources -> images and labels, and their placement on the devices.

`data.source` names the source: `digits` (scikit-learn's handwritten digits, shipped inside
scikit-learn, no download). Small sets are held on the devices whole and batches are drawn inside
the jitted step (`train_step.draw_batch`).
"""
from __future__ import annotations

import dataclasses

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from PIL import Image

from jaxgan.errors import UserError


@dataclasses.dataclass(frozen=True)
class InMemoryDataset:
    images: np.ndarray          # uint8 (N, H, W, C)
    labels: np.ndarray          # int32 (N,); all zeros when unconditional
    class_names: tuple[str, ...]  # empty when unconditional

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.images.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def facts(self) -> dict:
        """What sampling needs to know about the data, saved with every checkpoint."""
        return {"class_names": list(self.class_names), "image_shape": list(self.image_shape),
                "num_classes": self.num_classes, "num_examples": int(self.labels.shape[0])}


def load(data_config) -> InMemoryDataset:
    source = data_config.source
    if source == "digits":
        dataset = load_digits(data_config.resolution, data_config.channels)
    else:
        raise UserError(f"unknown data.source {source!r}: expected 'digits'")
    if not data_config.get("conditional", True):
        dataset = dataclasses.replace(dataset, labels=np.zeros_like(dataset.labels),
                                      class_names=())
    return dataset


def load_digits(resolution: int, channels: int) -> InMemoryDataset:
    """scikit-learn's 1,797 8x8 digits (values 0-16), resized to `resolution` with bicubic."""
    from sklearn.datasets import load_digits as sklearn_digits
    digits = sklearn_digits()
    images = np.stack([_resize_gray(image, resolution) for image in digits.images])
    images = np.repeat(images[..., None], channels, axis=-1)
    return InMemoryDataset(images=images, labels=digits.target.astype(np.int32),
                           class_names=tuple(str(d) for d in range(10)))


def _resize_gray(image_0to16, resolution: int) -> np.ndarray:
    resized = Image.fromarray(image_0to16.astype(np.float32)).resize(
        (resolution, resolution), Image.BICUBIC)
    return np.clip(np.round(np.asarray(resized) * (255.0 / 16.0)), 0, 255).astype(np.uint8)


def to_device(dataset: InMemoryDataset, mesh) -> dict:
    """The whole data set, replicated on every device of the mesh (every host holds all of it)."""
    replicated = NamedSharding(mesh, P())

    def put(array):
        return jax.make_array_from_callback(array.shape, replicated, lambda index: array[index])
    return {"image": put(dataset.images), "label": put(dataset.labels)}
