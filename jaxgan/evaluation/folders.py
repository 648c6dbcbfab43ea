"""Image sets for `python -m jaxgan.evaluate --fake DIR --real ...`: a folder of files as they
are (as pytorch-fid and clean-fid read them), or a jaxgan data source at the same size."""
from __future__ import annotations

import dataclasses
import os

import numpy as np
from PIL import Image

from jaxgan.config import default_config
from jaxgan.data import folder
from jaxgan.errors import UserError
from jaxgan.evaluation.evaluator import ImageSet, load_real


def read_image_folder(path: str) -> ImageSet:
    """Every usable image under `path` (class subfolders give labels), at its own size: all must
    be square and equally sized, as a generator writes them. Grey files stay one channel."""
    listing = folder.list_folder(path)
    if not listing.tasks:
        raise UserError(f"no images in {path}")
    first = listing.tasks[0][0]
    try:
        with Image.open(first) as image:
            size, mode = image.size, image.mode
    except OSError as error:
        raise UserError(f"cannot read {first}: {error}") from None
    if size[0] != size[1]:
        raise UserError(f"{first} is {size[0]}x{size[1]}: generated images must be square")
    channels = 1 if mode in ("L", "LA", "1", "I;16", "I") else 3
    loaded = folder.load_folder(listing, size[0], channels)
    sizes = {Image.open(p).size for p, _ in listing.tasks[:200]}
    if len(sizes) > 1:
        raise UserError(f"images in {path} have different sizes ({sorted(sizes)[:3]}): resize them "
                        "to one size first, so that no resizing hides in the metric")
    labels = loaded.labels if loaded.class_names else None
    return ImageSet(loaded.images, labels, tuple(loaded.class_names),
                    f"folder {os.path.abspath(path)}, {len(loaded.images)} images at "
                    f"{size[0]}x{size[1]}x{channels}")


def read_real(spec: str, fake: ImageSet, max_images: int, seed: int):
    """The real set named by `spec` (a folder, folder:PATH, digits, tfds:NAME) at the fake
    images' resolution and channels (antialiased resize, centre crop, as jaxgan trains)."""
    source = spec if spec == "digits" or spec.startswith(("folder:", "tfds:")) else f"folder:{spec}"
    config = default_config().data
    config.update(source=source, resolution=int(fake.images.shape[1]),
                  channels=int(fake.images.shape[3]), download=False, host_cache_mb=1 << 20)
    return load_real(config, max_images, seed)


def match_labels(fake: ImageSet, real: ImageSet) -> ImageSet:
    """Fake class folders named like the real classes get the real class indices; otherwise the
    fake set is taken as unlabelled."""
    if fake.labels is None or not real.class_names:
        return dataclasses.replace(fake, labels=None)
    missing = [c for c in fake.class_names if c not in real.class_names]
    if missing:
        raise UserError(f"generated class folder {missing[0]!r} is not a class of the real data "
                        f"({', '.join(real.class_names[:10])})")
    mapping = np.array([real.class_names.index(c) for c in fake.class_names], np.int32)
    return dataclasses.replace(fake, labels=mapping[fake.labels], class_names=real.class_names)
