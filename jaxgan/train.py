"""The training loop: init or resume, steps, progress, sample grids, checkpoints, stop signals.

The loop dispatches chunk N+1 of steps before it reads chunk N's metrics, so the host never stalls
the devices; a non-finite loss or parameter stops the run before it is ever checkpointed.
"""
from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from jaxgan import checkpoint, data as data_lib, losses
from jaxgan.errors import UserError
from jaxgan.images import save_png
from jaxgan.models import num_doublings, build_models
from jaxgan.sampling import generate_from_noise, grid_image, grid_labels
from jaxgan.state import abstract_state, create_state
from jaxgan.train_step import (make_device_data_runner, make_mesh, make_train_step,
                               run_one_by_one)

GRID_SEED_TAG = 0x7FFFFFFF  # folded into the seed's key for the fixed grid noise


class TrainingDiverged(UserError):
    """A non-finite loss or parameter: the run stops, the last good checkpoint stays."""


def validate(config, num_devices: int) -> None:
    """Refuse, before anything is written, a config that cannot train."""
    batch = config.train.batch_size
    if batch < 1 or batch % num_devices:
        raise UserError(f"train.batch_size={batch} must be a positive multiple of the number of "
                        f"devices ({num_devices}); try {max(1, round(batch / num_devices)) * num_devices}")
    try:
        num_doublings(config.data.resolution)
        losses.check_loss(config.train.loss)
    except ValueError as error:
        raise UserError(str(error)) from None
    if config.data.channels not in (1, 3):
        raise UserError(f"data.channels must be 1 or 3, got {config.data.channels}")
    for key in ("train.num_steps", "train.n_critic", "checkpoint.every_steps",
                "train.log_every_steps", "train.sample_every_steps", "train.steps_per_call"):
        section, name = key.split(".")
        value = config[section][name]
        if value < (0 if name == "num_steps" else 1):
            raise UserError(f"{key} must be {'>= 0' if name == 'num_steps' else '>= 1'}, got {value}")


def check_writable(workdir: str) -> None:
    try:
        os.makedirs(workdir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=workdir):
            pass
    except OSError as error:
        raise UserError(f"workdir {workdir} is not writable: {error.strerror}") from None


