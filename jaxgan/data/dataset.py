"""A training set as the rest of jaxgan sees it: uint8 images, int labels, class names."""
from __future__ import annotations

import dataclasses
import logging
import threading

import numpy as np

from jaxgan.data import folder
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
class Dataset:
    """A training set: its images (in memory, or left on disk as StreamedImages: then `close()`
    it when done), labels and class names."""
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
