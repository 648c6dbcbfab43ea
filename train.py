"""Train a GAN: `python train.py [--config configs/digits.py] [--workdir DIR] [--config.KEY=VALUE]`.

Rerunning the same command resumes from the latest checkpoint in the workdir. The logic lives in
`jaxgan.train_and_evaluate`; this file only parses flags.
"""
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

import jaxgan
from jaxgan.config import resolve

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "digits.py")
FLAGS = flags.FLAGS


def define_flags():
    # config_flags loads the config file and applies --config.KEY=VALUE while defining the flag.
    config_flags.DEFINE_config_file("config", DEFAULT_CONFIG, "Training config file.",
                                    lock_config=True)
    flags.DEFINE_string("workdir", None, "Where checkpoints, samples and metrics go "
                        "(default: runs/<config file name>).")
    flags.DEFINE_bool("distributed", False, "Multi-host: call jax.distributed.initialize(), which "
                      "finds the other hosts itself on Cloud TPU, SLURM, Open MPI and Kubernetes.")
    # Elsewhere (or to run several processes on one machine) say where the coordinator is. The
    # same command runs on every host; only --process_id differs.
    flags.DEFINE_string("coordinator_address", None, "Multi-host: HOST:PORT of process 0 "
                        "(implies --distributed).")
    flags.DEFINE_integer("num_processes", None, "Multi-host: how many processes take part.")
    flags.DEFINE_integer("process_id", None, "Multi-host: this process's index, 0 .. "
                         "num_processes-1 (process 0 writes metrics, grids and TensorBoard files).")


def main(argv):
    sys.unraisablehook = stop_on_swallowed_interrupt
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # Orbax's INFO lines drown the progress bar
        # A failed asynchronous save is logged with its traceback by Orbax's thread, then reported
        # by jaxgan as one line (what failed, why, the intact checkpoints): keep only that line.
        logging.get_absl_handler().addFilter(
            lambda record: not (record.exc_info and "orbax" in record.pathname))
    config_name = os.path.splitext(os.path.basename(FLAGS["config"].config_filename))[0]
    workdir = FLAGS.workdir or os.path.join("runs", config_name)
    try:
        config = resolve(FLAGS.config)  # before JAX starts: a bad value costs no wait
        if FLAGS.distributed or FLAGS.coordinator_address:
            import jax
            jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes,
                                       FLAGS.process_id)
        jaxgan.train_and_evaluate(config, workdir)
    except jaxgan.UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        # Now, without the interpreter's shutdown: after a failed write (a full disk) Orbax's
        # asyncio threads would print "Event loop is closed" tracebacks under the one line.
        os._exit(1)
    except KeyboardInterrupt as interrupt:  # a second Ctrl-C (or SIGTERM/SIGHUP) while stopping
        stop_now(interrupt)


def stop_now(interrupt: BaseException) -> None:
    if str(interrupt):  # raised by jaxgan's handler: "a second SIGINT" while a save was under way
        print(f"\nerror: stopped by {interrupt} without waiting for the checkpoint being saved; "
              "rerun the same command to resume from the last intact one", file=sys.stderr)
    else:  # Python's own Ctrl-C, before training started: nothing was being saved
        print("\nerror: stopped by SIGINT before training started; rerun the same command to "
              "start (or resume from the last intact checkpoint)", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)  # now: an unfinished save's threads must not keep the process alive


def stop_on_swallowed_interrupt(unraisable, previous=sys.unraisablehook) -> None:
    # A second Ctrl-C that lands while Python runs a garbage-collector callback (JAX has one) is
    # not raised but printed as "Exception ignored" and lost: treat it as raised.
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        stop_now(unraisable.exc_value)
    previous(unraisable)


def fail_on_bad_flags(error):
    while isinstance(error, AttributeError) and isinstance(error.__context__, KeyError):
        error = error.__context__  # ConfigDict wraps an unknown key's KeyError
    message = " ".join(str(error.args[0] if error.args else error).split())
    print(f"error: bad flag or config: {message}", file=sys.stderr)
    sys.exit(1)


def parse_flags(argv):
    """absl's parsing, with a mistyped key, a bad value or a missing config file as one line."""
    try:
        remaining = FLAGS(argv)
        FLAGS.config.get("seed")  # a config file that failed to load raises only when used
        return remaining
    except Exception as error:
        fail_on_bad_flags(error)


if __name__ == "__main__":
    try:
        define_flags()
    except Exception as error:  # config_flags applies some overrides while defining the flag
        fail_on_bad_flags(error)
    app.run(main, flags_parser=parse_flags)
