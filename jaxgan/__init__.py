"""jaxgan: train GANs and class-conditional GANs in JAX, and draw new images from them.

  import jaxgan
  jaxgan.train_and_evaluate(config, workdir)     # train or resume
  sampler = jaxgan.load_sampler(workdir)         # the trained generator, from the workdir alone

Importing jaxgan never imports TensorFlow; JAX itself is imported on first use of the API (so
`python -m jaxgan.watermark` starts fast).
"""
import importlib

__version__ = "0.1.0"

from jaxgan.errors import UserError

_LAZY = {"train_and_evaluate": "jaxgan.train", "load_sampler": "jaxgan.sampling",
         "Sampler": "jaxgan.sampling", "evaluate": "jaxgan.evaluation"}
__all__ = ["Sampler", "UserError", "__version__", "evaluate", "load_sampler", "train_and_evaluate"]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'jaxgan' has no attribute {name!r}")
