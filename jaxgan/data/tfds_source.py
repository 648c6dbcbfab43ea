"""TFDS data sets (`data.source = tfds:NAME` or `tfds:NAME/CONFIG`), by one of two readers.

- `data_source` (no TensorFlow): sets prepared in array_record format are read through
  `tfds.data_source`, which gives random access to the records (TFDS decodes them with numpy;
  asking it to leave images encoded would need TensorFlow). So a set can be decoded whole into host
  memory, or read from disk a batch at a time (each host only its rows) when it is larger than
  `data.host_cache_mb`; then a conditional set's labels cost one decoding pass at start.
- `tf.data` (when TensorFlow is installed: `pip install 'jaxgan[tf]'`): for sets prepared in
  TFDS's default tfrecord format, or not prepared at all (then TFDS downloads and prepares them
  first, unless `data.download` is False). The records are read and decoded by tf.data in parallel
  and held in host memory. TensorFlow is hidden from GPUs and TPUs before it starts, so it never
  takes their memory.

`data.tfds_reader` = "auto" (the default: data_source when the set is in array_record format, else
tf.data when TensorFlow is installed), "data_source" or "tf.data".
"""
from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
from typing import Callable

import jax
import numpy as np
from PIL import Image

from jaxgan.errors import UserError
from jaxgan.data.folder import default_num_workers, image_to_array, ordered_map, short_error

PREPARE_HINT = ("prepare it once with TensorFlow installed: pip install 'jaxgan[tf]' && "
                "tfds build {name} --file_format=array_record")


@dataclasses.dataclass(frozen=True)
class TfdsSet:
    """A split, either decoded (`images`) or readable one record at a time (`read`)."""
    labels: np.ndarray                  # int32 (N,); zeros when unconditional
    class_names: tuple[str, ...]
    images: np.ndarray | None = None    # uint8 (N, R, R, C)
    read: Callable[[int], tuple] | None = None  # index -> (uint8 (R, R, C), None) | (None, why)


@dataclasses.dataclass(frozen=True)
class _Split:
    """What to read: a split of a TFDS set, its feature keys and the pixels wanted."""
    spec: str                        # "name" or "name:version", as in data.source
    split: str
    data_dir: str | None
    image_key: str
    label_key: str | None            # None: unconditional (every label 0)
    class_names: tuple[str, ...]
    shape: tuple[int, int, int]      # (R, R, C)

    @property
    def named(self) -> str:
        """The set and split, as messages name them."""
        return f"{self.spec!r} split {self.split!r}"


def tensorflow_installed() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def import_tfds():
    """tensorflow_datasets, with TensorFlow (when installed, as tfds may import it) hidden from
    GPUs and TPUs first, so that it never takes the memory JAX needs."""
    if tensorflow_installed():
        import tensorflow as tf
        for kind in ("GPU", "TPU"):
            try:
                tf.config.set_visible_devices([], kind)
            except (RuntimeError, ValueError):  # already initialised, or no such device type
                pass
    import tensorflow_datasets as tfds
    return tfds


def open_tfds(data_config, max_bytes: float) -> TfdsSet:
    """The split named by `data_config`; decoded whole unless larger than `max_bytes`."""
    spec = data_config.source[len("tfds:"):]
    split = data_config.split
    reader = data_config.tfds_reader
    data_dir = data_config.tfds_data_dir or None
    tfds = import_tfds()
    builder = _builder(tfds, spec, data_dir)
    what = _Split(spec, split, data_dir, *_features(tfds, builder, data_config.conditional),
                  (data_config.resolution, data_config.resolution, data_config.channels))
    if reader != "tf.data":
        source, error = _data_source(tfds, spec, split, data_dir)
        if source is not None:
            return _from_data_source(source, what, max_bytes)
        if reader == "data_source" or not tensorflow_installed():
            where = data_dir or os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")
            how = ("data.tfds_reader='data_source' reads only that format" if tensorflow_installed()
                   else "without TensorFlow jaxgan cannot prepare or read it")
            raise UserError(f"TFDS data set {spec!r} (split {split!r}) is not prepared in {where} in "
                            f"array_record format ({error}), and {how}: "
                            f"{PREPARE_HINT.format(name=spec)} (or install the tf extra and let "
                            "jaxgan read it through tf.data)")
    elif not tensorflow_installed():
        raise UserError("data.tfds_reader='tf.data' needs TensorFlow: pip install 'jaxgan[tf]'")
    return _from_tf_data(tfds, builder, what, max_bytes, data_config.download)


