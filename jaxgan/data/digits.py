"""scikit-learn's handwritten digits: the built-in data set (shipped inside scikit-learn)."""
from __future__ import annotations

import gzip
import importlib.util
import os

import numpy as np
from PIL import Image

from jaxgan.data.dataset import Dataset


def load_digits(resolution: int, channels: int) -> Dataset:
    """scikit-learn's 1,797 8x8 digits (values 0-16), resized to `resolution` with bicubic."""
    images_0to16, labels = digits_arrays()
    images = np.stack([_resize_gray(image, resolution) for image in images_0to16])
    images = np.repeat(images[..., None], channels, axis=-1)
    return Dataset(images=images, labels=labels, class_names=tuple(str(d) for d in range(10)))


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 8, 8) float, labels (1797,) int32), as sklearn.datasets.load_digits gives.

    Read from scikit-learn's own file without importing scikit-learn: `import sklearn.datasets`
    costs ~2 s, paid by every train.py and sample.py start. Falls back to scikit-learn's loader
    where its files are laid out differently."""
    spec = importlib.util.find_spec("sklearn")  # finds the package without running it
    path = os.path.join(spec.submodule_search_locations[0], "datasets", "data", "digits.csv.gz") \
        if spec and spec.submodule_search_locations else ""
    if not os.path.isfile(path):
        from sklearn.datasets import load_digits as sklearn_digits
        digits = sklearn_digits()
        return digits.images, digits.target.astype(np.int32)
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",")
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int32)


def _resize_gray(image_0to16, resolution: int) -> np.ndarray:
    resized = Image.fromarray(image_0to16.astype(np.float32)).resize(
        (resolution, resolution), Image.BICUBIC)
    return np.clip(np.round(np.asarray(resized) * (255.0 / 16.0)), 0, 255).astype(np.uint8)
