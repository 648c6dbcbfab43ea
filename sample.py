"""Draw images from a trained jaxgan run: `python sample.py --workdir runs/digits --grid out.png`.

The logic lives in `jaxgan.sampling`; this file only parses flags.
"""
import sys

from absl import app, flags

from jaxgan import sampling
from jaxgan.errors import UserError

flags.DEFINE_string("workdir", None, "A training workdir (holds checkpoints/).", required=True)
flags.DEFINE_integer("step", None, "Checkpoint step to load (default: the latest).")
flags.DEFINE_string("grid", None, "Write a grid PNG here: one row per class, 8 images per row.")
flags.DEFINE_integer("upscale", None, "Enlarge each image K times (default: to >= 64 px).")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        sampler = sampling.load_sampler(FLAGS.workdir, FLAGS.step)
        path = FLAGS.grid or "samples.png"
        sampling.write_class_grid(sampler, path, upscale=FLAGS.upscale)
        print(f"Wrote {path} (step {sampler.step}).")
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)
