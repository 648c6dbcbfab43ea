"""What an asynchronous Orbax save costs the training loop.

  python benchmarks/checkpoint_cost.py [--config configs/digits.py] [--steps 200] [--saves 5]

Runs the config's device-data step in chunks of `--chunk` steps and times, on the same warm
process: chunks with no save, and chunks each followed by `checkpoint.save` (which returns once
the arrays are copied off the devices; the writing happens in a background thread). Prints the
median chunk time both ways, the time `save` blocks the loop, and the time until the save is on
disk (`wait_until_finished`).
"""
import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time

import jax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from jaxgan import checkpoint, data as data_lib  # noqa: E402
from jaxgan.state import create_state  # noqa: E402
from jaxgan.train_step import make_device_data_runner, make_mesh  # noqa: E402


def load_config(path):
    spec = importlib.util.spec_from_file_location("bench_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=os.path.join(ROOT, "configs", "digits.py"))
    parser.add_argument("--chunk", type=int, default=20)
    parser.add_argument("--saves", type=int, default=5)
    args = parser.parse_args()
    config = load_config(args.config)
    mesh = make_mesh()
    dataset = data_lib.load(config.data)
    state = jax.device_put(create_state(config, dataset.image_shape, dataset.num_classes,
                                        jax.random.key(0)),
                           jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
    device_data = data_lib.to_device(dataset, mesh)
    run = make_device_data_runner(config, mesh, dataset.image_shape, dataset.num_classes)
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
    print(f"backend {jax.default_backend()}, {jax.device_count()} device(s), jax {jax.__version__}")
    print(f"chunk of {args.chunk} steps, no save:      {1000 * statistics.median(plain):8.1f} ms "
          f"({step_ms:.1f} ms/step)")
    print(f"chunk of {args.chunk} steps + async save:  {1000 * statistics.median(with_save):8.1f} ms")
    print(f"save() blocks the loop for:       {1000 * statistics.median(blocking):8.1f} ms "
          f"(= {statistics.median(blocking) * 1000 / step_ms:.1f} steps)")
    print(f"then on disk after a further:     {1000 * statistics.median(on_disk):8.1f} ms "
          "(in the background, while training goes on)")


if __name__ == "__main__":
    main()
