"""Data sources -> images and labels, and their placement on the devices.

`data.source` names the source: `digits` (scikit-learn's handwritten digits, shipped inside
scikit-learn, no download), `tfds:NAME[/CONFIG]` (a prepared TFDS set, see `jaxgan.tfds_data`) or
`folder:PATH` (your images, one subfolder per class; see `jaxgan.folder`).

Where the images live, by size (uint8 at the training resolution):
- up to `data.device_cache_mb` (default 512): on the devices, whole; batches are drawn inside the
  jitted step (`train_step.draw_batch`);
- up to `data.host_cache_mb` (default 4096): decoded once into host memory, batches streamed to the
  devices (`HostBatches`);
- larger: left on disk and decoded a batch at a time (`StreamedImages`), each host only its rows.
"""
from __future__ import annotations

import dataclasses
import logging
import threading

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from PIL import Image

from jaxgan import folder
from jaxgan.errors import UserError


class StreamedImages:
    """Stands for a uint8 (N, H, W, C) array whose rows are decoded from disk when indexed.

    `read(i)` returns (row i as uint8 (H, W, C), None), or (None, why) when that file's contents
    cannot be decoded; such a row is replaced by the next row of the same class that decodes, and
    its file is named once in the log. That depends on the files alone, so a resumed run still
    draws exactly the batches of an uninterrupted one. A file that cannot be *read* (an I/O error,
    a file deleted mid-run) must raise instead: skipping it would make the batches depend on when
    the error happened.
    """

    MAX_FAILURES_IN_A_ROW = 10  # then something is wrong with the whole set, not with a file

    def __init__(self, read, labels: np.ndarray, image_shape, describe=str, num_workers=None):
        import concurrent.futures
        self._read, self._labels, self._describe = read, labels, describe
        self.shape = (len(labels), *image_shape)
        self.dtype = np.dtype(np.uint8)
        self.nbytes = int(np.prod(self.shape))
        self._failed: set[int] = set()
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(num_workers or folder.default_num_workers(),
                                                           thread_name_prefix="decode")

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        """Rows `index` (an int or an int array; not a slice) as uint8 (len(index), H, W, C)."""
        return np.stack(list(self._pool.map(self._read_usable, np.asarray(index).reshape(-1))))

    def _read_usable(self, i: int) -> np.ndarray:
        n, failures = len(self), 0
        for k in range(i, i + n):
            k %= n
            if self._labels[k] != self._labels[i] or k in self._failed:
                continue
            array, why = self._read(k)
            if array is not None:
                return array
            with self._lock:  # two threads may meet the same bad file: name it once
                first = k not in self._failed
                self._failed.add(k)
            if first:
                logging.warning("Skipped %s (%s): a file of its class is used instead",
                                self._describe(k), why)
            failures += 1
            if failures == self.MAX_FAILURES_IN_A_ROW:
                raise UserError(f"{failures} images in a row cannot be decoded, the last "
                                f"{self._describe(k)} ({why}); is the data set damaged?")
        raise UserError(f"no image of class {int(self._labels[i])} can be decoded any more")

    def close(self):
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclasses.dataclass(frozen=True)
class InMemoryDataset:
    """The images with their labels; `images` is an array, or StreamedImages for sets left on
    disk (then `close()` when done with it)."""
    images: np.ndarray          # uint8 (N, H, W, C), or StreamedImages for sets left on disk
    labels: np.ndarray          # int32 (N,); all zeros when unconditional
    class_names: tuple[str, ...]  # empty when unconditional

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.images.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def close(self):
        if isinstance(self.images, StreamedImages):
            self.images.close()

    def facts(self) -> dict:
        """What sampling needs to know about the data, saved with every checkpoint."""
        return {"class_names": list(self.class_names), "image_shape": list(self.image_shape),
                "num_classes": self.num_classes, "num_examples": int(self.labels.shape[0])}


def load(data_config) -> InMemoryDataset:
    source = data_config.source
    host_cache_bytes = data_config.get("host_cache_mb", 4096) * 2**20
    if source == "digits":
        dataset = load_digits(data_config.resolution, data_config.channels)
    elif source.startswith("folder:"):
        dataset = load_image_folder(source[len("folder:"):], data_config.resolution,
                                    data_config.channels, host_cache_bytes,
                                    data_config.get("max_image_pixels",
                                                    folder.DEFAULT_MAX_IMAGE_PIXELS))
    elif source.startswith("tfds:") and len(source) > len("tfds:"):
        from jaxgan.tfds_data import open_tfds  # imports tensorflow_datasets only when asked
        split = open_tfds(data_config, host_cache_bytes)
        images = split.images
        if images is None:
            images = StreamedImages(split.read, split.labels, _shape(data_config),
                                    describe=lambda i: f"record {i} of {source}")
        dataset = InMemoryDataset(images=images, labels=split.labels, class_names=split.class_names)
    else:
        raise UserError(f"unknown data.source {source!r}: expected 'digits', 'tfds:NAME' or "
                        "'folder:PATH'")
    if not data_config.get("conditional", True):
        dataset = dataclasses.replace(dataset, labels=np.zeros_like(dataset.labels),
                                      class_names=())
    return dataset


