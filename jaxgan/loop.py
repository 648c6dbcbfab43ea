"""The training loop: init or resume, steps, progress, sample grids, checkpoints, stop signals.

    config ─> validate ─> data set ─> GAN (networks + optimisers, built once) ─> state (init or
    restore) ─> pipeline (device / host / disk tier) ─> loop: advance, then on the timetable's
    boundaries: metrics, grid, checkpoint

The loop dispatches the steps up to the next boundary before it reads the previous chunk's
metrics, so the host never stalls the devices; a non-finite loss or parameter stops the run before
it is ever checkpointed.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import os
import re
import signal
import sys
import tempfile
import time
from typing import Any

import jax
import numpy as np
from tqdm import tqdm

from jaxgan import config as config_lib, data as data_lib, mesh as mesh_lib
from jaxgan.errors import UserError
from jaxgan.images import GRID_COLUMNS, auto_upscale, grid_labels, make_grid, provenance
from jaxgan.models import generate_uint8
from jaxgan.training import checkpoint
from jaxgan.training.lock import LOCK_NAME, WorkdirLock
from jaxgan.training.pipeline import Pipeline
from jaxgan.training.state import GAN
from jaxgan.training.writers import Writers

GRID_SEED_TAG = 0x7FFFFFFF  # folded into the seed's key for the fixed grid noise


class TrainingDiverged(UserError):
    """A non-finite loss or parameter: the run stops, the last good checkpoint stays."""


def check_writable(workdir: str) -> None:
    """Refuse a workdir that cannot take a write, before any data is loaded: a probe of a few KB
    is written and flushed to disk (an empty file would pass on a full disk)."""
    try:
        os.makedirs(workdir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=workdir, prefix=".write-check-") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as error:
        raise UserError(f"workdir {workdir} is not writable: {error.strerror or error}") from None


@contextlib.contextmanager
def write_errors(manager, what: str):
    """The loop's one error path for writes (metrics, grids, checkpoints): a failure is one line
    naming what could not be written and why, with the intact checkpoints."""
    try:
        yield
    except OSError as error:
        raise checkpoint.write_error(manager, what, error) from None


class StopSignals:
    """SIGTERM, SIGINT and SIGHUP (a closed terminal or a dropped SSH session) set a flag; the
    loop finishes its step, checkpoints and exits 0. A second signal while that is under way
    raises KeyboardInterrupt at once: the run stops without waiting for the save in flight, which
    is then never finalised (Orbax finalises by renaming; the next run removes the leftover).

    On several hosts JAX's own preemption notifier (started by jax.distributed) catches SIGTERM,
    and every host stops at the same step: the preemption sync point.
    """

    def __init__(self):
        self.received = None
        self._previous = {}
        self._multihost = jax.process_count() > 1

    def stop_requested(self, step: int) -> bool:
        if self._multihost:
            from jax.experimental import multihost_utils
            if multihost_utils.reached_preemption_sync_point(step):
                self.received = "a preemption notice"
        return self.received is not None

    def __enter__(self):
        signals = (signal.SIGTERM, signal.SIGINT) + ((signal.SIGHUP,) if hasattr(signal, "SIGHUP")
                                                      else ())
        for sig in () if self._multihost else signals:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. a notebook worker): no handler
                pass
        return self

    def _handle(self, signum, frame):
        if self.received is not None:
            raise KeyboardInterrupt(f"a second {signal.Signals(signum).name}")
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclasses.dataclass(frozen=True)
class Timetable:
    """When the host has something to do. Every action runs at multiples of its interval and at
    the last step; the steps between two such boundaries are dispatched in one go."""
    every: dict                # action name -> interval in steps
    num_steps: int
    steps_per_call: int

    @classmethod
    def from_config(cls, config) -> "Timetable":
        every = {"log": config.train.log_every_steps, "grid": config.train.sample_every_steps,
                 "checkpoint": config.checkpoint.every_steps}
        if config.eval.every_steps:
            every["eval"] = config.eval.every_steps
        return cls(every, config.train.num_steps, config.train.steps_per_call)

    def next_boundary(self, step: int) -> int:
        ends = [self.num_steps] + [(step // every + 1) * every for every in self.every.values()]
        return min(min(ends), step + self.steps_per_call)

    def due(self, step: int) -> set:
        return {name for name, every in self.every.items()
                if step % every == 0 or step == self.num_steps}


class GridWriter:
    """The sample grid of fixed noise (one row per class) drawn from the EMA generator."""

    def __init__(self, config, gan: GAN):
        labels = grid_labels(gan.num_classes)
        grid_key = jax.random.fold_in(jax.random.key(config.seed), GRID_SEED_TAG)
        z = jax.random.normal(grid_key, (labels.shape[0], gan.latent_dim))
        self._inputs = (z, jax.numpy.asarray(labels))
        self._generate = jax.jit(lambda variables, z, y: generate_uint8(gan.generator, variables, z, y))

    def image(self, state) -> np.ndarray:
        images = np.asarray(jax.device_get(self._generate(checkpoint.generator_variables(state),
                                                          *self._inputs)))
        return make_grid(images, GRID_COLUMNS, auto_upscale(images.shape[1]))


def _read_metrics(metrics, step: int) -> dict:
    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
    if values.pop("finite") < 1.0 or not all(math.isfinite(v) for v in values.values()):
        raise TrainingDiverged(f"training diverged: a non-finite loss or parameter at step {step} "
                               f"({', '.join(f'{k}={v:.4g}' for k, v in values.items())})")
    return values


def train_and_evaluate(config, workdir):
    """Train (or resume) the GAN `config` describes, writing everything into `workdir`.

    Returns the final GANState. User mistakes raise `jaxgan.UserError` with a clear message,
    before anything is written; a run that fails before it wrote anything of its own (a
    checkpoint, a grid, a metrics line) takes back what it set up (lock file, empty folders, a
    TensorBoard file holding only the config), so that the workdir is as it was.
    """
    config = config_lib.resolve(config)
    workdir = os.path.abspath(os.fspath(workdir))
    created = not os.path.exists(workdir)
    try:
        return _start(config, workdir)
    except BaseException:
        if created:  # a run that could not start leaves no workdir behind
            _remove_if_unused(workdir)
        raise


def _remove_if_unused(workdir: str) -> None:
    """Remove a workdir this run created if it holds nothing but the lock file."""
    try:
        if set(os.listdir(workdir)) <= {LOCK_NAME}:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(workdir, LOCK_NAME))
            os.rmdir(workdir)
    except OSError:
        pass  # it is in use or not ours to clean: leave it


@dataclasses.dataclass(frozen=True)
class SetUp:
    """What a workdir held before this run, to take back what the run only set up."""
    workdir: str
    existed: frozenset          # of LOCK_NAME, "checkpoints", "tensorboard"
    listings: dict              # "checkpoints", "samples", "tensorboard" -> set of names
    metrics_size: int

    @classmethod
    def before(cls, workdir: str) -> "SetUp":
        path = functools.partial(os.path.join, workdir)
        return cls(workdir, frozenset(n for n in (LOCK_NAME, "checkpoints", "tensorboard")
                                      if os.path.lexists(path(n))),
                   {n: _listing(path(n)) for n in ("checkpoints", "samples", "tensorboard")},
                   _size(path("metrics.jsonl")))

    def undo(self) -> None:
        """After a failed run: remove what it set up, if it wrote nothing of its own (no metrics
        line, no checkpoint, no grid): its TensorBoard file then holds the config alone."""
        path = functools.partial(os.path.join, self.workdir)
        wrote = _size(path("metrics.jsonl")) != self.metrics_size or any(
            _listing(path(n)) - self.listings[n] for n in ("checkpoints", "samples"))
        if wrote:
            return  # that stays, and with it the rest
        made = [path("tensorboard", name) for name in
                _listing(path("tensorboard")) - self.listings["tensorboard"]]
        made += [path(name) for name in ("tensorboard", "checkpoints", LOCK_NAME)
                 if name not in self.existed and os.path.lexists(path(name))]
        for made_path in made:  # the lock file last: still held, see WorkdirLock for why
            with contextlib.suppress(OSError):  # a folder someone put a file in meanwhile stays
                if os.path.isdir(made_path):
                    os.rmdir(made_path)
                else:
                    os.remove(made_path)


def _listing(folder: str) -> set:
    try:
        return set(os.listdir(folder))
    except OSError:
        return set()


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return -1


def check_checkpoints_writable(workdir: str) -> None:
    """Refuse a `checkpoints/` that exists but cannot take a write (read-only, another owner),
    before the data is loaded: otherwise it is found at the first save, after training."""
    folder = checkpoint.checkpoint_dir(workdir)
    if not os.path.isdir(folder):
        return  # made by the first save, in the workdir just checked
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as error:
        raise UserError(f"checkpoint folder {folder} is not writable: "
                        f"{error.strerror or error}") from None


def is_out_of_memory(error: BaseException) -> bool:
    """XLA's RESOURCE_EXHAUSTED (a device's allocator) or Python's MemoryError (the host)."""
    if isinstance(error, MemoryError):
        return True
    return not isinstance(error, UserError) and "RESOURCE_EXHAUSTED" in str(error)


