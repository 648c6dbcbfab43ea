"""scikit-learn's handwritten digits: the built-in data set (shipped inside scikit-learn)."""
from __future__ import annotations

import numpy as np
from PIL import Image

from jaxgan.data.dataset import Dataset


def load_digits(resolution: int, channels: int) -> Dataset:
    """scikit-learn's 1,797 8x8 digits (values 0-16), resized to `resolution` with bicubic."""
    from sklearn.datasets import load_digits as sklearn_digits
    digits = sklearn_digits()
    images = np.stack([_resize_gray(image, resolution) for image in digits.images])
    images = np.repeat(images[..., None], channels, axis=-1)
    return Dataset(images=images, labels=digits.target.astype(np.int32),
                           class_names=tuple(str(d) for d in range(10)))


def _resize_gray(image_0to16, resolution: int) -> np.ndarray:
    resized = Image.fromarray(image_0to16.astype(np.float32)).resize(
        (resolution, resolution), Image.BICUBIC)
    return np.clip(np.round(np.asarray(resized) * (255.0 / 16.0)), 0, 255).astype(np.uint8)
