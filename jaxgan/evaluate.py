"""Evaluate a trained generator, or compare two sets of images, from the command line.

  python -m jaxgan.evaluate --workdir runs/digits [--step N] [--num 10000]
         [--metrics NAME,...]          # default: every metric of the table below
         [--extractor auto|inception|classifier] [--inception-weights PATH]
  python -m jaxgan.evaluate --fake DIR --real DIR|digits|folder:PATH|tfds:NAME [--metrics ...]
  python -m jaxgan.evaluate --fake DIR --reference stats.npz      # pytorch-fid / clean-fid mu, sigma

Prints a table (metrics, then the protocol) and writes `<workdir>/eval/step_N.json` (or --out).
FID needs pytorch-fid's Inception weights: they are downloaded once into $JAXGAN_CACHE (default
~/.cache/jaxgan); offline, put pt_inception-2015-12-05-6726825d.pth there or pass
--inception-weights PATH. Without them `--extractor auto` uses a classifier trained on the real
images, and its numbers are named fd_classifier etc., never fid.

`jaxgan.evaluate(workdir_or_sampler, ...)` is the same from Python (this module is callable).

The metrics (jaxgan/metric_names.py's table; this list is generated from it):
{metrics}"""
from __future__ import annotations

import argparse
import os
import sys
import types

from jaxgan.errors import UserError
from jaxgan.metric_names import ALL_METRICS, EXTRACTORS, MAX_REAL, METRICS


def describe_metrics() -> str:
    """One line per row of the metrics' table: name, needs, direction."""
    def line(name, metric):
        needs = [what for what, needed in (("class labels", metric.needs_labels),
                                           ("real images", metric.needs_real)) if needed]
        direction = "lower" if metric.lower_is_better else "higher"
        return (f"  {name:<13} {direction} is better"
                + (f"; needs {' and '.join(needs)}" if needs else ""))
    return "\n".join(line(name, metric) for name, metric in METRICS.items())


if __doc__:  # (python -OO strips it)
    __doc__ = __doc__.format(metrics=describe_metrics())


def evaluate(*args, **kwargs):
    """`jaxgan.evaluation.evaluate` (imported on first call: --help stays instant)."""
    from jaxgan.evaluation.evaluator import evaluate as evaluate_
    return evaluate_(*args, **kwargs)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m jaxgan.evaluate",
                                     description="Evaluate a jaxgan run, or compare image folders.",
                                     epilog="metrics:\n" + describe_metrics(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--workdir", help="a training workdir (holds checkpoints/)")
    source.add_argument("--fake", help="a folder of generated images (class subfolders allowed)")
    parser.add_argument("--real", help="with --fake: a folder, or digits | folder:PATH | tfds:NAME")
    parser.add_argument("--reference", help="an .npz with mu and sigma (pytorch-fid / clean-fid) "
                        "to compute FID against instead of real images")
    parser.add_argument("--step", help="checkpoint step, or 'best' (default: the latest)")
    parser.add_argument("--num", type=int, default=10_000, help="images to generate (default 10000)")
    parser.add_argument("--num-real", type=int, default=MAX_REAL,
                        help=f"real images to use at most (default {MAX_REAL})")
    parser.add_argument("--metrics", default=",".join(ALL_METRICS),
                        help=f"comma-separated, from {','.join(ALL_METRICS)} (default: all)")
    parser.add_argument("--extractor", default="auto", choices=EXTRACTORS,
                        help="feature space: inception (FID), classifier (trained on the real "
                        "images), auto = inception when its weights are at hand (default)")
    parser.add_argument("--inception-weights", help="path of pt_inception-2015-12-05-6726825d.pth "
                        "(or its converted .npz)")
    parser.add_argument("--truncation", type=float, default=1.0, help="psi in (0, 1] (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="evaluation seed (default 0)")
    parser.add_argument("--out", help="JSON file for the result (default <workdir>/eval/step_N.json)")
    args = parser.parse_args(argv)
    if args.fake and not (args.real or args.reference):
        parser.error("--fake needs --real or --reference")
    if args.workdir and args.real:
        parser.error("--real goes with --fake; a workdir's real data is its training set")
    if args.step not in (None, "best") and not args.step.isdigit():
        parser.error(f"--step takes a number or 'best', got {args.step!r}")
    return args


def run(args) -> dict:
    from jaxgan.evaluation import evaluator, folders
    if args.workdir:
        step = int(args.step) if args.step and args.step.isdigit() else args.step
        result = evaluate(args.workdir, step, args.num, args.metrics, args.extractor,
                          args.inception_weights, args.truncation, args.seed, args.num_real,
                          args.reference, write=args.out is None, progress=True)
    else:
        fake = folders.read_image_folder(args.fake)
        real, real_key, stats = None, None, None
        if args.reference:
            stats = evaluator.load_reference(args.reference)
        else:
            real, real_key = folders.read_real(args.real, fake, args.num_real, args.seed)
            fake = folders.match_labels(fake, real)
        result = evaluator.evaluate_images(
            fake, real, args.metrics, args.extractor, args.inception_weights, stats, args.seed,
            real_key=real_key, out_dir=os.path.dirname(os.path.abspath(args.out)) if args.out else None,
            tag="folders", progress=True)
    if args.out:
        evaluator.write_json(result, args.out)
        result.setdefault("files", {})["json"] = args.out
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    from absl import logging
    logging.set_verbosity(logging.ERROR)  # Orbax warns about read-only managers
    from jaxgan.evaluation.evaluator import format_table
    try:
        result = run(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(format_table(result))
    for what, path in result.get("files", {}).items():
        print(f"wrote {what}: {path}")
    return 0


class _CallableModule(types.ModuleType):
    """`jaxgan.evaluate(...)` calls `evaluate` even after this module was imported (importing a
    submodule sets the package attribute `jaxgan.evaluate` to the module itself)."""

    def __call__(self, *args, **kwargs):
        return evaluate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    sys.exit(main())
