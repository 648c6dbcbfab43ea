"""Feature extractors: images (uint8 NHWC) -> features, in fixed-size jitted batches on all devices.

An extractor has a `name` ("inception" or "classifier"), an `id` that pins its weights (it keys
cached reference statistics and is recorded with every result) and `__call__(images) ->
{"features": (N, D) float32, "logits": (N, K) float32 or None}`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from tqdm import tqdm

from jaxgan.evaluation import inception

INCEPTION_PER_DEVICE_BATCH = 50


class BatchedApply:
    """`fn(variables, images_BHWC) -> pytree of (B, ...)`, run over N images in batches of
    per_device * num_devices (batch sharded over the mesh axis "data", variables replicated).
    The last batch is padded, so every batch has the same shape: one compilation per image shape.

    `prepare(images_BHWC)`, when given, is jitted apart from `fn`, so that inputs of several sizes
    share one compiled network (Inception: the resize to 299 is `prepare`).
    """

    def __init__(self, fn, variables, per_device_batch: int, devices=None, desc: str = "features",
                 prepare=None):
        self.mesh = Mesh(np.asarray(devices or jax.devices()), ("data",))
        self.batch = per_device_batch * self.mesh.size
        self._data = NamedSharding(self.mesh, P("data"))
        self.variables = jax.device_put(variables, NamedSharding(self.mesh, P()))
        self._fn = jax.jit(fn, in_shardings=(NamedSharding(self.mesh, P()), self._data),
                           out_shardings=self._data)
        self._prepare = (jax.jit(prepare, in_shardings=self._data, out_shardings=self._data)
                         if prepare else (lambda x: x))
        self.desc = desc

    def __call__(self, images_NHWC, progress: bool = False):
        n = len(images_NHWC)
        outputs, pending = [], None
        with tqdm(total=n, unit="img", desc=self.desc, disable=not progress, leave=False) as bar:
            for start in range(0, n, self.batch):
                chunk = np.asarray(images_NHWC[start:start + self.batch])
                if len(chunk) < self.batch:
                    pad = np.zeros((self.batch - len(chunk), *chunk.shape[1:]), chunk.dtype)
                    chunk = np.concatenate([chunk, pad])
                result = self._fn(self.variables, self._prepare(jax.device_put(chunk, self._data)))
                if pending is not None:  # read the previous batch while this one runs
                    outputs.append(jax.device_get(pending[0]))
                    bar.update(pending[1])
                pending = (result, min(self.batch, n - start))
            if pending is not None:
                outputs.append(jax.device_get(pending[0]))
                bar.update(pending[1])
        if not outputs:
            raise ValueError("no images to compute features of")
        return jax.tree.map(lambda *parts: np.concatenate(parts)[:n], *outputs)


def _inception_apply(model, variables, x_BHWC):
    """x: preprocessed (B, 299, 299, 3) in [-1, 1]."""
    pool, logits = model.apply(variables, x_BHWC)
    # IS uses the logits without the fc bias, as the original Inception Score code and
    # torch-fidelity ("logits_unbiased"); FID uses the pool features.
    unbiased = jnp.matmul(pool, variables["params"]["fc"]["kernel"], precision="highest")
    return {"features": pool, "logits": unbiased, "logits_biased": logits}


class InceptionExtractor:
    name = "inception"

    def __init__(self, variables, weights_sha256: str, per_device_batch: int = INCEPTION_PER_DEVICE_BATCH,
                 devices=None):
        model = inception.InceptionV3()
        self.id = f"inception-pytorch-fid-{weights_sha256[:8]}"
        self.weights_sha256 = weights_sha256
        self.resize = "bilinear to 299x299 (PyTorch align_corners=False, no antialias), as pytorch-fid"
        self._apply = BatchedApply(lambda v, x: _inception_apply(model, v, x), variables,
                                   per_device_batch, devices, desc="inception features",
                                   prepare=inception.preprocess)

    def __call__(self, images_NHWC, progress: bool = False) -> dict:
        return self._apply(images_NHWC, progress)

    def protocol(self) -> dict:
        return {"extractor": "inception", "extractor_id": self.id,
                "weights_sha256": self.weights_sha256, "resize": self.resize,
                "features": "2048-d pool3", "is_logits": "1008 logits without the fc bias"}


def load_inception(weights_path: str | None = None, allow_download: bool = True,
                   devices=None) -> InceptionExtractor:
    from jaxgan.evaluation.weights import load_inception_variables
    variables, sha256 = load_inception_variables(weights_path, allow_download)
    return InceptionExtractor(variables, sha256, devices=devices)
