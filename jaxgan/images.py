"""Pixels, grids and PNG files (numpy + Pillow; no JAX or TensorFlow import).

The conversions work on numpy and JAX arrays alike (they use array methods only), so training,
data streaming and sampling share one definition of how uint8 pixels map to [-1, 1].
"""
from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image, PngImagePlugin

from jaxgan import __version__

MIN_CELL_PIXELS = 64  # tiny images are upscaled (nearest) until a cell is at least this big
GRID_COLUMNS = 8


def to_unit_range(images_uint8):
    """uint8 [0, 255] -> float32 in exactly [-1, 1]."""
    return (images_uint8.astype("float32") - 127.5) / 127.5


def to_uint8(images):
    """[-1, 1] floats -> uint8 [0, 255], rounded."""
    return ((images + 1.0) * 127.5).round().clip(0, 255).astype("uint8")


def grid_labels(num_classes: int, per_class: int = GRID_COLUMNS) -> np.ndarray:
    """Labels for a grid with one row per class (64 zeros for an unconditional model)."""
    if num_classes == 0:
        return np.zeros(GRID_COLUMNS * GRID_COLUMNS, np.int32)
    return np.repeat(np.arange(num_classes, dtype=np.int32), per_class)


def enlarge(images_NHWC: np.ndarray, factor: int) -> np.ndarray:
    """Enlarge images `factor` times (nearest neighbour)."""
    return images_NHWC.repeat(factor, axis=1).repeat(factor, axis=2) if factor > 1 else images_NHWC


def auto_upscale(height: int) -> int:
    return max(1, math.ceil(MIN_CELL_PIXELS / height))


def make_grid(images_NHWC: np.ndarray, columns: int, upscale: int = 1, padding: int = 2,
              background: int = 255) -> np.ndarray:
    """Tile uint8 images row by row, `columns` per row, each enlarged `upscale` times."""
    images = enlarge(np.asarray(images_NHWC), upscale)
    n, h, w, c = images.shape
    rows = math.ceil(n / columns)
    grid = np.full((rows * (h + padding) + padding, columns * (w + padding) + padding, c),
                   background, np.uint8)
    for i, image in enumerate(images):
        top, left = padding + (i // columns) * (h + padding), padding + (i % columns) * (w + padding)
        grid[top:top + h, left:left + w] = image
    return grid


def to_pil(image_HWC: np.ndarray) -> Image.Image:
    image = np.asarray(image_HWC)
    return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)


def save_png(path, image_HWC: np.ndarray, text: dict | None = None) -> None:
    """Write a PNG (atomically: temporary file, then rename) with optional text metadata."""
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, str(value))
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    to_pil(image_HWC).save(tmp, format="PNG", pnginfo=info)
    os.replace(tmp, path)


def provenance(step: int, **fields) -> dict:
    """PNG text of every image jaxgan writes: software and version, checkpoint step, the fields
    given (seed=..., class_=..., truncation=...) and the statement "AI-generated"."""
    text = {"Software": f"jaxgan {__version__}", "Step": step, "Comment": "AI-generated"}
    text.update({k.rstrip("_").capitalize(): v for k, v in fields.items() if v is not None})
    return text
