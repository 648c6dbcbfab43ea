"""Input pipeline speed: decoding a folder of JPEGs, and what the pipeline costs a training step.

  python benchmarks/input_pipeline.py [--images 2000] [--config configs/folder.py] [--steps 20]

1. Writes `--images` random-texture JPEGs at 64x64 and at 256x256 into a temporary folder (two
   class subfolders) and times `jaxgan.data.folder.load_folder` (parallel Pillow decode, crop, resize
   to the config's resolution): images/s.
2. Times the training step of `--config` (tiny widths by default, so the pipeline is not hidden
   behind a slow model; `--full_model` for the real one) three ways, median per step:
   synthetic  a fixed batch already on the devices (no pipeline at all);
   device     the set held on the devices, batches drawn inside the jitted step (small sets);
   stream     batches prepared on the host and prefetched (`training.pipeline.HostBatches`, large sets);
   disk       the 256x256 JPEGs left on disk, each batch decoded when it is prefetched
              (`data.StreamedImages`, sets larger than data.host_cache_mb);
   and prints each pipeline's slowdown against the synthetic batch.
"""
import argparse
import os
import statistics
import tempfile
import time

import _common

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from jaxgan import data as data_lib, mesh as mesh_lib  # noqa: E402
from jaxgan.data import folder  # noqa: E402
from jaxgan.training.pipeline import (HostBatches, make_device_data_runner,  # noqa: E402
                                      to_device)
from jaxgan.training.step import make_train_step  # noqa: E402


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
    _common.config_arguments(parser, default="configs/folder.py")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--full_model", action="store_true")
    # configs/folder.py leaves the folder to the user; the images here are generated.
    args, config, _ = _common.parse_with_config(parser, base_overrides=["data.source=folder:-"])
    if not args.full_model:
        config.model.g_width = config.model.d_width = 8
    resolution, channels = config.data.resolution, config.data.channels
    _common.print_machine()
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
    dataset = data_lib.Dataset(
        images=rng.integers(0, 255, (4096, resolution, resolution, channels), np.uint8),
        labels=rng.integers(0, 2, 4096).astype(np.int32), class_names=("a", "b"))
    shape, classes, batch_size = dataset.image_shape, 2, config.train.batch_size
    gan, mesh, state = _common.build_gan(config, shape, classes)
    key = jax.random.key(0)
    step = jax.jit(make_train_step(gan, config.train, mesh), donate_argnums=0)
    fixed = jax.device_put(_common.synthetic_batch(config, shape, classes), mesh_lib.split(mesh))
    results = {}

    def synthetic():
        nonlocal state
        state, m = step(state, fixed, key)
        jax.block_until_ready(m)
    results["synthetic"] = median_step_seconds(synthetic, args.steps)

    runner = make_device_data_runner(config, gan, mesh)
    device_data = to_device(dataset, mesh)

    def device():
        nonlocal state
        state, m = runner(state, device_data, key, 1)
        jax.block_until_ready(m)
    results["device"] = median_step_seconds(device, args.steps)

    on_disk = data_lib.load_image_folder(jpeg_folder, resolution, channels, host_cache_bytes=0)
    assert isinstance(on_disk.images, data_lib.StreamedImages)
    for name, source in (("stream", dataset), ("disk", on_disk)):
        batches = HostBatches(source, mesh, batch_size, 0, config.data.random_flip)
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