def out_of_memory_error(config, mesh, error: BaseException, during: str,
                        evaluation: bool = False) -> UserError:
    device = mesh.devices.flat[0]
    asked = re.search(r"(?:while )?trying to allocate [0-9.,]+ ?[KMGT]?i?B", str(error))
    return UserError(
        f"out of memory during {during} ({asked.group(0) if asked else type(error).__name__} on "
        f"{device.platform.upper()}, {mesh.size} device{'s' if mesh.size > 1 else ''} of "
        f"{config_lib.gib(mesh_lib.device_memory_bytes(mesh))}); the likely key: "
        f"{config_lib.memory_hint(config, mesh.size, evaluation)}: lower it and rerun")


def _start(config, workdir):
    mesh = mesh_lib.make_mesh()
    config_lib.check_for_devices(config, mesh.size)
    device_bytes = mesh_lib.device_memory_bytes(mesh)
    config_lib.check_memory(config, mesh.size, device_bytes, mesh_lib.physical_memory_bytes())
    check_writable(workdir)  # before the data: a full disk is not found out minutes later
    check_checkpoints_writable(workdir)
    setup = SetUp.before(workdir)
    lock = WorkdirLock(workdir) if jax.process_index() == 0 else contextlib.nullcontext()
    signals = StopSignals()
    with lock:
        try:
            dataset = data_lib.load(config.data)
            try:
                gan = GAN.build(config, dataset.image_shape, dataset.num_classes)
                if config.train.class_loss and not gan.num_classes and jax.process_index() == 0:
                    print(f"Note: train.class_loss={config.train.class_loss:g} is off: the data "
                          "has no classes for D to learn.", flush=True)
                _check_state_fits(config, gan, device_bytes)
                manager = checkpoint.make_manager(workdir, keep=config.checkpoint.keep,
                                                  best_metric=config.checkpoint.best_metric)
                # From the restore to the last save's end: a signal is a first (stop and save)
                # or a second (stop now), never Python's bare KeyboardInterrupt.
                with signals:
                    try:
                        return _train(config, workdir, dataset, gan, mesh, manager, signals)
                    except KeyboardInterrupt:
                        manager = None  # a second stop signal: do not wait for the save in flight
                        raise
                    except Exception as error:
                        if is_out_of_memory(error):
                            raise out_of_memory_error(config, mesh, error, "training") from None
                        raise
                    finally:
                        if manager is not None:
                            checkpoint.wait(manager)
                            manager.close()
            finally:
                dataset.close()
        except BaseException:
            if jax.process_index() == 0:
                setup.undo()  # (with the lock still held)
            raise


