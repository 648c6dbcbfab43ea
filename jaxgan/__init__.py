"""jaxgan: train GANs and class-conditional GANs in JAX, and draw new images from them.

  import jaxgan
  jaxgan.train_and_evaluate(config, workdir)     # train or resume
  sampler = jaxgan.load_sampler(workdir)         # the trained generator, from the workdir alone

Importing jaxgan never imports TensorFlow; JAX itself is imported on first use of the API (so
`python -m jaxgan.watermark` starts fast).

Package map (imports point down; nothing imports training.loop):
  config.py      every config key's default and validation (no JAX)
  models/        the model families (registry by config.model.arch), layers, norms
  data/          sources: digits, folder:PATH, tfds:NAME -> Dataset (uint8 images, labels)
  training/      state, step, pipeline (device / host / disk tiers), checkpoint, writers, loop
  evaluation/    feature extractors and metrics
  art/           sampling, export (provenance, GIFs, novelty), watermark, sample.py's logic
  gallery/       people rate generated images and take blind trials (python -m jaxgan.gallery)
  images.py, mesh.py, errors.py   shared by all of the above
"""
import importlib

__version__ = "0.1.0"

from jaxgan.errors import UserError

_LAZY = {"train_and_evaluate": "jaxgan.training.loop", "load_sampler": "jaxgan.art.sampling",
         "Sampler": "jaxgan.art.sampling", "evaluate": "jaxgan.evaluation"}
__all__ = ["Sampler", "UserError", "__version__", "evaluate", "load_sampler", "train_and_evaluate"]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'jaxgan' has no attribute {name!r}")
