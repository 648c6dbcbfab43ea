"""Data sources -> images and labels, and their placement on the devices.

`data.source` names the source: `digits` (scikit-learn's handwritten digits, shipped inside
scikit-learn, no download), `tfds:NAME[/CONFIG]` (a prepared TFDS set, see `jaxgan.data.tfds_source`) or
`folder:PATH` (your images, one subfolder per class; see `jaxgan.data.folder`).

Where the images live, by size (uint8 at the training resolution):
- up to `data.device_cache_mb` (default 512): on the devices, whole; batches are drawn inside the
  jitted step (`training.pipeline`);
- up to `data.host_cache_mb` (default 4096): decoded once into host memory, batches streamed to the
  devices (`training.pipeline.HostBatches`);
- larger: left on disk and decoded a batch at a time (`StreamedImages`), each host only its rows.
"""
from __future__ import annotations

import dataclasses
import logging

import numpy as np

from jaxgan.data import folder
from jaxgan.data.dataset import Dataset, StreamedImages
from jaxgan.data.digits import load_digits
from jaxgan.errors import UserError

__all__ = ["Dataset", "StreamedImages", "load", "load_image_folder"]


def load(data_config) -> Dataset:
    """The data set `data_config` (validated by jaxgan.config) describes."""
    source = data_config.source
    host_cache_bytes = data_config.host_cache_mb * 2**20
    if source == "digits":
        dataset = load_digits(data_config.resolution, data_config.channels)
    elif source.startswith("folder:"):
        dataset = load_image_folder(source[len("folder:"):], data_config.resolution,
                                    data_config.channels, host_cache_bytes,
                                    data_config.max_image_pixels, data_config.fit)
    elif source.startswith("tfds:") and len(source) > len("tfds:"):
        from jaxgan.data.tfds_source import open_tfds  # imports tensorflow_datasets only when asked
        split = open_tfds(data_config, host_cache_bytes)
        images = split.images
        if images is None:
            images = StreamedImages(split.read, split.labels, _shape(data_config),
                                    describe=lambda i: f"record {i} of {source}")
        dataset = Dataset(images=images, labels=split.labels, class_names=split.class_names)
    else:
        raise UserError(f"unknown data.source {source!r}: expected 'digits', 'tfds:NAME' or "
                        "'folder:PATH'")
    if not data_config.conditional:
        dataset = dataclasses.replace(dataset, labels=np.zeros_like(dataset.labels),
                                      class_names=())
    return dataset


def _shape(data_config) -> tuple[int, int, int]:
    return (data_config.resolution, data_config.resolution, data_config.channels)


def load_image_folder(path: str, resolution: int, channels: int,
                      host_cache_bytes: float = float("inf"),
                      max_pixels: int = folder.DEFAULT_MAX_IMAGE_PIXELS,
                      fit: str = "crop") -> Dataset:
    """Decoded into host memory when the candidate files would fit `host_cache_bytes`, else
    scanned (headers only) and decoded a batch at a time while training. Images of more than
    `max_pixels` pixels (data.max_image_pixels) are skipped; non-square ones are cropped or
    padded to a square as `fit` (data.fit) says."""
    if not path:
        raise UserError("data.source 'folder:' needs a path: folder:/path/to/images")
    listing = folder.list_folder(path)
    if len(listing.tasks) * resolution * resolution * channels <= host_cache_bytes:
        loaded = folder.load_folder(listing, resolution, channels, max_pixels=max_pixels, fit=fit)
        images = loaded.images
    else:
        loaded = folder.scan_folder(listing)
        paths = loaded.paths

        def read(i):
            array, why = folder.decode_file(paths[i], resolution, channels, max_pixels, fit=fit)
            if array is None and not folder.is_bad_content(why):
                raise UserError(f"cannot read {paths[i]} while training: {why}")
            return array, why
        images = StreamedImages(read, loaded.labels, (resolution, resolution, channels),
                                describe=lambda i: paths[i])
        logging.warning("%d images in %s are decoded from disk a batch at a time, as training "
                        "needs them: decoded they would not fit data.host_cache_mb",
                        len(paths), path)
    if loaded.skipped:
        logging.warning("%s", folder.skipped_report(loaded.skipped))
    return Dataset(images=images, labels=loaded.labels,
                           class_names=tuple(loaded.class_names))