def _check_state_fits(config, gan: GAN, device_bytes: int) -> None:
    def nbytes(tree):
        return sum(math.prod(leaf.shape) * leaf.dtype.itemsize for leaf in jax.tree.leaves(tree))
    abstract = gan.abstract_state()
    config_lib.state_fits(config, nbytes(abstract), nbytes(abstract.g_params),
                          nbytes(abstract.d_params), device_bytes)


def _restore_or_create(config, dataset, gan: GAN, mesh, manager):
    def resumable_target(saved_config, facts):
        abstract = gan.abstract_state()
        saved_gan = GAN.build(saved_config, facts["image_shape"], facts["num_classes"])
        differences = checkpoint.tree_differences(saved_gan.abstract_state(), abstract)
        if differences:
            changed = config_lib.changed_keys(saved_config, config)
            if list(facts["image_shape"]) != list(dataset.image_shape) or \
                    facts["num_classes"] != dataset.num_classes:
                changed.append(f"data: {facts['num_classes']} classes of "
                               f"{tuple(facts['image_shape'])} -> {dataset.num_classes} classes of "
                               f"{dataset.image_shape}")
            raise UserError(f"cannot resume from {manager.directory}: the config changes the "
                            f"model or data shape ({'; '.join(changed or differences[:3])}). "
                            "Use another --workdir or the saved values.")
        if facts.get("num_examples", len(dataset.labels)) != len(dataset.labels):
            logging.warning("Resuming with %d training images where the checkpoint saw %d: the "
                            "run goes on, but its batches differ from an uninterrupted run's",
                            len(dataset.labels), facts["num_examples"])
        return abstract

    restored = checkpoint.restore_latest(manager, resumable_target, mesh)
    if restored is not None:
        return restored[0]
    return jax.device_put(gan.create_state(jax.random.key(config.seed)), mesh_lib.replicated(mesh))


