"""What an asynchronous Orbax save costs the training loop.

  python benchmarks/checkpoint_cost.py [--config configs/digits.py] [--steps 200] [--saves 5]

Runs the config's device-data step in chunks of `--chunk` steps and times, on the same warm
process: chunks with no save, and chunks each followed by `checkpoint.save` (which returns once
the arrays are copied off the devices; the writing happens in a background thread). Prints the
median chunk time both ways, the time `save` blocks the loop, and the time until the save is on
disk (`wait_until_finished`).
"""
import argparse
import statistics
import tempfile
import time

import _common

import jax  # noqa: E402

from jaxgan import data as data_lib  # noqa: E402
from jaxgan.training import checkpoint  # noqa: E402
from jaxgan.training.pipeline import make_device_data_runner, to_device  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _common.config_arguments(parser)
    parser.add_argument("--chunk", type=int, default=20)
    parser.add_argument("--saves", type=int, default=5)
    args, config, _ = _common.parse_with_config(parser)
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


if __name__ == "__main__":
    main()
