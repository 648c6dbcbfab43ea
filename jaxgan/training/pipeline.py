"""The data pipeline of a training run: how batches reach the step, in three tiers by size.

- device: sets up to `data.device_cache_mb` are held whole on every device and each step draws its
  batch there, inside the jitted step (`draw_batch`): no host round-trip between steps;
- host memory: larger sets (up to `data.host_cache_mb`, decoded once) are gathered and placed a
  batch at a time by a background thread (`HostBatches`), each host only its rows;
- disk: larger still, rows are decoded from disk as they are gathered (`data.StreamedImages`).

In every tier a batch is a pure function of (seed, step), so resuming is exact. With R3GAN's
relativistic loss a step takes a second, independent real batch for its generator update
(`g_image`, `g_label`), drawn by the same tier from its own random numbers. `make_pipeline`
chooses the tier and returns `advance(state, step, n)`, which dispatches n steps without waiting.
"""
from __future__ import annotations

import concurrent.futures
import logging

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh

from jaxgan import mesh as mesh_lib
from jaxgan.data import Dataset, StreamedImages
from jaxgan.images import to_unit_range
from jaxgan.training.state import GAN
from jaxgan.training.step import make_train_step, needs_generator_batch


class Pipeline:
    """`advance(state, step, n) -> (state, mean metrics)` runs steps step..step+n-1, dispatched
    without waiting; `close()` releases the host threads."""

    def __init__(self, config, gan: GAN, dataset: Dataset, mesh: Mesh):
        self.base_key = jax.random.key(config.seed)
        if config.train.steps_per_call > 1 and jax.default_backend() == "cpu":
            logging.warning("train.steps_per_call=%d on a CPU: XLA:CPU runs steps inside a loop "
                            "16-45x slower than one at a time; use 1 here",
                            config.train.steps_per_call)
        self.batches = None
        if fits_on_device(dataset, config.data.device_cache_mb):
            self.tier = "device"
            device_data = to_device(dataset, mesh)
            runner = make_device_data_runner(config, gan, mesh)
            self._advance = lambda state, step, n: runner(state, device_data, self.base_key, n)
        else:
            self.tier = "disk" if isinstance(dataset.images, StreamedImages) else "host"
            self.batches = HostBatches(dataset, mesh, config.train.batch_size, config.seed,
                                       config.data.random_flip,
                                       generator_batch=needs_generator_batch(config.train))
            train_step = jax.jit(make_train_step(gan, config.train, mesh), donate_argnums=0)

            def one(state, step):
                _, step_key = step_keys(self.base_key, step)  # (its data key: unused here)
                return train_step(state, self.batches.get(step), step_key)
            self._advance = lambda state, step, n: run_one_by_one(
                lambda state, i: one(state, step + i), state, n)

    def advance(self, state, step: int, n: int):
        return self._advance(state, step, n)

    def close(self):
        if self.batches is not None:
            self.batches.close()


def step_keys(base_key, step):
    """(data key, step key) of a step, whichever tier feeds it: the device tier draws its batch
    with the data key, the host and disk tiers index by (seed, step); all three give the step
    key to the train step, so a run's steps do not depend on where its data lives."""
    return jax.random.split(jax.random.fold_in(base_key, step))


def to_device(dataset: Dataset, mesh) -> dict:
    """The whole data set, replicated on every device of the mesh (every host holds all of it)."""
    def put(array):
        return jax.make_array_from_callback(array.shape, mesh_lib.replicated(mesh),
                                            lambda index: array[index])
    return {"image": put(dataset.images), "label": put(dataset.labels)}


def fits_on_device(dataset: Dataset, device_cache_mb: float) -> bool:
    if isinstance(dataset.images, StreamedImages):
        return False
    return dataset.images.nbytes + dataset.labels.nbytes <= device_cache_mb * 2**20


def host_batch_indices(seed: int, step: int, num_examples: int, batch_size: int,
                       stream: int = 0) -> np.ndarray:
    """The examples of step `step`: a pure function of (seed, step), so a resumed run draws
    exactly the batches the uninterrupted run would have (none repeated, none skipped).
    `stream` 1: the generator update's independent batch (relativistic loss)."""
    entropy = [seed, step] if stream == 0 else [seed, step, 2 * stream]  # (odd: the flips')
    return np.random.default_rng(entropy).integers(0, num_examples, batch_size)