def _train(config, workdir, dataset, gan, mesh, manager, signals):
    state = _restore_or_create(config, dataset, gan, mesh, manager)
    step, num_steps = int(jax.device_get(state.step)), config.train.num_steps
    if step >= num_steps:
        print(f"Already trained: {checkpoint.checkpoint_dir(workdir)} holds step {step} "
              f">= train.num_steps={num_steps}. Raise --config.train.num_steps to train further.")
        return state
    writers = Writers.for_run(workdir, jax.process_index() == 0, config, step)
    pipeline = Pipeline(config, gan, dataset, mesh)
    facts = dataset.facts()
    evaluator = None
    if config.eval.every_steps:  # the evaluation's one hook into training
        from jaxgan.evaluation.during_training import TrainingEvaluator
        evaluator = TrainingEvaluator.from_config(config, workdir, facts)
    run = _Run(config, workdir, pipeline, GridWriter(config, gan), writers, manager, facts,
               evaluator, signals)
    try:
        return run.loop(state, step)
    finally:
        pipeline.close()
        writers.close()


class _Progress:
    """The progress bar and the logged metrics: each dispatched chunk's metrics are read one
    chunk late (`report`), so the host never waits on the devices."""

    def __init__(self, timetable: Timetable, batch_size: int, step: int, writers: Writers,
                 manager):
        self.timetable, self.batch_size, self.writers, self.manager = (timetable, batch_size,
                                                                      writers, manager)
        self.bar = tqdm(total=timetable.num_steps, initial=step, unit="step", dynamic_ncols=True,
                        disable=not writers.is_main,
                        mininterval=1.0 if sys.stderr.isatty() else 30.0)
        self.last_time = time.perf_counter()

    def report(self, start: int, end: int, metrics) -> None:
        values = _read_metrics(metrics, end)
        now = time.perf_counter()
        images_per_sec = (end - start) * self.batch_size / max(now - self.last_time, 1e-9)
        self.last_time = now
        self.bar.update(end - start)
        self.bar.set_postfix(d_loss=f"{values['d_loss']:.3f}", g_loss=f"{values['g_loss']:.3f}",
                             img_s=f"{images_per_sec:.0f}", refresh=False)
        if "log" in self.timetable.due(end):
            with write_errors(self.manager, f"the metrics of step {end} "
                                            f"({self.writers.describe()})"):
                self.writers.scalars(end, {**values, "images_per_sec": images_per_sec,
                                           "time": time.time()})


