"""What `python sample.py` does, given its parsed flags (kept out of the flags file so it can be
tested and reused). `run(args)` yields the lines to print."""
from __future__ import annotations

import os

import numpy as np

from jaxgan import data as data_lib
from jaxgan.art import export
from jaxgan.art.sampling import load_sampler
from jaxgan.errors import UserError
from jaxgan.images import GRID_COLUMNS, auto_upscale, enlarge, make_grid, provenance

DEFAULT_SEEDS = tuple(range(GRID_COLUMNS))


def run(args):
    sampler = load_sampler(args.workdir, args.step)
    if args.interpolate:
        yield from _interpolate(sampler, args)
        return
    seeds = list(args.seeds or DEFAULT_SEEDS)
    seeds_per_row, pairs = _requests(sampler, seeds, args.label)
    labels = [c for _, c in pairs] if sampler.num_classes else None
    images = sampler.generate([s for s, _ in pairs], labels, args.truncation)
    keep = np.ones(len(pairs), bool)
    if args.novelty or args.min_novelty is not None:
        lines, keep = _novelty(sampler, images, pairs, args.min_novelty)
        yield from lines
    name = lambda c: sampler.class_names[c] if sampler.num_classes else None
    if args.outdir:
        for (seed, c), image, kept in zip(pairs, images, keep):
            if kept:
                export.write_png(os.path.join(args.outdir, export.file_name(seed, name(c))),
                                 enlarge(image[None], args.upscale or 1)[0],
                                 provenance(sampler.step, seed=seed, class_=name(c),
                                                   truncation=args.truncation), args.watermark)
        yield f"Wrote {int(keep.sum())} images to {args.outdir} (step {sampler.step})."
    if args.grid or not args.outdir:
        path = args.grid or os.path.join(args.workdir, "samples", f"sample-step{sampler.step}.png")
        shown = np.where(keep[:, None, None, None], images, 255)  # dropped images: blank cells
        grid = make_grid(shown, seeds_per_row, args.upscale or auto_upscale(images.shape[1]))
        classes = sorted({name(c) for _, c in pairs}) if sampler.num_classes else None
        export.write_png(path, grid, provenance(
            sampler.step, seed=_seed_text(seeds), class_=", ".join(classes) if classes else None,
            truncation=args.truncation), args.watermark)
        yield f"Wrote {path}: {len(pairs)} images, step {sampler.step}."


def _requests(sampler, seeds, label):
    """(images per grid row, [(seed, class index)]) for the seeds and --label."""
    if not sampler.num_classes:
        if label not in (None, "all"):
            raise UserError("this model is unconditional: it takes no --label")
        return GRID_COLUMNS, [(s, 0) for s in seeds]
    if label in (None, "all"):
        return len(seeds), [(s, c) for c in range(sampler.num_classes) for s in seeds]
    c = sampler.label_index(label)
    return GRID_COLUMNS, [(s, c) for s in seeds]


def _seed_text(seeds) -> str:
    contiguous = seeds == list(range(seeds[0], seeds[0] + len(seeds)))
    return f"{seeds[0]}-{seeds[-1]}" if contiguous and len(seeds) > 1 else ",".join(map(str, seeds))


def _novelty(sampler, images, pairs, min_novelty):
    """Lines reporting each image's nearest training image, and which images to keep."""
    try:
        training = data_lib.load(sampler.config.data)
    except UserError as error:
        raise UserError(f"--novelty needs the training data: {error}") from None
    try:
        index, distance = export.nearest_training_images(images, training.images)
    finally:
        training.close()
    keep = np.ones(len(pairs), bool) if min_novelty is None else distance >= min_novelty
    lines = ["seed   class        nearest-training-image   distance"]
    for (seed, c), i, d, kept in zip(pairs, index, distance, keep):
        own = sampler.class_names[c] if sampler.num_classes else "-"
        near = (f"#{i} ({training.class_names[training.labels[i]]})" if training.num_classes
                else f"#{i}")
        lines.append(f"{seed:<6d} {own:<12.12s} {near:<24s} {d:.4f}{'' if kept else '  dropped'}")
    if min_novelty is not None:
        lines.append(f"{int((~keep).sum())} of {len(pairs)} images closer than {min_novelty} to a "
                     "training image were dropped.")
    return lines, keep


def _interpolate(sampler, args):
    try:
        seed_a, seed_b = (int(s) for s in args.interpolate.split(","))
    except ValueError:
        raise UserError(f"--interpolate takes two seeds A,B, got {args.interpolate!r}") from None
    label_a = label_b = None
    if sampler.num_classes:
        labels = (args.label or "0").split(",")
        if len(labels) > 2 or "all" in labels:
            raise UserError(f"--label with --interpolate takes X or X,Y, got {args.label!r}")
        label_a, label_b = labels[0], labels[-1]
    elif args.label:
        raise UserError("this model is unconditional: it takes no --label")
    frames = sampler.interpolate(seed_a, seed_b, args.frames, label_a, label_b, args.truncation)
    frames = enlarge(frames, args.upscale or auto_upscale(frames.shape[1]))
    names = (f"{sampler.class_names[sampler.label_index(label_a)]} -> "
             f"{sampler.class_names[sampler.label_index(label_b)]}") if sampler.num_classes else None
    export.write_gif(args.out, frames, provenance(
        sampler.step, seed=f"{seed_a} -> {seed_b}", class_=names, truncation=args.truncation),
        args.watermark)
    yield f"Wrote {args.out}: {args.frames} frames from seed {seed_a} to {seed_b}, step {sampler.step}."
