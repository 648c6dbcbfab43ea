"""Draw images from a trained jaxgan run.

  python sample.py --workdir runs/digits                       # a grid, 8 images per class
  python sample.py --workdir runs/digits --seeds 0-63 --label 7 --grid sevens.png
  python sample.py --workdir runs/art --seeds 1,5,9 --label impressionism --outdir out/
  python sample.py --workdir runs/digits --interpolate 3,8 --label 1,7 --frames 24 --out walk.gif
  python sample.py --workdir runs/digits --seeds 0-99 --label all --novelty --min-novelty 0.1 --outdir novel/

The logic lives in `jaxgan.art` (sample_cli, export) and `jaxgan.sampler`; this file only parses
flags.
"""
import argparse
import re
import sys

from jaxgan.errors import UserError


MAX_SEEDS = 10_000  # per command: the images are generated and held in memory together
MAX_FRAMES = 1_000
_SEED_PART = re.compile(r"(-?\d+)(?:-(-?\d+))?")  # 'N' or 'A-B' (signs only to name them in errors)


def parse_seeds(text: str) -> list[int]:
    """'0-63' or '1,5,9' (or a mix: '0-3,10'); a seed given twice counts once. At most MAX_SEEDS
    seeds, checked before any list is built (a range of 2^32 seeds would take 150 GB)."""
    seeds: dict[int, None] = {}  # ordered, without repeats
    for part in text.split(","):
        part = part.strip()
        match = _SEED_PART.fullmatch(part)
        if not match:
            raise argparse.ArgumentTypeError(f"--seeds takes '0-63' or '1,5,9', got {text!r}")
        first = int(match[1])
        last = first if match[2] is None else int(match[2])
        for seed in (first, last):
            if not 0 <= seed < 2**32:
                raise argparse.ArgumentTypeError(f"--seeds must be in 0..2^32-1, got {seed}")
        if first > last:
            raise argparse.ArgumentTypeError(f"--seeds {part} is a reversed range: write {last}-{first}")
        if last - first + 1 + len(seeds) > MAX_SEEDS:
            raise argparse.ArgumentTypeError(
                f"--seeds {text}: at most {MAX_SEEDS:,} seeds per command (their images are made "
                "together in memory); split the range over several commands")
        seeds.update(dict.fromkeys(range(first, last + 1)))
    return list(seeds)


def parse_frames(text: str) -> int:
    try:
        frames = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--frames takes a whole number, got {text!r}") from None
    if not 2 <= frames <= MAX_FRAMES:
        raise argparse.ArgumentTypeError(f"--frames must be 2 to {MAX_FRAMES:,}, got {frames}")
    return frames


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Draw images from a trained jaxgan run.")
    parser.add_argument("--workdir", required=True, help="a training workdir (holds checkpoints/)")
    parser.add_argument("--step", type=lambda v: v if v == "best" else int(v),
                        help="checkpoint step, or 'best' (the best evaluated one; default: the latest)")
    parser.add_argument("--seeds", type=parse_seeds, help="'0-63' or '1,5,9' (default 0-7)")
    parser.add_argument("--label", help="a class name or index, or 'all' for one row per class "
                        "(default: all); name:X or index:N where a name could be read as an "
                        "index; with --interpolate, 'X,Y' morphs class X into Y")
    parser.add_argument("--truncation", type=float, default=1.0,
                        help="psi in (0, 1]: noise truncated to [-2, 2] times psi (default 1.0)")
    parser.add_argument("--grid", help="write one grid PNG here")
    parser.add_argument("--outdir", help="write one PNG per image here (seed0005-CLASS.png)")
    parser.add_argument("--interpolate", help="A,B: a spherical walk from seed A's noise to B's")
    parser.add_argument("--frames", type=parse_frames, default=16,
                        help=f"frames of the walk, 2 to {MAX_FRAMES:,} (default 16)")
    parser.add_argument("--out", help="the GIF the walk is written to")
    parser.add_argument("--upscale", type=int, help="enlarge each image K times (nearest); "
                        "grids default to >= 64 px per image")
    parser.add_argument("--watermark", action=argparse.BooleanOptionalAction, default=True,
                        help="embed the invisible watermark in images >= 64x64 (default on)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace files that exist already (default: refuse, write nothing)")
    parser.add_argument("--novelty", action="store_true",
                        help="report each image's nearest training image and distance")
    parser.add_argument("--min-novelty", type=float, default=None, metavar="D",
                        help="drop images closer than D (RMS pixel distance, 0-1) to a training image")
    args = parser.parse_args(argv)
    if args.interpolate and not args.out:
        parser.error("--interpolate needs --out FILE.gif")
    if args.upscale is not None and args.upscale < 1:
        parser.error("--upscale must be >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from absl import logging
    logging.set_verbosity(logging.ERROR)  # Orbax warns about read-only managers
    from jaxgan.art import sample_cli  # after parsing: --help stays instant
    try:
        for line in sample_cli.run(args):
            print(line)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