def _shape(data_config) -> tuple[int, int, int]:
    return (data_config.resolution, data_config.resolution, data_config.channels)


def load_digits(resolution: int, channels: int) -> InMemoryDataset:
    """scikit-learn's 1,797 8x8 digits (values 0-16), resized to `resolution` with bicubic."""
    from sklearn.datasets import load_digits as sklearn_digits
    digits = sklearn_digits()
    images = np.stack([_resize_gray(image, resolution) for image in digits.images])
    images = np.repeat(images[..., None], channels, axis=-1)
    return InMemoryDataset(images=images, labels=digits.target.astype(np.int32),
                           class_names=tuple(str(d) for d in range(10)))


def load_image_folder(path: str, resolution: int, channels: int,
                      host_cache_bytes: float = float("inf"),
                      max_pixels: int = folder.DEFAULT_MAX_IMAGE_PIXELS) -> InMemoryDataset:
    """Decoded into host memory when the candidate files would fit `host_cache_bytes`, else
    scanned (headers only) and decoded a batch at a time while training. Images of more than
    `max_pixels` pixels (data.max_image_pixels) are skipped."""
    if not path:
        raise UserError("data.source 'folder:' needs a path: folder:/path/to/images")
    if not isinstance(max_pixels, int) or isinstance(max_pixels, bool) or max_pixels < 1:
        raise UserError(f"data.max_image_pixels must be a positive whole number, got {max_pixels!r}")
    listing = folder.list_folder(path)
    if len(listing.tasks) * resolution * resolution * channels <= host_cache_bytes:
        loaded = folder.load_folder(listing, resolution, channels, max_pixels=max_pixels)
        images = loaded.images
    else:
        loaded = folder.scan_folder(listing)
        paths = loaded.paths

        def read(i):
            array, why = folder.decode_file(paths[i], resolution, channels, max_pixels)
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
    return InMemoryDataset(images=images, labels=loaded.labels,
                           class_names=tuple(loaded.class_names))


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


def fits_on_device(dataset: InMemoryDataset, device_cache_mb: float) -> bool:
    if isinstance(dataset.images, StreamedImages):
        return False
    return dataset.images.nbytes + dataset.labels.nbytes <= device_cache_mb * 2**20


def host_batch_indices(seed: int, step: int, num_examples: int, batch_size: int) -> np.ndarray:
    """The examples of step `step`: a pure function of (seed, step), so a resumed run draws
    exactly the batches the uninterrupted run would have (none repeated, none skipped)."""
    return np.random.default_rng([seed, step]).integers(0, num_examples, batch_size)


class HostBatches:
    """Batches streamed from host memory, for sets too big to hold on the devices.

    Each host prepares only its share of every global batch, `prefetch` steps ahead in a
    background thread (numpy releases the GIL for the gathers), and places it on the mesh with
    `jax.make_array_from_process_local_data`. `get(step)` returns the global batch of `step`.
    """

    def __init__(self, dataset: InMemoryDataset, mesh, batch_size: int, seed: int,
                 random_flip: bool, prefetch: int = 2):
        import concurrent.futures
        self.dataset, self.mesh, self.batch_size, self.seed = dataset, mesh, batch_size, seed
        self.random_flip = random_flip
        self.prefetch = max(2, prefetch)
        count, index = jax.process_count(), jax.process_index()
        share = batch_size // count
        self._rows = slice(index * share, (index + 1) * share)
        self._sharding = NamedSharding(mesh, P("data"))
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
        self._pending = {}

    def _host_batch(self, step: int):
        index = host_batch_indices(self.seed, step, len(self.dataset.labels), self.batch_size)
        index = index[self._rows]
        images = (self.dataset.images[index].astype(np.float32) - 127.5) / 127.5
        if self.random_flip:
            flip = np.random.default_rng([self.seed, step, 1]).random(self.batch_size) < 0.5
            images = np.where(flip[self._rows, None, None, None], images[:, :, ::-1], images)
        return {"image": images, "label": self.dataset.labels[index]}

    def get(self, step: int) -> dict:
        for ahead in range(step, step + self.prefetch + 1):
            if ahead not in self._pending:
                self._pending[ahead] = self._pool.submit(self._host_batch, ahead)
        host = self._pending.pop(step).result()
        for stale in [s for s in self._pending if s < step]:
            self._pending.pop(stale).cancel()
        return {name: jax.make_array_from_process_local_data(
                    self._sharding, value, (self.batch_size, *value.shape[1:]))
                for name, value in host.items()}

    def close(self):
        self._pool.shutdown(wait=False, cancel_futures=True)
