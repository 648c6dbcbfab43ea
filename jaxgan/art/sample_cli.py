"""What `python sample.py` does, given its parsed flags (kept out of the flags file so it can be
tested and reused). `run(args)` yields the lines to print."""
from __future__ import annotations

import os

import numpy as np

from jaxgan import data as data_lib
from jaxgan.art import export
from jaxgan.errors import UserError
from jaxgan.fileio import printable
from jaxgan.images import GRID_COLUMNS, auto_upscale, enlarge, make_grid, provenance
from jaxgan.sampler import load_sampler

DEFAULT_SEEDS = tuple(range(GRID_COLUMNS))


# Largest image written (a grid, an upscaled image, all frames of a GIF together): 2^26 pixels,
# 200 MB as RGB, a few times that while it is assembled and encoded.
MAX_OUTPUT_PIXELS = 2**26
MAX_IMAGES = 10_000  # per command (seeds x classes): generated and held in memory together


def run(args):
    if args.outdir and os.path.lexists(args.outdir) and not os.path.isdir(args.outdir):
        raise UserError(f"--outdir {printable(args.outdir)} is not a directory (a file of that name "
                        "exists): name a folder, new or existing")
    sampler = load_sampler(args.workdir, args.step)
    if args.interpolate:
        yield from _interpolate(sampler, args)
        return
    seeds = list(args.seeds or DEFAULT_SEEDS)
    seeds_per_row, pairs = _requests(sampler, seeds, args.label)
    _check_sizes(sampler, args, seeds, seeds_per_row, pairs)
    image_paths = _image_paths(sampler, args.outdir, pairs) if args.outdir else []
    grid_path = None
    if args.grid or not args.outdir:
        grid_path = args.grid or _unused_path(
            os.path.join(args.workdir, "samples", f"sample-step{sampler.step}.png"))
    _refuse_existing(image_paths + ([grid_path] if grid_path else []), args.overwrite)

    labels = [c for _, c in pairs] if sampler.num_classes else None
    images = sampler.generate([s for s, _ in pairs], labels, args.truncation)
    keep = np.ones(len(pairs), bool)
    if args.novelty or args.min_novelty is not None:
        lines, keep = _novelty(sampler, images, pairs, args.min_novelty)
        yield from lines
    if args.outdir:
        written = 0
        for (seed, c), path, image, kept in zip(pairs, image_paths, images, keep):
            if kept:
                _write(export.write_png, path, enlarge(image[None], args.upscale or 1)[0],
                       provenance(sampler.step, seed=seed, class_=_class_name(sampler, c),
                                  truncation=args.truncation), args.watermark, args.overwrite)
                written += 1
        yield f"Wrote {written} images to {printable(args.outdir)} (step {sampler.step})."
    if grid_path:
        shown = np.where(keep[:, None, None, None], images, 255)  # dropped images: blank cells
        grid = make_grid(shown, seeds_per_row, args.upscale or auto_upscale(images.shape[1]))
        classes = sorted({_class_name(sampler, c) for _, c in pairs}) if sampler.num_classes else None
        _write(export.write_png, grid_path, grid, provenance(
            sampler.step, seed=_seed_text(seeds), class_=", ".join(classes) if classes else None,
            truncation=args.truncation), args.watermark, args.overwrite)
        yield f"Wrote {printable(grid_path)}: {len(pairs)} images, step {sampler.step}."