class HostBatches:
    """Batches streamed from host memory, for sets too big to hold on the devices.

    Each host prepares only its share of every global batch, `prefetch` steps ahead in a
    background thread (numpy releases the GIL for the gathers), and places it on the mesh with
    `jax.make_array_from_process_local_data`. `get(step)` returns the global batch of `step`.
    """

    def __init__(self, dataset: Dataset, mesh, batch_size: int, seed: int,
                 random_flip: bool, prefetch: int = 2, generator_batch: bool = False):
        self.dataset, self.mesh, self.batch_size, self.seed = dataset, mesh, batch_size, seed
        self.random_flip = random_flip
        self.streams = {"": 0, "g_": 1} if generator_batch else {"": 0}
        self.prefetch = max(2, prefetch)
        count, index = jax.process_count(), jax.process_index()
        share = batch_size // count
        self._rows = slice(index * share, (index + 1) * share)
        self._sharding = mesh_lib.split(mesh)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
        self._pending = {}

    def _host_batch(self, step: int):
        batch = {}
        for prefix, stream in self.streams.items():
            index = host_batch_indices(self.seed, step, len(self.dataset.labels), self.batch_size,
                                       stream)[self._rows]
            images = to_unit_range(self.dataset.images[index])
            if self.random_flip:  # stream 0's flips from [seed, step, 1], stream 1's [.., 3]
                flips = np.random.default_rng([self.seed, step, 1 + 2 * stream])
                flip = flips.random(self.batch_size) < 0.5
                images = np.where(flip[self._rows, None, None, None], images[:, :, ::-1], images)
            batch.update({f"{prefix}image": images, f"{prefix}label": self.dataset.labels[index]})
        return batch

    def get(self, step: int) -> dict:
        for ahead in range(step, step + self.prefetch + 1):
            if ahead not in self._pending:
                self._pending[ahead] = self._pool.submit(self._host_batch, ahead)
        host = self._pending.pop(step).result()
        for stale in [s for s in self._pending if s < step]:
            self._pending.pop(stale).cancel()
        return {name: jax.make_array_from_process_local_data(
                    self._sharding, value, (self.batch_size, *value.shape[1:]))
                for name, value in host.items()}

    def close(self):
        self._pool.shutdown(wait=False, cancel_futures=True)


def draw_batch(data, key, batch_size: int, mesh: Mesh, random_flip: bool = False):
    """A batch drawn (with replacement) from a device-resident data set, inside the jitted step.

    `data` is {"image": uint8 (N, H, W, C), "label": int32 (N,)}, replicated on every device.
    """
    index_key, flip_key = jax.random.split(key)
    index = jax.random.randint(index_key, (batch_size,), 0, data["label"].shape[0])
    index = lax.with_sharding_constraint(index, mesh_lib.split(mesh))
    images = to_unit_range(data["image"][index])
    if random_flip:
        flip = jax.random.bernoulli(flip_key, 0.5, (batch_size, 1, 1, 1))
        images = jnp.where(flip, images[:, :, ::-1], images)
    return {"image": images, "label": data["label"][index]}


def make_device_data_runner(config, gan: GAN, mesh: Mesh):
    """`run(state, data, base_key, num_steps) -> (state, mean metrics)`, state donated.

    Each step uses the keys `step_keys(base_key, state.step)` and a batch drawn on the device: no
    host round-trip between steps. With `train.steps_per_call > 1` the steps run as a `fori_loop`
    inside one dispatch (a traced count: one compilation serves every count), which saves dispatch
    overhead on accelerators; with 1, each step is its own jitted call (dispatched ahead, without
    waiting). On a 2-core CPU a step inside the loop measured 16-45x slower than the same step
    alone (XLA:CPU leaves the loop's gradient convolutions in slow layouts; jax-ml/jax#12868), so
    the configs use 1 and training warns about more on a CPU.
    """
    train_step = make_train_step(gan, config.train, mesh)
    batch_size, random_flip = config.train.batch_size, config.data.random_flip
    generator_batch = needs_generator_batch(config.train)

    def one_step(state, data, base_key):
        data_key, step_key = step_keys(base_key, state.step)
        batch = draw_batch(data, data_key, batch_size, mesh, random_flip)
        if generator_batch:  # G's independent batch, from the data key folded with 1
            g_batch = draw_batch(data, jax.random.fold_in(data_key, 1), batch_size, mesh,
                                 random_flip)
            batch.update(g_image=g_batch["image"], g_label=g_batch["label"])
        return train_step(state, batch, step_key)

    def many_steps(state, data, base_key, num_steps):
        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                             jax.eval_shape(one_step, state, data, base_key)[1])

        def body(_, carry):
            state, sums = carry
            state, metrics = one_step(state, data, base_key)
            return state, jax.tree.map(jnp.add, sums, metrics)
        state, sums = lax.fori_loop(0, num_steps, body, (state, zeros))
        return state, jax.tree.map(lambda s: s / num_steps, sums)

    if config.train.steps_per_call > 1:
        multi = jax.jit(many_steps, donate_argnums=0)
        return lambda state, data, base_key, num_steps: multi(state, data, base_key,
                                                              jnp.int32(num_steps))
    # One path or the other for every step of a run, never both: a step inside the loop and the
    # same step alone need not agree to the last bit, and resumes must be bit-exact.
    single = jax.jit(one_step, donate_argnums=0)
    return lambda state, data, base_key, num_steps: run_one_by_one(
        lambda state, _: single(state, data, base_key), state, int(num_steps))


def run_one_by_one(step_fn, state, num_steps: int):
    """`step_fn(state, i) -> (state, metrics)` for i in range(num_steps), each dispatched without
    waiting; returns the final state and the metrics averaged over the steps (on the device)."""
    total = None
    for i in range(num_steps):
        state, metrics = step_fn(state, i)
        total = metrics if total is None else jax.tree.map(jnp.add, total, metrics)
    return state, jax.tree.map(lambda v: v / num_steps, total)
