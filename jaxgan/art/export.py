"""Writing generated images for people: provenance metadata, watermark, grids, GIFs, novelty.

Every PNG written here carries text metadata (software and version, checkpoint step, seed, class,
truncation, and the statement "AI-generated"); images of 64x64 and larger also carry the
invisible DWT-DCT watermark of `jaxgan.watermark` unless asked not to.
"""
from __future__ import annotations

import os
import re

import numpy as np
from jaxgan.art import watermark
from jaxgan.images import save_png, to_pil


def maybe_watermark(image_HWC: np.ndarray, enabled: bool) -> np.ndarray:
    """The watermarked image, when enabled and the image is large enough to carry the mark."""
    if enabled and min(image_HWC.shape[:2]) >= watermark.MIN_SIZE:
        return watermark.embed(image_HWC)
    return image_HWC


def write_png(path, image_HWC, text: dict, mark: bool) -> None:
    save_png(path, maybe_watermark(np.asarray(image_HWC), mark), text)


def file_name(seed: int, class_name: str | None) -> str:
    """seed0005-impressionism.png; class names are reduced to safe file-name characters."""
    if class_name is None:
        return f"seed{seed:04d}.png"
    return f"seed{seed:04d}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', class_name)}.png"


def write_gif(path, frames_NHWC: np.ndarray, text: dict, mark: bool, duration_ms: int = 80):
    """An animated GIF that loops, there and back. GIF has no text chunks: the provenance goes in
    its comment. (The watermark is embedded per frame, but GIF's 256-colour palette weakens it.)"""
    frames = [to_pil(maybe_watermark(frame, mark)) for frame in frames_NHWC]
    frames = frames + frames[-2:0:-1]
    comment = "; ".join(f"{k}: {v}" for k, v in text.items())
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], loop=0,
                   duration=duration_ms, comment=comment.encode())


def nearest_training_images(generated_NHWC: np.ndarray, training_NHWC, chunk: int = 4096):
    """For each generated image, the index of the nearest training image and their distance:
    root-mean-square pixel difference on a [0, 1] scale (0 = identical, 1 = black vs white).

    `training_NHWC` is read `chunk` rows at a time by index arrays, so it may be a
    `data.StreamedImages` (a set left on disk) as well as an array.
    """
    gen = generated_NHWC.reshape(len(generated_NHWC), -1).astype(np.float32) / 255.0
    gen_sq = (gen ** 2).sum(1)
    index = np.zeros(len(gen), np.int64)
    best_sq = np.full(len(gen), np.inf, np.float32)
    for start in range(0, len(training_NHWC), chunk):
        rows = np.arange(start, min(start + chunk, len(training_NHWC)))
        train = np.asarray(training_NHWC[rows]).reshape(len(rows), -1).astype(np.float32) / 255.0
        sq = gen_sq[:, None] + (train ** 2).sum(1)[None, :] - 2.0 * gen @ train.T
        nearest = sq.argmin(1)
        nearest_sq = sq[np.arange(len(gen)), nearest]
        better = nearest_sq < best_sq
        index[better] = start + nearest[better]
        best_sq[better] = nearest_sq[better]
    return index, np.sqrt(np.maximum(best_sq, 0) / gen.shape[1])