@dataclasses.dataclass
class _Run:
    """One run's parts, wired by _train; `loop` drives them to train.num_steps or a stop signal."""
    config: Any
    workdir: str
    pipeline: Pipeline
    grids: GridWriter
    writers: Writers
    manager: Any
    facts: dict
    evaluator: Any
    signals: StopSignals
    last_saved: int = 0
    last_eval: tuple | None = None  # (step, its evaluation)

    def loop(self, state, step: int):
        timetable = Timetable.from_config(self.config)
        progress = _Progress(timetable, self.config.train.batch_size, step, self.writers,
                             self.manager)
        pending, self.last_saved = None, step
        try:
            while step < timetable.num_steps:
                end = timetable.next_boundary(step)
                state, metrics = self.pipeline.advance(state, step, end - step)
                if pending is not None:
                    progress.report(*pending)
                pending, step = (step, end, metrics), end
                stop = self.signals.stop_requested(end)
                due = timetable.due(end)
                if stop or due - {"log"}:
                    progress.report(*pending)  # the state is known good before it is written
                    pending = None
                    self.write(state, end, due, stop)
                if stop:
                    progress.bar.close()
                    checkpoint.wait(self.manager)  # "saved" only once it is on disk
                    _say(f"Received {self.signals.received}: saved a checkpoint at step {end} "
                         f"in {checkpoint.checkpoint_dir(self.workdir)}; rerun the same command "
                         "to resume.")
                    return state
        finally:
            progress.bar.close()  # an error message then starts on a line of its own
        checkpoint.wait(self.manager)  # "Done" only once the last checkpoint is on disk
        self.say_done()
        return state

    def write(self, state, step: int, due: set, stop: bool) -> None:
        """What the timetable asks for at `step`: the grid, the evaluation, the checkpoint (on a
        stop, and after an evaluation that may make it the best)."""
        if "grid" in due:
            with write_errors(self.manager, f"the sample grid of step {step} to "
                                            f"{self.writers.samples_dir}"):
                self.writers.grid(step, self.grids.image(state), provenance(step))
        evaluation = None
        if "eval" in due:
            evaluation = _evaluate(self.config, self.evaluator, state, step)
            with write_errors(self.manager, f"the evaluation of step {step}"):
                self.writers.scalars(step, {f"eval/{k}": v for k, v in evaluation.items()})
            self.last_eval = (step, evaluation)
        if stop or "checkpoint" in due or (evaluation and self.config.checkpoint.best_metric):
            checkpoint.save(self.manager, state, self.config, self.facts, metrics=evaluation)
            self.last_saved = step

    def say_done(self) -> None:
        if not self.writers.is_main:
            return
        _say(f"Done: step {self.last_saved} checkpoint in "
             f"{checkpoint.checkpoint_dir(self.workdir)}; sample grid {self.writers.last_grid}; "
             f"metrics {self.writers.describe()}.")
        if self.last_eval is not None:
            step, evaluation = self.last_eval
            _say(f"Evaluation at step {step} ({self.config.eval.num_samples} images; "
                 f"{os.path.join(self.workdir, 'eval', f'step_{step}.json')}): "
                 + ", ".join(f"{k} {v:.4g}" for k, v in sorted(evaluation.items())
                             if isinstance(v, float) and "/" not in k))


def _evaluate(config, evaluator, state, step: int) -> dict:
    try:
        return evaluator(checkpoint.generator_variables(state), step)
    except Exception as error:
        if is_out_of_memory(error):
            mesh = mesh_lib.make_mesh()
            raise out_of_memory_error(config, mesh, error, f"the evaluation of step {step}",
                                      evaluation=True) from None
        raise


def _say(line: str) -> None:
    """Print, unless the terminal is gone (SIGHUP: a closed SSH session): the run's result is in
    the workdir either way."""
    try:
        print(line, flush=True)
    except OSError:
        pass