def _builder(tfds, name: str, data_dir):
    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise UserError(f"unknown TFDS data set {name!r} (data.source 'tfds:{name}'); see "
                        "https://www.tensorflow.org/datasets/catalog for the names") from None
    except (ValueError, KeyError) as error:  # e.g. an unknown config of a known set
        raise UserError(f"TFDS data set {name!r}: {error}") from None


def _features(tfds, builder, conditional: bool):
    """(image feature key, label feature key or None, class names)."""
    features = builder.info.features
    images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
    if not images:
        raise UserError(f"TFDS data set {builder.name!r} has no image feature")
    image_key = "image" if "image" in images else images[0]
    label = features["label"] if "label" in features else None
    if conditional and isinstance(label, tfds.features.ClassLabel):
        return image_key, "label", tuple(label.names)
    return image_key, None, ()


def _data_source(tfds, spec, split, data_dir):
    """(random-access source, None) or (None, why not)."""
    try:
        source = tfds.data_source(spec, split=split, data_dir=data_dir, download=False)
    except Exception as error:  # not prepared, or prepared in another file format
        return None, type(error).__name__
    if len(source) == 0:
        raise UserError(f"TFDS data set {spec!r} split {split!r} is empty")
    return source, None


def _from_data_source(source, what: _Split, max_bytes) -> TfdsSet:
    spec, image_key, label_key, class_names, shape = (what.named, what.image_key, what.label_key,
                                                      what.class_names, what.shape)
    resolution, _, channels = shape
    n = len(source)

    def record(i: int) -> dict:
        try:
            return source[int(i)]
        except Exception as error:  # noqa: BLE001 - an I/O error: never skipped silently
            raise UserError(f"cannot read record {i} of TFDS data set {spec}: "
                            f"{short_error(error)}") from None

    def read(i: int):
        """(uint8 (R, R, C), None), or (None, why) when the record's image cannot be decoded."""
        pixels = record(i)[image_key]  # a failure to read is an error, not a bad image
        try:
            return _pixels_to_array(pixels, resolution, channels), None
        except Exception as error:  # noqa: BLE001 - Pillow raises many types for bad data
            return None, f"cannot be decoded: {short_error(error)}"

    if label_key is None:
        labels = np.zeros(n, np.int32)
    else:  # a pass over the records (TFDS decodes their images too: see the module docstring)
        labels = np.fromiter(_parallel(lambda i: int(record(i)[label_key]), range(n)), np.int64, n)
        labels = check_labels(labels, len(class_names), spec)
    if n * int(np.prod(shape)) > max_bytes:
        return TfdsSet(labels=labels, class_names=class_names, read=read)
    images = np.empty((n, *shape), np.uint8)
    kept, skipped = np.zeros(n, bool), []
    for i, (array, why) in enumerate(_parallel(read, range(n))):
        if array is None:
            skipped.append(f"record {i} ({why})")
        else:
            images[i], kept[i] = array, True
    if skipped:
        logging.warning("Skipped %d records of %s that cannot be decoded: %s", len(skipped), spec,
                        "; ".join(skipped[:5]))
        if not kept.any():
            raise UserError(f"no image of TFDS data set {spec} can be decoded")
        images, labels = images[kept], labels[kept]
    return TfdsSet(labels=labels, class_names=class_names, images=images)


