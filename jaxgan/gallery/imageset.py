"""What the gallery shows: the generated image set, the real images and each rater's blind trials.

Everything here is a pure function of (checkpoint step, gallery seed, rater name), so a restarted
server shows the same images under the same ids, and a rater who reloads the page resumes the same
trial sequence.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import logging
import re

import numpy as np
from PIL import Image

# The training data's loader, imported here only.
from jaxgan import data as data_lib

SEED_STRIDE = 1_000_000  # gallery seed k shows noise seeds k*STRIDE, k*STRIDE+1, ...
# Generated images in the blind trials come from seeds k*STRIDE + TRIAL_SEED_OFFSET on: never
# the gallery's own images, which a rater may just have seen (and could recognise).
TRIAL_SEED_OFFSET = SEED_STRIDE // 2
MIN_DISPLAY_PIXELS = 128  # images are enlarged (nearest neighbour, whole factors) to at least this
IMAGE_ID = re.compile(r"^s(\d{1,10})-c(\d{1,5}|u)-n(\d{1,10})$")


@dataclasses.dataclass(frozen=True)
class GalleryImage:
    id: str                 # "s<step>-c<class index, or u>-n<seed>", e.g. "s3000-c7-n12"
    seed: int
    class_index: int | None
    class_name: str | None
    step: int


def image_id(step: int, class_index: int | None, seed: int) -> str:
    return f"s{step}-c{'u' if class_index is None else class_index}-n{seed}"


def gallery_images(step: int, seed: int, num: int, class_names,
                   for_trials: bool = False) -> list[GalleryImage]:
    """`num` images, grouped by class (as equal shares as `num` allows, lower classes first),
    with consecutive noise seeds from seed * SEED_STRIDE (+ TRIAL_SEED_OFFSET for the trials)."""
    class_names = tuple(class_names)
    first = seed * SEED_STRIDE + (TRIAL_SEED_OFFSET if for_trials else 0)
    if not class_names:
        return [GalleryImage(image_id(step, None, first + i), first + i, None, None, step)
                for i in range(num)]
    classes = np.array_split(np.arange(num), len(class_names))
    return [GalleryImage(image_id(step, c, first + int(i)), first + int(i), c, class_names[c], step)
            for c, rows in enumerate(classes) for i in rows]


def display_scale(height: int) -> int:
    return max(1, -(-MIN_DISPLAY_PIXELS // height))


def png_bytes(image_HWC: np.ndarray, scale: int) -> bytes:
    """A plain PNG: nearest-neighbour enlarged, no text chunks, no gamma/ICC/time chunks; real and
    generated images go through exactly this, so their files differ only in pixels."""
    image = np.asarray(image_HWC, np.uint8)
    if scale > 1:
        image = image.repeat(scale, axis=0).repeat(scale, axis=1)
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def rater_seed(rater: str) -> int:
    """A rater's fixed trial seed: from the name alone (stable across restarts and machines)."""
    return int.from_bytes(hashlib.sha256(rater.encode("utf-8")).digest()[:8], "little")


@dataclasses.dataclass(frozen=True)
class Trial:
    position: int
    source: str             # "real" | "generated"
    index: int              # into the real pool, or into the gallery images


def trial_plan(rater: str, gallery_seed: int, step: int, num_trials: int, num_real: int,
               num_generated: int) -> list[Trial]:
    """The rater's blind trials: half real, half generated (real gets the odd one), drawn without
    repetition where the pools allow, in a random order fixed by (rater, gallery seed, step)."""
    rng = np.random.default_rng([rater_seed(rater), gallery_seed, step])
    n_real = (num_trials + 1) // 2
    n_generated = num_trials - n_real
    real = rng.choice(num_real, n_real, replace=n_real > num_real)
    generated = rng.choice(num_generated, n_generated, replace=n_generated > num_generated)
    trials = [("real", int(i)) for i in real] + [("generated", int(i)) for i in generated]
    order = rng.permutation(num_trials)
    return [Trial(position, *trials[k]) for position, k in enumerate(order)]


def real_pool_indices(labels: np.ndarray, images: list[GalleryImage], seed: int, step: int):
    """Rows of the training data shown as real images: for each gallery image, a random real image
    of its class (so real and generated trials have the same class mix); without repetition
    where the class has enough images."""
    rng = np.random.default_rng([seed, step, 1])
    labels = np.asarray(labels)
    wanted: dict[int, int] = {}
    for image in images:
        key = -1 if image.class_index is None else image.class_index
        wanted[key] = wanted.get(key, 0) + 1
    chosen = []
    for key, count in sorted(wanted.items()):
        rows = np.arange(len(labels)) if key == -1 else np.flatnonzero(labels == key)
        chosen.extend(int(r) for r in rng.choice(rows, count, replace=count > len(rows)))
    return chosen


def load_real_images(data_config, images: list[GalleryImage], seed: int, step: int):
    """(rows, uint8 images (N, H, W, C), labels) from the run's own data source, at the training
    resolution, prepared exactly as training saw them (the same loader).

    The loader is told the set does not fit in host memory (host_cache_mb=0), so a folder or TFDS
    set is only scanned, and just the rows shown are decoded, not the whole set.
    """
    data_config = copy.deepcopy(data_config)
    data_config.host_cache_mb = 0
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the loader's notes are for training ("decoded as training needs")
    try:
        dataset = data_lib.load(data_config)
    finally:
        root.setLevel(level)
    try:
        rows = real_pool_indices(dataset.labels, images, seed, step)
        pixels = np.asarray(dataset.images[np.asarray(rows)])
        return rows, pixels, np.asarray(dataset.labels)[rows]
    finally:
        dataset.close()
