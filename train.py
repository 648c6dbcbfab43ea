"""Train a GAN: `python train.py [--config configs/digits.py] [--workdir DIR] [--config.KEY=VALUE]`.

Rerunning the same command resumes from the latest checkpoint in the workdir. The logic lives in
`jaxgan.train_and_evaluate`; this file only parses flags.
"""
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

import jaxgan

config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "digits.py"),
    "Training config file.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Where checkpoints, samples and metrics go "
                    "(default: runs/<config file name>).")
flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() (multi-host runs).")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # Orbax's INFO lines drown the progress bar
    if FLAGS.distributed:
        import jax
        jax.distributed.initialize()
    config_name = os.path.splitext(os.path.basename(FLAGS["config"].config_filename))[0]
    workdir = FLAGS.workdir or os.path.join("runs", config_name)
    try:
        jaxgan.train_and_evaluate(FLAGS.config, workdir)
    except jaxgan.UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)
