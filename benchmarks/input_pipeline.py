"""Input pipeline speed: decoding a folder of JPEGs, and what the pipeline costs a training step.

  python benchmarks/input_pipeline.py [--images 2000] [--config configs/folder.py] [--steps 20]

1. Writes `--images` random-texture JPEGs at 64x64 and at 256x256 into a temporary folder (two
   class subfolders) and times `jaxgan.folder.load_folder` (parallel Pillow decode, crop, resize
   to the config's resolution): images/s.
2. Times the training step of `--config` (tiny widths by default, so the pipeline is not hidden
   behind a slow model; `--full_model` for the real one) three ways, median per step:
   synthetic  a fixed batch already on the devices (no pipeline at all);
   device     the set held on the devices, batches drawn inside the jitted step (small sets);
   stream     batches prepared on the host and prefetched (`data.HostBatches`, large sets);
   disk       the 256x256 JPEGs left on disk, each batch decoded when it is prefetched
              (`data.StreamedImages`, sets larger than data.host_cache_mb);
   and prints each pipeline's slowdown against the synthetic batch.
"""
import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from jaxgan import data as data_lib, folder  # noqa: E402
from jaxgan.state import create_state  # noqa: E402
from jaxgan.train_step import make_device_data_runner, make_mesh, make_train_step  # noqa: E402


def write_jpegs(root, count, size):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (size // 8, size // 8, 3), np.uint8)
    for i in range(count):
        cls = os.path.join(root, f"class{i % 2}")
        os.makedirs(cls, exist_ok=True)
        image = np.roll(base, i, axis=0).repeat(8, 0).repeat(8, 1)
        noise = rng.integers(0, 40, image.shape, np.uint8)
        Image.fromarray(image // 2 + noise).save(os.path.join(cls, f"{i:05d}.jpg"), quality=90)


def time_folder(root, count, size, resolution):
    write_jpegs(root, count, size)
    start = time.perf_counter()
    loaded = folder.load_folder(root, resolution, 3)
    seconds = time.perf_counter() - start
    assert len(loaded.labels) == count
    return count / seconds


def median_step_seconds(fn, steps):
    fn()  # compile
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--config", default=os.path.join(ROOT, "configs", "folder.py"))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--full_model", action="store_true")
    args = parser.parse_args()
    spec = importlib.util.spec_from_file_location("bench_config", args.config)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    if not args.full_model:
        config.model.g_width = config.model.d_width = 8
    resolution, channels = config.data.resolution, config.data.channels
    print(f"{os.cpu_count()} CPU cores, backend {jax.default_backend()}, jax {jax.__version__}")
    with tempfile.TemporaryDirectory() as root:
        for size in (64, 256):
            rate = time_folder(os.path.join(root, str(size)), args.images, size, resolution)
            print(f"decode {args.images} JPEGs of {size}x{size} -> {resolution}x{resolution}: "
                  f"{rate:8.0f} images/s")
        results = time_steps(config, args, os.path.join(root, "256"))
    base = results["synthetic"]
    batch_size = config.train.batch_size
    print(f"train step ({'full' if args.full_model else 'width-8'} model, batch {batch_size}, "
          f"{resolution}x{resolution}x{channels}):")
    for name, seconds in results.items():
        print(f"  {name:9s} {1000 * seconds:8.1f} ms/step  {batch_size / seconds:8.0f} images/s  "
              f"{100 * (seconds / base - 1):+6.1f}% vs synthetic")


def time_steps(config, args, jpeg_folder) -> dict:
    """Median seconds per training step for each way of feeding it."""
    resolution, channels = config.data.resolution, config.data.channels

    rng = np.random.default_rng(0)
    dataset = data_lib.InMemoryDataset(
        images=rng.integers(0, 255, (4096, resolution, resolution, channels), np.uint8),
        labels=rng.integers(0, 2, 4096).astype(np.int32), class_names=("a", "b"))
    mesh = make_mesh()
    shape, classes, batch_size = dataset.image_shape, 2, config.train.batch_size
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    state = jax.device_put(create_state(config, shape, classes, jax.random.key(0)), replicated)
    key = jax.random.key(0)
    step = jax.jit(make_train_step(config, mesh, shape, classes), donate_argnums=0)
    fixed = jax.device_put({"image": jnp.zeros((batch_size, *shape)),
                            "label": jnp.zeros((batch_size,), jnp.int32)},
                           jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data")))
    results = {}

    def synthetic():
        nonlocal state
        state, m = step(state, fixed, key)
        jax.block_until_ready(m)
    results["synthetic"] = median_step_seconds(synthetic, args.steps)

    runner = make_device_data_runner(config, mesh, shape, classes)
    device_data = data_lib.to_device(dataset, mesh)

    def device():
        nonlocal state
        state, m = runner(state, device_data, key, 1)
        jax.block_until_ready(m)
    results["device"] = median_step_seconds(device, args.steps)

    on_disk = data_lib.load_image_folder(jpeg_folder, resolution, channels, host_cache_bytes=0)
    assert isinstance(on_disk.images, data_lib.StreamedImages)
    for name, source in (("stream", dataset), ("disk", on_disk)):
        batches = data_lib.HostBatches(source, mesh, batch_size, 0, config.data.random_flip)
        counter = iter(range(10**9))

        def stream():
            nonlocal state
            state, m = step(state, batches.get(next(counter)), key)
            jax.block_until_ready(m)
        results[name] = median_step_seconds(stream, args.steps)
        batches.close()
    on_disk.close()
    return results


if __name__ == "__main__":
    main()
