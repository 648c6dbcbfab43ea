"""Evaluation speed: Inception feature throughput and the whole `evaluate` time.

  python benchmarks/evaluation_speed.py --images 256                 # Inception img/s only
  python benchmarks/evaluation_speed.py --workdir runs/digits --num 10000 --extractor classifier

Inception: 32x32x3 uint8 inputs, resized to 299 inside (as FID computes them), batches of
--per-device-batch images on every device. The weights do not change the speed: without the FID
weights in the cache the network runs with random weights (said in the output).
"""
import argparse
import time

import jax
import numpy as np


def inception_throughput(num_images: int, per_device_batch: int) -> None:
    from jaxgan.evaluation import features, inception, weights
    if weights.cached_weights_available():
        extractor = features.load_inception(allow_download=False)
        which = "FID weights"
    else:
        shapes = jax.eval_shape(inception.InceptionV3().init, jax.random.key(0),
                                jax.ShapeDtypeStruct((1, 299, 299, 3), np.float32))
        rng = np.random.default_rng(0)

        def random_leaf(path, s):
            name = jax.tree_util.keystr(path)
            if "kernel" in name:  # He-scaled, so activations stay finite through 94 layers
                return (rng.normal(size=s.shape) * np.sqrt(2 / np.prod(s.shape[:-1]))).astype(np.float32)
            return np.full(s.shape, 1.0 if ("scale" in name or "var" in name) else 0.0, np.float32)
        variables = jax.tree_util.tree_map_with_path(random_leaf, shapes)
        extractor = features.InceptionExtractor(variables, "0" * 64,
                                                per_device_batch=per_device_batch)
        which = "random weights (same cost)"
    batch = extractor._apply.batch
    images = np.random.default_rng(0).integers(0, 256, (num_images, 32, 32, 3), dtype=np.uint8)
    start = time.perf_counter()
    extractor(images[:batch])  # compile
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    extractor(images)
    seconds = time.perf_counter() - start
    print(f"Inception features, {which}: {num_images} images (32 px -> 299) in {seconds:.1f} s = "
          f"{num_images / seconds:.1f} img/s; batch {batch} over {len(jax.devices())} "
          f"{jax.devices()[0].platform} device(s); first batch incl. compilation {compile_s:.1f} s")


def whole_evaluate(workdir: str, num: int, extractor: str, metrics: str) -> None:
    import jaxgan
    start = time.perf_counter()
    result = jaxgan.evaluate(workdir, num=num, extractor=extractor, metrics=metrics, write=False)
    seconds = time.perf_counter() - start
    print(f"evaluate({workdir!r}, num={num}, extractor={result['protocol']['extractor']}, "
          f"metrics={metrics}): {seconds:.1f} s (caches warm from earlier runs count)")
    for k, v in result["metrics"].items():
        print(f"  {k} = {v:.6g}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=256, help="images for the Inception timing (0: skip)")
    parser.add_argument("--per-device-batch", type=int, default=50)
    parser.add_argument("--workdir", help="a trained run, for the whole-evaluate timing")
    parser.add_argument("--num", type=int, default=10_000)
    parser.add_argument("--extractor", default="auto")
    parser.add_argument("--metrics", default="fid,kid,is,pr,intra_fid,gan_test,gan_train,memorisation")
    args = parser.parse_args()
    print(f"jax {jax.__version__}, devices: {jax.devices()}")
    if args.images:
        inception_throughput(args.images, args.per_device_batch)
    if args.workdir:
        whole_evaluate(args.workdir, args.num, args.extractor, args.metrics)


if __name__ == "__main__":
    main()
