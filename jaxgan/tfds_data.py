"""TFDS data sets (`data.source = tfds:NAME` or `tfds:NAME/CONFIG`), read without TensorFlow.

Sets prepared in array_record format are read through `tfds.data_source` (random access, no
TensorFlow, no tf.data), decoded and resized in parallel threads and held in host memory; from
there jaxgan puts them on the devices (or streams them, see `data.HostBatches`). Nothing is
downloaded at training time: preparing a set is a separate, one-off step.
"""
from __future__ import annotations

import concurrent.futures
import os

import numpy as np
from PIL import Image

from jaxgan.errors import UserError
from jaxgan.folder import default_num_workers, image_to_array

PREPARE_HINT = ("prepare it once with TensorFlow installed: pip install 'jaxgan[tf]' && "
                "tfds build {name} --file_format=array_record")


def _builder(name: str, data_dir):
    import tensorflow_datasets as tfds
    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise UserError(f"unknown TFDS data set {name!r} (data.source 'tfds:{name}'); see "
                        "https://www.tensorflow.org/datasets/catalog for the names") from None
    except (ValueError, KeyError) as error:  # e.g. an unknown config of a known set
        raise UserError(f"TFDS data set {name!r}: {error}") from None


def _features(builder, conditional: bool):
    """(image feature key, label feature key or None, class names)."""
    import tensorflow_datasets as tfds
    features = builder.info.features
    images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
    if not images:
        raise UserError(f"TFDS data set {builder.name!r} has no image feature")
    image_key = "image" if "image" in images else images[0]
    label = features["label"] if "label" in features else None
    if conditional and isinstance(label, tfds.features.ClassLabel):
        return image_key, "label", tuple(label.names)
    return image_key, None, ()


def load_tfds(spec: str, split: str, resolution: int, channels: int, conditional: bool,
              data_dir=None):
    """(images uint8 (N, R, R, C), labels int32 (N,), class names) of a prepared TFDS split."""
    import tensorflow_datasets as tfds
    builder = _builder(spec, data_dir)
    image_key, label_key, class_names = _features(builder, conditional)
    try:
        source = tfds.data_source(spec, split=split, data_dir=data_dir, download=False)
    except Exception as error:  # not prepared, or prepared in another file format
        where = data_dir or os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")
        raise UserError(f"TFDS data set {spec!r} (split {split!r}) is not prepared in {where} in "
                        f"array_record format ({type(error).__name__}), and jaxgan does not "
                        f"download at training time: {PREPARE_HINT.format(name=spec)}") from None
    n = len(source)
    if n == 0:
        raise UserError(f"TFDS data set {spec!r} split {split!r} is empty")

    def load_range(start):
        stop = min(n, start + 256)
        rows = [source[i] for i in range(start, stop)]
        images = np.stack([image_to_array(Image.fromarray(np.asarray(r[image_key]).squeeze()),
                                          resolution, channels) for r in rows])
        labels = np.array([int(r[label_key]) if label_key else 0 for r in rows], np.int32)
        return images, labels

    with concurrent.futures.ThreadPoolExecutor(default_num_workers()) as pool:
        parts = list(pool.map(load_range, range(0, n, 256)))
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            class_names)
