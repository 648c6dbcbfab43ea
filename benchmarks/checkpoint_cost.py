"""What an asynchronous Orbax save costs the training loop, and what its digests cost.

  python benchmarks/checkpoint_cost.py [--config configs/digits.py] [--chunk 20] [--saves 5]
  python benchmarks/checkpoint_cost.py --config configs/fastgan.py --chunk 0   # no training

Runs the config's device-data step in chunks of `--chunk` steps and times, on the same warm
process: chunks with no save, and chunks each followed by `checkpoint.save` (which returns once
the arrays are copied off the devices; the writing happens in a background thread). Prints the
median chunk time both ways, the time `save` blocks the loop, and the time until the save is on
disk (`wait_until_finished`).

Then the checkpoint digests (`checkpoint.tree_digest`, sha256 over the arrays): the part of
`save` that takes them (both items' digests, leaves copied to the host one at a time), and at
restore the time to read both array items against the time `checkpoint.check_restored` adds
(the digests again, and the NaN/infinity check). With `--chunk 0` nothing is trained: the initial state of the
config is saved and restored (no data set is loaded; for configs too slow to step here).
"""
import argparse
import statistics
import tempfile
import time

import _common

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jaxgan import data as data_lib  # noqa: E402
from jaxgan.training import checkpoint  # noqa: E402
from jaxgan.training.pipeline import make_device_data_runner, to_device  # noqa: E402


def digest_cost(state, config, facts, gan, mesh, repeats: int) -> None:
    """Median seconds of the digests at save and of the checks at restore, printed."""
    def at_save():  # what checkpoint.save adds
        checkpoint.tree_digest(state)
        checkpoint.tree_digest(checkpoint.generator_variables(state))

    at_save()
    taking = [_timed(at_save) for _ in range(repeats)]
    nbytes = sum(np.asarray(x).nbytes for x in jax.tree.leaves(jax.device_get(state)))
    with tempfile.TemporaryDirectory() as workdir:
        manager = checkpoint.make_manager(workdir, keep=1)
        start = time.perf_counter()
        checkpoint.save(manager, state, config, facts)
        checkpoint.wait(manager)
        saved = time.perf_counter() - start
        step = int(jax.device_get(state.step))
        _, facts = checkpoint.restore_meta(manager, step)
        target = gan.abstract_state()
        reading, checking = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            restored = checkpoint.restore_item(manager, step, "state", target, mesh)
            generator = checkpoint.restore_item(manager, step, "generator",
                                                checkpoint.generator_variables(target), mesh)
            jax.block_until_ready((restored, generator))
            reading.append(time.perf_counter() - start)
            start = time.perf_counter()
            checkpoint.check_restored(manager, step, "state", restored, facts)
            checkpoint.check_restored(manager, step, "generator", generator, facts)
            checking.append(time.perf_counter() - start)
        manager.close()
    ms = lambda values: 1000 * statistics.median(values)
    print(f"state: {nbytes / 1e6:.1f} MB in {len(jax.tree.leaves(state))} arrays; one whole "
          f"save, to disk: {1000 * saved:.1f} ms")
    print(f"digests at save (sha256 of both items):             {ms(taking):8.1f} ms")
    print(f"restore of both array items:                        {ms(reading):8.1f} ms")
    print(f"  + their check (sha256 + NaN/infinity):            {ms(checking):8.1f} ms "
          f"(+{100 * statistics.median(checking) / statistics.median(reading):.0f}%)")


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _common.config_arguments(parser)
    parser.add_argument("--chunk", type=int, default=20)
    parser.add_argument("--saves", type=int, default=5)
    args, config, _ = _common.parse_with_config(parser)
    if args.chunk == 0:  # no training: the initial state, no data set
        image_shape = _common.image_shape_of(config)
        gan, mesh, state = _common.build_gan(config, image_shape, 0)
        _common.print_machine()
        digest_cost(state, config, {"class_names": [], "image_shape": list(image_shape),
                                    "num_classes": 0, "num_examples": 0}, gan, mesh, args.saves)
        return
    dataset = data_lib.load(config.data)
    gan, mesh, state = _common.build_gan(config, dataset.image_shape, dataset.num_classes)
    device_data = to_device(dataset, mesh)
    run = make_device_data_runner(config, gan, mesh)
    key, n = jax.random.key(0), args.chunk
    state, metrics = run(state, device_data, key, n)
    jax.block_until_ready(metrics)

    def chunk():
        nonlocal state
        start = time.perf_counter()
        state, m = run(state, device_data, key, n)
        jax.block_until_ready(m)
        return time.perf_counter() - start

    plain = [chunk() for _ in range(args.saves)]
    with tempfile.TemporaryDirectory() as workdir:
        manager = checkpoint.make_manager(workdir, keep=2)
        blocking, with_save, on_disk = [], [], []
        for _ in range(args.saves):
            start = time.perf_counter()
            checkpoint.save(manager, state, config, dataset.facts())
            blocking.append(time.perf_counter() - start)
            with_save.append(blocking[-1] + chunk())
            start = time.perf_counter()
            manager.wait_until_finished()
            on_disk.append(time.perf_counter() - start)
        manager.close()
    step_ms = 1000 * statistics.median(plain) / args.chunk
    _common.print_machine()
    print(f"chunk of {args.chunk} steps, no save:      {1000 * statistics.median(plain):8.1f} ms "
          f"({step_ms:.1f} ms/step)")
    print(f"chunk of {args.chunk} steps + async save:  {1000 * statistics.median(with_save):8.1f} ms")
    print(f"save() blocks the loop for:       {1000 * statistics.median(blocking):8.1f} ms "
          f"(= {statistics.median(blocking) * 1000 / step_ms:.1f} steps)")
    print(f"then on disk after a further:     {1000 * statistics.median(on_disk):8.1f} ms "
          "(in the background, while training goes on)")
    digest_cost(state, config, dataset.facts(), gan, mesh, args.saves)


if __name__ == "__main__":
    main()
