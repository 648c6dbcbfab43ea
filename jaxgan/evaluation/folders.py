"""Image sets for `python -m jaxgan.evaluate --fake DIR --real ...`: a folder of files as they
are (as pytorch-fid and clean-fid read them), or a jaxgan data source at the same size."""
from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np

from jaxgan.config import default_config
from jaxgan.data import folder
from jaxgan.errors import UserError
from jaxgan.fileio import printable
from jaxgan.evaluation.evaluator import ImageSet, load_real


def read_image_folder(path: str, max_pixels: int = folder.DEFAULT_MAX_IMAGE_PIXELS) -> ImageSet:
    """Every usable image under `path` (class subfolders give labels), at its own size: all must
    be square and equally sized, as a generator writes them. Grey files stay one channel.

    Files are opened as the training loader opens them (`folder.opened_image`: raster formats
    only, at most `max_pixels` pixels); what cannot be used is skipped with its reason, logged.
    Images both at the top level and in subfolders are refused: a metric over part of a set the
    user meant whole would be silently wrong."""
    listing = folder.list_folder(path)
    shown = printable(path)
    headers = list(folder.ordered_map(lambda task: folder.image_header(task[0], max_pixels),
                                      listing.tasks, folder.default_num_workers()))
    skipped = [item for item in listing.skipped if not item[1].startswith("loose file")]
    usable = []
    for task, (header, reason) in zip(listing.tasks, headers):
        if header is None:
            skipped.append((task[0], reason))
        else:
            usable.append((task, header))
    _refuse_top_level_images_beside_subfolders(listing, shown, bool(usable), max_pixels, skipped)
    if not usable:
        raise UserError(f"no usable images in {shown}. {folder.skipped_report(skipped)}")
    sizes = sorted({header[0] for _, header in usable})
    if len(sizes) > 1:
        raise UserError(f"images in {shown} have different sizes ({sizes[:3]}): resize them to "
                        "one size first, so that no resizing hides in the metric")
    (width, height), mode = usable[0][1]
    if width != height:
        raise UserError(f"{printable(usable[0][0][0])} is {width}x{height}: generated images must "
                        "be square")
    channels = 1 if mode in ("L", "LA", "1", "I;16", "I") else 3
    listing.tasks, listing.skipped = [task for task, _ in usable], skipped
    loaded = folder.load_folder(listing, width, channels, max_pixels=max_pixels)
    if loaded.skipped:
        logging.warning("%s", folder.skipped_report(loaded.skipped))
    labels = loaded.labels if loaded.class_names else None
    return ImageSet(loaded.images, labels, tuple(loaded.class_names),
                    f"folder {os.path.abspath(path)}, {len(loaded.images)} images at "
                    f"{width}x{height}x{channels}"
                    + (f" ({len(loaded.skipped)} files skipped)" if loaded.skipped else ""))


def _refuse_top_level_images_beside_subfolders(listing, shown: str, subfolder_images: bool,
                                               max_pixels: int, skipped: list) -> None:
    """Images directly in the folder next to class subfolders: the loader takes the subfolders
    and leaves those images out, which for a metric is a wrong number, not a detail."""
    loose = [p for p, reason in listing.skipped if reason.startswith("loose file")]
    images, others = [], []
    for path in loose:
        header, reason = folder.image_header(path, max_pixels)
        (images if header is not None else others).append((path, reason))
    skipped.extend((path, f"{reason} (beside the class subfolders)") for path, reason in others)
    if not images:
        return
    names = [printable(entry.name) for entry in listing.class_dirs]
    subfolders = (f"{len(names)} subfolder{'s' if len(names) > 1 else ''} "
                  f"({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})")
    held = "holding images" if subfolder_images else "holding no usable image"
    raise UserError(f"{shown} holds {len(images)} image{'s' if len(images) > 1 else ''} at its "
                    f"top level (e.g. {printable(os.path.basename(images[0][0]))}) and "
                    f"{subfolders} {held}: give either images directly in the folder or one "
                    "subfolder per class, not both")


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