def _prepare(tfds, builder, spec, data_dir, download: bool):
    """The builder of a prepared set: downloaded and prepared first when it is not (by the first
    host only, the others wait, so that they never write the same files at once)."""
    if builder.is_prepared():
        return builder
    if not download:
        raise UserError(f"TFDS data set {spec!r} is not prepared in {builder.data_dir} and "
                        "data.download is False")
    if jax.process_index() == 0:
        try:
            builder.download_and_prepare()
        except Exception as error:  # noqa: BLE001 - offline, manual download needed, disk full
            raise UserError(f"TFDS data set {spec!r} is not prepared and could not be downloaded "
                            f"and prepared: {type(error).__name__}: {short_error(error)}") from None
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(f"jaxgan: TFDS {spec} prepared")
        return _builder(tfds, spec, data_dir)
    return builder


def _from_tf_data(tfds, builder, what: _Split, max_bytes, download: bool) -> TfdsSet:
    spec, split, image_key, label_key, class_names, shape = (
        what.spec, what.split, what.image_key, what.label_key, what.class_names, what.shape)
    builder = _prepare(tfds, builder, spec, what.data_dir, download)
    limit = int(max_bytes // int(np.prod(shape)))
    too_big = UserError(f"TFDS data set {spec!r} split {split!r} is larger than "
                        "data.host_cache_mb at this resolution; tf.data holds a set in host "
                        "memory, so raise data.host_cache_mb, or prepare it once for streaming "
                        f"from disk: tfds build {spec} --file_format=array_record")
    try:
        expected = builder.info.splits[split].num_examples
    except Exception:  # noqa: BLE001 - a split expression or missing metadata: counted below
        expected = 0
    if expected > limit:
        raise too_big
    try:
        dataset = builder.as_dataset(split=split, shuffle_files=False)
    except Exception as error:  # noqa: BLE001 - e.g. a split the set does not have
        raise UserError(f"TFDS data set {spec!r} cannot read split {split!r}: "
                        f"{short_error(error)}") from None
    resolution, _, channels = shape

    def convert(example):
        return (_pixels_to_array(example[image_key], resolution, channels),
                int(example[label_key]) if label_key else 0)
    images, labels = [], []
    # One example at a time (image sizes may differ, so no batching), converted in threads.
    for image, label in _parallel(convert, tfds.as_numpy(dataset.prefetch(512))):
        images.append(image)
        labels.append(label)
        if len(images) > limit:
            raise too_big
    if not images:
        raise UserError(f"TFDS data set {spec!r} split {split!r} is empty")
    labels = check_labels(np.array(labels, np.int64), len(class_names), f"{spec!r} split {split!r}")
    return TfdsSet(labels=labels, class_names=class_names, images=np.stack(images))


def check_labels(labels_N: np.ndarray, num_classes: int, spec: str) -> np.ndarray:
    """int32 labels, or a UserError when any is outside 0..num_classes-1: -1 marks an unlabelled
    example (TFDS's unlabelled splits), which a class-conditional GAN must not take for a class
    (an index of -1 would wrap to the last class), and larger labels would index past the
    class embedding."""
    bad = (labels_N < 0) | (labels_N >= num_classes)
    if not bad.any():
        return labels_N.astype(np.int32)
    count, unlabelled = int(bad.sum()), int((labels_N == -1).sum())
    if unlabelled == count:
        what = f"{count} of {len(labels_N)} examples have no label (-1)"
    else:
        first = int(labels_N[bad & (labels_N != -1)][0])
        what = (f"{count} of {len(labels_N)} examples have a label outside 0..{num_classes - 1} "
                f"({first}{f'; {unlabelled} unlabelled' if unlabelled else ''})")
    raise UserError(f"TFDS data set {spec}: {what}; use a labelled split (data.split), or "
                    "data.conditional=False to train without labels")


def _pixels_to_array(pixels, resolution: int, channels: int) -> np.ndarray:
    """A decoded TFDS image (H, W, C) -> uint8 (R, R, channels), exactly as a folder's image."""
    pixels = np.asarray(pixels)
    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    return image_to_array(image, resolution, channels)


def _parallel(fn, items):
    """fn over items in threads, results in order, only a few in flight (sets can be huge)."""
    return ordered_map(fn, items, default_num_workers())

