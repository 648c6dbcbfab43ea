"""Re-drawn favourites, walks between two of them and contact sheets, written the way sample.py
writes images: provenance text (software, step, seed, class, truncation, "AI-generated") and the
invisible watermark (images enlarged to at least 64 px so they can carry it)."""
from __future__ import annotations

import os

import numpy as np

# The export helpers (watermarked PNGs and GIFs), imported here only.
from jaxgan.art import export
from jaxgan.images import auto_upscale, enlarge, provenance


def write_redraw(sampler, image_HWC: np.ndarray, name: str, seed: int, class_name, truncation,
                 out_dir: str) -> str:
    path = os.path.join(out_dir, name)
    image = enlarge(np.asarray(image_HWC)[None], auto_upscale(image_HWC.shape[0]))[0]
    export.write_png(path, image, provenance(sampler.step, seed=seed, class_=class_name,
                                             truncation=truncation), mark=True)
    return path


def write_walk(sampler, frames_NHWC: np.ndarray, name: str, seeds, class_names, truncation,
               out_dir: str) -> str:
    path = os.path.join(out_dir, name)
    frames = enlarge(np.asarray(frames_NHWC), auto_upscale(frames_NHWC.shape[1]))
    classes = None if class_names[0] is None else f"{class_names[0]} -> {class_names[1]}"
    export.write_gif(path, frames, provenance(
        sampler.step, seed=f"{seeds[0]} -> {seeds[1]}", class_=classes, truncation=truncation),
        mark=True)
    return path


def write_sheet(path, grid_HWC: np.ndarray, steps, image_ids: str) -> None:
    """A contact sheet of flagged images (ids name step, class and seed), with provenance."""
    text = provenance(steps[-1], images=image_ids)
    if len(steps) > 1:
        text["Step"] = ", ".join(map(str, steps))
    export.write_png(path, grid_HWC, text, mark=True)