class StopSignals:
    """SIGTERM / SIGINT set a flag; the loop finishes its step, checkpoints and exits 0.

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
        for sig in () if self._multihost else (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. a notebook worker): no handler
                pass
        return self

    def _handle(self, signum, frame):
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _next_boundary(step: int, config) -> int:
    """The next step at which the host has something to do (log, grid, checkpoint, end)."""
    ends = [config.train.num_steps]
    for every in (config.train.log_every_steps, config.train.sample_every_steps,
                  config.checkpoint.every_steps):
        ends.append((step // every + 1) * every)
    return min(min(ends), step + config.train.steps_per_call)


class Run:
    """What one call of train_and_evaluate holds: paths, writers, the grid function."""

    def __init__(self, config, workdir, dataset, mesh):
        self.config, self.workdir, self.dataset = config, workdir, dataset
        self.is_main = jax.process_index() == 0
        self.metrics_path = os.path.join(workdir, "metrics.jsonl")
        self.samples_dir = os.path.join(workdir, "samples")
        generator, _ = build_models(config.model, dataset.image_shape, dataset.num_classes)
        labels = grid_labels(dataset.num_classes)
        grid_key = jax.random.fold_in(jax.random.key(config.seed), GRID_SEED_TAG)
        z = jax.random.normal(grid_key, (labels.shape[0], config.model.latent_dim))
        self._grid_inputs = (z, jnp.asarray(labels))
        self._grid_fn = jax.jit(lambda variables, z, y: generate_from_noise(generator, variables, z, y))
        self.last_grid = None

    def write_grid(self, state, step: int) -> None:
        images = self._grid_fn(checkpoint.generator_variables(state), *self._grid_inputs)
        images = np.asarray(jax.device_get(images))
        if self.is_main:
            self.last_grid = os.path.join(self.samples_dir, f"step_{step:07d}.png")
            save_png(self.last_grid, grid_image(images),
                     {"Software": "jaxgan", "Step": step, "Comment": "AI-generated"})

    def log(self, record: dict) -> None:
        if self.is_main:
            with open(self.metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")


def _read_metrics(metrics, step: int) -> dict:
    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
    if values.pop("finite") < 1.0 or not all(math.isfinite(v) for v in values.values()):
        raise TrainingDiverged(f"training diverged: a non-finite loss or parameter at step {step} "
                               f"({', '.join(f'{k}={v:.4g}' for k, v in values.items())})")
    return values


def train_and_evaluate(config, workdir):
    """Train (or resume) the GAN `config` describes, writing everything into `workdir`.

    Returns the final GANState. User mistakes raise `jaxgan.UserError` with a clear message.
    """
    workdir = os.path.abspath(os.fspath(workdir))
    mesh = make_mesh()
    validate(config, mesh.size)
    dataset = data_lib.load(config.data)
    check_writable(workdir)
    manager = checkpoint.make_manager(workdir, keep=config.checkpoint.keep)
    try:
        return _train(config, workdir, dataset, mesh, manager)
    finally:
        checkpoint.wait(manager)
        manager.close()
        dataset.close()


def _restore_or_create(config, dataset, mesh, manager):
    shape, classes = dataset.image_shape, dataset.num_classes

    def resumable_target(saved_config, facts):
        changed = checkpoint.incompatible_keys(saved_config, config)
        if facts["num_classes"] != classes or list(facts["image_shape"]) != list(shape):
            changed.append(f"data: {facts['num_classes']} classes of {tuple(facts['image_shape'])}"
                           f" -> {classes} classes of {shape}")
        if changed:
            raise UserError(f"cannot resume from {manager.directory}: the config changes the "
                            f"model or data shape ({'; '.join(changed)}). Use another --workdir "
                            "or the saved values.")
        if facts.get("num_examples", len(dataset.labels)) != len(dataset.labels):
            logging.warning("Resuming with %d training images where the checkpoint saw %d: the "
                            "run goes on, but its batches differ from an uninterrupted run's",
                            len(dataset.labels), facts["num_examples"])
        return abstract_state(config, shape, classes)

    restored = checkpoint.restore_latest(manager, resumable_target, mesh)
    if restored is not None:
        return restored[0]
    state = create_state(config, shape, classes, jax.random.key(config.seed))
    return jax.device_put(state, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))


def _make_advance(config, dataset, mesh):
    """`advance(state, step, n) -> (state, mean metrics)` runs n steps from `step`, dispatched
    without waiting; and a function that releases the data pipeline."""
    base_key = jax.random.key(config.seed)
    shape, classes = dataset.image_shape, dataset.num_classes
    if config.train.steps_per_call > 1 and jax.default_backend() == "cpu":
        logging.warning("train.steps_per_call=%d on a CPU: XLA:CPU runs steps inside a loop "
                        "16-45x slower than one at a time; use 1 here", config.train.steps_per_call)
    if data_lib.fits_on_device(dataset, config.data.get("device_cache_mb", 512)):
        device_data = data_lib.to_device(dataset, mesh)
        runner = make_device_data_runner(config, mesh, shape, classes)
        return (lambda state, step, n: runner(state, device_data, base_key, n),
                lambda: None)
    batches = data_lib.HostBatches(dataset, mesh, config.train.batch_size, config.seed,
                                   config.data.random_flip)
    train_step = jax.jit(make_train_step(config, mesh, shape, classes), donate_argnums=0)

    def one(state, step):
        step_key = jax.random.split(jax.random.fold_in(base_key, step))[1]
        return train_step(state, batches.get(step), step_key)

    def advance(state, step, n):
        return run_one_by_one(lambda state, i: one(state, step + i), state, n)
    return advance, batches.close


def _train(config, workdir, dataset, mesh, manager):
    run = Run(config, workdir, dataset, mesh)
    state = _restore_or_create(config, dataset, mesh, manager)
    step, num_steps = int(jax.device_get(state.step)), config.train.num_steps
    if step >= num_steps:
        print(f"Already trained: {checkpoint.checkpoint_dir(workdir)} holds step {step} "
              f">= train.num_steps={num_steps}. Raise --config.train.num_steps to train further.")
        return state
    advance, close_data = _make_advance(config, dataset, mesh)
    try:
        return _loop(config, workdir, run, manager, state, step, advance, dataset.facts())
    finally:
        close_data()


def _loop(config, workdir, run, manager, state, step, advance, facts):
    num_steps = config.train.num_steps
    bar = tqdm(total=num_steps, initial=step, unit="step", dynamic_ncols=True,
               disable=not run.is_main, mininterval=1.0 if sys.stderr.isatty() else 30.0)
    pending, last_time, last_saved = None, time.perf_counter(), step

    def finish(pending):
        """Read a dispatched chunk's metrics (one chunk late), log them, advance the bar."""
        nonlocal last_time
        start, end, metrics = pending
        values = _read_metrics(metrics, end)
        now = time.perf_counter()
        images_per_sec = (end - start) * config.train.batch_size / max(now - last_time, 1e-9)
        last_time = now
        bar.update(end - start)
        bar.set_postfix(d_loss=f"{values['d_loss']:.3f}", g_loss=f"{values['g_loss']:.3f}",
                        img_s=f"{images_per_sec:.0f}", refresh=False)
        if end % config.train.log_every_steps == 0 or end == num_steps:
            run.log({"step": end, **values, "images_per_sec": images_per_sec, "time": time.time()})

    with StopSignals() as signals:
        while step < num_steps:
            end = _next_boundary(step, config)
            state, metrics = advance(state, step, end - step)
            if pending is not None:
                finish(pending)
            pending, step = (step, end, metrics), end
            stop = signals.stop_requested(end)
            if stop or end == num_steps or end % config.train.sample_every_steps == 0 \
                    or end % config.checkpoint.every_steps == 0:
                finish(pending)  # the state is known good before anything is written from it
                pending = None
                if end % config.train.sample_every_steps == 0 or end == num_steps:
                    run.write_grid(state, end)
                if stop or end == num_steps or end % config.checkpoint.every_steps == 0:
                    checkpoint.save(manager, state, config, facts)
                    last_saved = end
            if stop:
                bar.close()
                print(f"Received {signals.received}: saved a checkpoint at step {end} in "
                      f"{checkpoint.checkpoint_dir(workdir)}; rerun the same command to resume.")
                return state
    bar.close()
    if run.is_main:
        print(f"Done: step {last_saved} checkpoint in {checkpoint.checkpoint_dir(workdir)}; "
              f"sample grid {run.last_grid}; metrics {run.metrics_path}.")
    return state