def _check_sizes(sampler, args, seeds, seeds_per_row: int, pairs) -> None:
    """Refuse, before any work, more images than a command makes or pictures too large to write."""
    if len(pairs) > MAX_IMAGES:
        raise UserError(f"{len(seeds):,} seeds x {len(pairs) // len(seeds)} classes = {len(pairs):,} "
                        f"images: at most {MAX_IMAGES:,} images per command; ask for fewer seeds "
                        "or one --label at a time")
    height, width = sampler.image_shape[:2]
    upscale = args.upscale or 1
    if args.outdir:
        _check_pixels(f"each image ({height * upscale}x{width * upscale})", height * width * upscale**2)
    if args.grid or not args.outdir:
        grid_upscale = args.upscale or auto_upscale(height)
        rows = -(-len(pairs) // seeds_per_row)
        grid_h, grid_w = (rows * (height * grid_upscale + 2) + 2,
                          seeds_per_row * (width * grid_upscale + 2) + 2)
        _check_pixels(f"the grid ({grid_h}x{grid_w})", grid_h * grid_w)


def _image_paths(sampler, outdir: str, pairs) -> list[str]:
    """Each (seed, class) image's file in `outdir`."""
    class_parts = export.class_file_names(sampler.class_names)
    return [os.path.join(outdir, export.file_name(
        seed, class_parts[c] if sampler.num_classes else None)) for seed, c in pairs]


def _class_name(sampler, c: int) -> str | None:
    return sampler.class_names[c] if sampler.num_classes else None


def _check_pixels(what: str, pixels: int) -> None:
    if pixels > MAX_OUTPUT_PIXELS:
        raise UserError(f"{what} would have {pixels:,} pixels, more than the limit of "
                        f"{MAX_OUTPUT_PIXELS:,} pixels: fewer seeds or frames, or a smaller --upscale")


def _unused_path(path: str) -> str:
    """`path`, or `path` numbered (-2, -3, ...) where that file exists: a default name never
    replaces an earlier result."""
    stem, ext = os.path.splitext(path)
    candidate, n = path, 1
    while os.path.lexists(candidate):
        n += 1
        candidate = f"{stem}-{n}{ext}"
    return candidate


def _refuse_existing(paths, overwrite: bool) -> None:
    """Nothing is written when a file to be written exists, unless --overwrite."""
    if overwrite:
        return
    existing = [p for p in paths if os.path.lexists(p)]
    if existing:
        what = (f"{printable(paths[0])} exists" if len(paths) == 1 else
                f"{len(existing)} of the {len(paths)} files {'exists' if len(existing) == 1 else 'exist'}")
        raise UserError(f"{what} already ({printable(existing[0])}"
                        f"{', ...' if len(existing) > 1 else ''}): nothing was written; use "
                        "--overwrite to replace them")


def _write(writer, path, *args) -> None:
    """A write whose failure (an existing file made meanwhile, a full disk, a read-only folder)
    is one line naming the file."""
    try:
        writer(path, *args)
    except FileExistsError:
        raise UserError(f"{printable(path)} appeared while sampling: not replaced (use "
                        "--overwrite)") from None
    except OSError as error:
        raise UserError(f"cannot write {printable(path)}: {error.strerror or error}") from None


def _requests(sampler, seeds, label):
    """(images per grid row, [(seed, class index)]) for the seeds and --label."""
    if not sampler.num_classes:
        if label not in (None, "all"):
            raise UserError("this model is unconditional: it takes no --label")
        return GRID_COLUMNS, [(s, 0) for s in seeds]
    if label == "all" and "all" in sampler.class_names:
        raise UserError("--label all is ambiguous: a class is named 'all'; write --label name:all "
                        "for that class, or leave --label out for every class")
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
        own = printable(sampler.class_names[c]) if sampler.num_classes else "-"
        near = (f"#{i} ({printable(training.class_names[training.labels[i]])})" if training.num_classes
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
        labels = (args.label or "index:0").split(",")
        if len(labels) > 2 or "all" in labels:
            raise UserError(f"--label with --interpolate takes X or X,Y, got {args.label!r}")
        label_a, label_b = labels[0], labels[-1]
    elif args.label:
        raise UserError("this model is unconditional: it takes no --label")
    height, width = sampler.image_shape[:2]
    upscale = args.upscale or auto_upscale(height)
    _check_pixels(f"the GIF ({args.frames} frames of {height * upscale}x{width * upscale})",
                  args.frames * height * width * upscale**2)
    _refuse_existing([args.out], args.overwrite)
    frames = sampler.interpolate(seed_a, seed_b, args.frames, label_a, label_b, args.truncation)
    frames = enlarge(frames, upscale)
    names = (f"{sampler.class_names[sampler.label_index(label_a)]} -> "
             f"{sampler.class_names[sampler.label_index(label_b)]}") if sampler.num_classes else None
    _write(export.write_gif, args.out, frames, provenance(
        sampler.step, seed=f"{seed_a} -> {seed_b}", class_=names, truncation=args.truncation),
        args.watermark, 80, args.overwrite)
    yield (f"Wrote {printable(args.out)}: {args.frames} frames from seed {seed_a} to {seed_b}, "
           f"step {sampler.step}.")
