"""Image grids and PNG writing (numpy + Pillow; no JAX, no TensorFlow)."""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, PngImagePlugin

from jaxgan.fileio import atomic_write, printable

MIN_CELL_PIXELS = 64  # tiny images are upscaled (nearest) until a cell is at least this big


def auto_upscale(height: int) -> int:
    return max(1, math.ceil(MIN_CELL_PIXELS / height))


def make_grid(images_NHWC: np.ndarray, columns: int, upscale: int = 1, padding: int = 2,
              background: int = 255) -> np.ndarray:
    """Tile uint8 images row by row, `columns` per row, each enlarged `upscale` times."""
    images = np.asarray(images_NHWC)
    if upscale > 1:
        images = images.repeat(upscale, axis=1).repeat(upscale, axis=2)
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


def save_png(path, image_HWC: np.ndarray, text: dict | None = None, overwrite: bool = True) -> None:
    """Write a PNG atomically (temporary file, then rename) with optional text metadata; with
    overwrite=False an existing file is left alone (FileExistsError). Text values are stored with
    control characters and undecodable bytes escaped (PNG text must be valid UTF-8 or Latin-1)."""
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, printable(value))
    with atomic_write(path, overwrite=overwrite) as tmp:
        to_pil(image_HWC).save(tmp, format="PNG", pnginfo=info)
